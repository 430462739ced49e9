using System.Text;
using System.Text.Json;
using Xunit;
using static XlstmRun.Tests.Cli.BatchTestKit;
using static XlstmRun.Tests.Support.CliRunner;

namespace XlstmRun.Tests.Cli;

/// <summary>`batch` end to end: line parsing and error records, OpenAI-style keys, seeds, --parallel, resume, locking.</summary>
public class BatchCommandTests(CliModels m) : IClassFixture<CliModels>
{
    private string M => Q(m.Model);

    [Fact]
    public void MalformedLinesOfEveryKindAreOneErrorRecordEachAndTheRunGoesOn()
    {
        string dir = NewDir(m, "malformed"), input = Path.Combine(dir, "in.jsonl"), output = Path.Combine(dir, "out.jsonl");
        var lines = new (string Line, string? Error)[]
        {
            ("""{"id": "a", "prompt": "Hello there", "n_predict": 6, "temperature": 0}""", null),
            ("""{"id": "b", "prompt": 42}""", "\"prompt\" must be a string"),
            ("this line is not JSON", "invalid JSON"),
            ("", null), // blank: no record
            ("""{"id": 7, "prompt": "Hello\ud800 there"}""", "\"prompt\" is not valid Unicode"),
            ("""{"id": "\udfff", "prompt": "x"}""", "\"id\" is not valid Unicode"),
            ("""{"id": "s", "prompt": "x", "stop": ["ok", "\ud800"]}""", "\"stop\" is not valid Unicode"),
            ("""{"id": "u", "prompt": "x", "model": "gpt-4"}""", "unknown key \"model\""),
            ("""{"id": "dk", "prompt": "x", "prompt": "y"}""", "key \"prompt\" appears twice"),
            ("""{"id": "t", "prompt": "x", "n_predict": "5"}""", "\"n_predict\" must be an integer"),
            ("""{"id": "f", "prompt": "x", "temperature": true}""", "\"temperature\" must be a number"),
            ("""{"id": "o", "prompt": "x", "n_predict": 3, "max_tokens": 3}""", "not both"),
            ("[1, 2]", "not a JSON object"),
            ("""{"id": [1], "prompt": "x"}""", "\"id\" must be a string or an integer"),
            ("""{"id": "a", "prompt": "again"}""", "duplicate id \"a\" (line 1 has it too)"),
            ("""{"id": 1.5, "prompt": "x"}""", "\"id\" must be a string or an integer"),
            ("""{"\udc00": 1, "id": "k", "prompt": "x"}""", "a key is not valid Unicode"),
            ("\u0001INVALID-UTF8\u0001", "not UTF-8 text"), // replaced by invalid bytes below
            ("""{"id": "sd", "prompt": "x", "seed": -1}""", "\"seed\" must be an integer"),
            ("""{"id": "tp", "prompt": "x", "top_p": 7}""", "\"top_p\" must be between 0 and 1"),
            ("""{"prompt": "no id", "n_predict": 2, "temperature": 0}""", null),
            ("""{"id": 3, "prompt": "x"}""", "duplicate id 3: line 3 has no \"id\""),
            ("""{"prompt": "x", "stop": 5}""", "\"stop\" must be a string or a list of strings"),
            ("""{"id": "deep", "prompt": "x", "stop": [[[[[[[[[[[[[[[[[[[[[["a"]]]]]]]]]]]]]]]]]]]]]]}""", "invalid JSON"),
            ("""{"id": "n", "prompt": "x", "n_predict": -2}""", "\"n_predict\" must be -1"),
        };
        var bytes = new List<byte>();
        foreach (var (line, _) in lines)
        {
            if (line.StartsWith('\u0001')) bytes.AddRange([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]);
            else bytes.AddRange(Encoding.UTF8.GetBytes(line));
            bytes.Add((byte)'\n');
        }
        File.WriteAllBytes(input, bytes.ToArray());

        var r = Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)}"));
        Assert.DoesNotContain("Exception", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        var recs = Records(output);
        Assert.Equal(lines.Length - 1, recs.Count); // one record per non-blank line
        var byLine = recs.ToDictionary(x => x.GetProperty("line").GetInt32());
        for (int i = 0; i < lines.Length; i++)
        {
            int line = i + 1;
            if (lines[i].Line.Length == 0)
            {
                Assert.False(byLine.ContainsKey(line));
                continue;
            }
            var rec = byLine[line];
            if (lines[i].Error is string expected)
            {
                Assert.True(rec.TryGetProperty("error", out var e), $"line {line}: {rec}");
                Assert.Contains(expected, e.GetString());
                Assert.Equal(["id", "line", "error"], rec.EnumerateObject().Select(p => p.Name));
            }
            else
            {
                Assert.Equal(["id", "line", "text", "tokens", "prompt_tokens", "finish_reason", "seed"], rec.EnumerateObject().Select(p => p.Name));
                Assert.InRange(rec.GetProperty("tokens").GetInt32(), 0, 6);
            }
        }
        // ids: the line's own id when it has a valid one, else its line number
        Assert.Equal("a", byLine[1].GetProperty("id").GetString());
        Assert.Equal(3, byLine[3].GetProperty("id").GetInt32());
        Assert.Equal(7, byLine[5].GetProperty("id").GetInt32());
        Assert.Equal(6, byLine[6].GetProperty("id").GetInt32());
        Assert.Equal("u", byLine[8].GetProperty("id").GetString());
        Assert.Equal(21, byLine[21].GetProperty("id").GetInt32());
    }

    [Fact]
    public void OpenAiStyleKeysMeanWhatOursMean()
    {
        string dir = NewDir(m, "openai"), input = Path.Combine(dir, "in.jsonl"), output = Path.Combine(dir, "out.jsonl");
        File.WriteAllLines(input,
        [
            """{"id": "ours", "prompt": "Once upon a time", "n_predict": 8, "temperature": 0.9, "top_p": 0.8, "seed": 12, "stop": ["\n\n"]}""",
            """{"id": "openai", "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0.9, "top_p": 0.8, "seed": 12, "stop": "\n\n"}""",
            """{"id": "nulls", "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0.9, "top_p": 0.8, "seed": 12, "stop": "\n\n", "top_k": null, "n_predict": null}""",
        ]);
        Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)}"));
        var recs = Records(output);
        Assert.Equal(3, recs.Count);
        Assert.All(recs, x => Assert.Equal(12UL, x.GetProperty("seed").GetUInt64()));
        Assert.Equal(TextOf(recs[0]), TextOf(recs[1]));
        Assert.Equal(TextOf(recs[0]), TextOf(recs[2]));
        // and the same as one `generate` with those settings
        var g = Ok(Run($"-m {M} -p \"Once upon a time\" -n 8 --temp 0.9 --top-p 0.8 -s 12 -r \"\n\n\" --json"));
        using var doc = JsonDocument.Parse(g.Stdout);
        Assert.Equal(doc.RootElement.GetProperty("text").GetString(), TextOf(recs[0]));
    }

    [Fact]
    public void ALineWithoutSeedGetsTheBaseSeedPlusItsLineNumber()
    {
        string dir = NewDir(m, "seeds"), input = Path.Combine(dir, "in.jsonl"), output = Path.Combine(dir, "out.jsonl");
        const string same = """{"prompt": "The weather today", "n_predict": 12, "temperature": 1.0, "top_k": 0, "top_p": 1, "min_p": 0}""";
        File.WriteAllLines(input, [same, same, "", same]);
        Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)} -s 1000"));
        var recs = Records(output);
        Assert.Equal([1001UL, 1002UL, 1004UL], recs.Select(x => x.GetProperty("seed").GetUInt64()));
        // identical prompts no longer give identical samples
        Assert.Equal(3, recs.Select(TextOf).Distinct().Count());
        // each line is what `generate` gives with that seed
        var g = Ok(Run($"-m {M} -p \"The weather today\" -n 12 --temp 1 --top-k 0 --top-p 1 --min-p 0 -s 1004 --json"));
        using var doc = JsonDocument.Parse(g.Stdout);
        Assert.Equal(doc.RootElement.GetProperty("text").GetString(), TextOf(recs[2]));
        // and a rerun with the same --seed gives the same file
        string again = Path.Combine(dir, "again.jsonl");
        Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(again)} -s 1000"));
        Assert.Equal(File.ReadAllText(output), File.ReadAllText(again));
    }

    [Fact]
    public void ParallelSlotsGiveTheSameRecordsAsOneAtATime()
    {
        string dir = NewDir(m, "parallel"), input = Path.Combine(dir, "in.jsonl");
        var lines = Enumerable.Range(0, 7).Select(i =>
            i % 3 == 0 ? $$"""{"id": "g{{i}}", "prompt": "Line {{i}} says", "n_predict": {{2 + i}}, "temperature": 0}"""
            : i % 3 == 1 ? $$"""{"id": "s{{i}}", "prompt": "Sampled {{i}}", "n_predict": {{3 + i}}}"""
            : $$"""{"id": "e{{i}}", "prompt": {{i}}}""").ToArray();
        File.WriteAllLines(input, lines);
        string one = Path.Combine(dir, "p1.jsonl"), three = Path.Combine(dir, "p3.jsonl");
        Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(one)} -s 5 --parallel 1"));
        var r = Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(three)} -s 5 --parallel 3"));
        Assert.Contains("parallel 3", r.Stderr);
        var a = RawByLine(one);
        var b = RawByLine(three);
        Assert.Equal(7, a.Count);
        Assert.Equal(a.OrderBy(x => x.Key), b.OrderBy(x => x.Key));
        Assert.Equal(2, Run($"batch -m {M} -i {Q(input)} -o {Q(Path.Combine(dir, "p0.jsonl"))} --parallel 0").ExitCode);
    }

    [Fact]
    public void ResumeCountsResultsAndErrorRecordsAndRetryErrorsRunsErrorsAgain()
    {
        string dir = NewDir(m, "resume"), input = Path.Combine(dir, "in.jsonl"), output = Path.Combine(dir, "out.jsonl");
        File.WriteAllLines(input,
        [
            """{"id": "a", "prompt": "Hello there", "n_predict": 6, "temperature": 0}""",
            """{"id": "b", "prompt": 42}""",
            """{"id": "c", "prompt": "Once upon", "n_predict": 5, "temperature": 1.0, "top_k": 0}""",
            "not json",
        ]);
        Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)} -s 3"));
        string full = File.ReadAllText(output);
        string reference = WriteTo(Path.Combine(dir, "ref.jsonl"), full);

        // nothing left: the error records count as done, the file is not touched, the model is not even loaded
        var r = Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)} -s 3 --resume"));
        Assert.Contains("nothing to do", r.Stderr);
        Assert.Contains("2 lines have error records", r.Stderr);
        Assert.Equal(full, File.ReadAllText(output));

        // a cut-off last record is removed and its line runs again
        var recLines = full.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        File.WriteAllText(output, recLines[0] + "\n" + recLines[1] + "\n" + recLines[2][..20]);
        r = Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)} -s 3 --resume"));
        Assert.Contains("cut off an incomplete last record (20 bytes)", r.Stderr);
        Assert.Equal(RawByLine(reference), RawByLine(output)); // line 3 ran again: same record (its seed is its own)

        // --retry-errors: the input's line 2 is fixed (same id); its error record is replaced by a result
        var fixedLines = File.ReadAllLines(input);
        fixedLines[1] = """{"id": "b", "prompt": "fixed", "n_predict": 3, "temperature": 0}""";
        File.WriteAllLines(input, fixedLines);
        r = Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)} -s 3 --resume --retry-errors"));
        Assert.Contains("removed 2 error records", r.Stderr);
        var after = RawByLine(output);
        Assert.Equal([1, 2, 3, 4], after.Keys.Order());
        Assert.Contains("\"text\"", after[2]);
        Assert.Contains("\"error\"", after[4]);
        Assert.Equal(RawByLine(reference)[1], after[1]);
        Assert.Equal(RawByLine(reference)[3], after[3]);

        // an output that is not this input's: refused, untouched
        string other = Path.Combine(dir, "other.jsonl");
        File.WriteAllLines(other, ["""{"id": "zzz", "prompt": "x"}""", """{"id": "a", "prompt": "x"}""", "{}", "{}"]);
        string kept = File.ReadAllText(output);
        r = Run($"batch -m {M} -i {Q(other)} -o {Q(output)} --resume");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("another input file", r.Stderr);
        Assert.Equal(kept, File.ReadAllText(output));
        // nor a file with a line that is not a record
        File.WriteAllText(output, "garbage\n" + kept);
        r = Run($"batch -m {M} -i {Q(input)} -o {Q(output)} --resume");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("is not a batch record", r.Stderr);
    }

    private static string WriteTo(string path, string content)
    {
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void AnExistingOutputIsKeptWithoutResumeOrForceAndWhenTheModelFails()
    {
        string dir = NewDir(m, "keep"), input = Path.Combine(dir, "in.jsonl"), output = Path.Combine(dir, "out.jsonl");
        File.WriteAllText(input, """{"id": 1, "prompt": "Hi", "n_predict": 2}""" + "\n");
        File.WriteAllText(output, "keep me\n");
        var r = Run($"batch -m {M} -i {Q(input)} -o {Q(output)}");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("keep me\n", File.ReadAllText(output));
        // --force with a model that does not load: the old output is not lost
        r = Run($"batch -m {Q(m.TruncatedData)} -i {Q(input)} -o {Q(output)} --force");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("keep me\n", File.ReadAllText(output));
        Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)} --force"));
        Assert.Single(Records(output));
        // outputs that are inputs or not regular files are refused
        Assert.Contains("is the input file", Run($"batch -m {M} -i {Q(input)} -o {Q(input)} --force").Stderr);
        Assert.Contains("is the model file", Run($"batch -m {M} -i {Q(input)} -o {M} --force").Stderr);
        Assert.Contains("character device", Run($"batch -m {M} -i {Q(input)} -o /dev/null --force").Stderr);
        Assert.Contains("character device", Run($"batch -m {M} -i /dev/zero -o {Q(Path.Combine(dir, "z.jsonl"))}").Stderr);
        Assert.False(File.Exists(Path.Combine(dir, "z.jsonl")));
        Assert.Equal("{\"id\": 1, \"prompt\": \"Hi\", \"n_predict\": 2}\n", File.ReadAllText(input)); // the input is never touched
    }

    [Fact]
    public void TwoBatchesOnOneOutputRefuseInsteadOfInterleaving()
    {
        string dir = NewDir(m, "lock"), input = Path.Combine(dir, "in.jsonl"), output = Path.Combine(dir, "out.jsonl");
        File.WriteAllLines(input, Enumerable.Range(1, 4).Select(i => $$"""{"prompt": "Item {{i}}", "n_predict": 3, "temperature": 0}"""));
        using (var first = new Running($"batch -m {M} -i {Q(input)} -o {Q(output)}", new Dictionary<string, string> { ["XLSTM_BATCH_TEST_CRASH"] = "pause-after:1" }))
        {
            first.WaitPaused();
            var second = Run($"batch -m {M} -i {Q(input)} -o {Q(output)} --resume");
            Assert.Equal(2, second.ExitCode);
            Assert.Contains("another batch is writing to it", second.Stderr);
            Assert.Equal(2, Run($"batch -m {M} -i {Q(input)} -o {Q(output)} --force").ExitCode);
            Assert.Equal(137, first.KillNine());
        }
        Assert.Single(RawByLine(output));
        Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)} --resume"));
        Assert.Equal([1, 2, 3, 4], RawByLine(output).Keys.Order());
    }

    [Fact]
    public void BatchStopStringsApplyPerLine()
    {
        string dir = NewDir(m, "stop"), input = Path.Combine(dir, "in.jsonl"), output = Path.Combine(dir, "out.jsonl");
        File.WriteAllText(input, """{"id": "full", "prompt": "Stories", "n_predict": 16, "temperature": 0}""" + "\n");
        Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)} --ignore-eos"));
        string full = TextOf(Records(output)[0]);
        Assert.True(full.Length >= 6, full);
        string stop = full.Substring(full.Length / 2, 2);
        string expected = full[..full.IndexOf(stop, StringComparison.Ordinal)];
        var line = new Dictionary<string, object> { ["id"] = "cut", ["prompt"] = "Stories", ["n_predict"] = 16, ["temperature"] = 0, ["stop"] = new[] { stop } };
        File.WriteAllText(input, JsonSerializer.Serialize(line) + "\n");
        Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)} --ignore-eos --force"));
        var rec = Records(output)[0];
        Assert.Equal(expected, TextOf(rec));
        Assert.Equal("stop", rec.GetProperty("finish_reason").GetString());
        // the same text as one `generate` run (every prompt starts from a fresh state)
        var g = Ok(Run($"-m {M} -p Stories -n 16 --temp 0 --ignore-eos --json"));
        using var doc = JsonDocument.Parse(g.Stdout);
        Assert.Equal(full, doc.RootElement.GetProperty("text").GetString());
    }
}
