using System.Text.Json;
using XlstmRun.Tests.Support;
using Xunit;
using static XlstmRun.Tests.Support.CliRunner;

namespace XlstmRun.Tests.Cli;

public class CliBatchTests(CliModels m) : IClassFixture<CliModels>
{
    private string M => Q(m.Model);

    private static Result Ok(Result r)
    {
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        return r;
    }

    private static List<JsonElement> Records(string path) =>
        File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();

    private string NewDir()
    {
        var d = Path.Combine(m.Dir, "batch-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(d);
        return d;
    }

    [Fact]
    public void MalformedLinesGetErrorRecordsAndResumeSkipsDoneIds()
    {
        string dir = NewDir(), input = Path.Combine(dir, "in.jsonl"), output = Path.Combine(dir, "out.jsonl");
        File.WriteAllLines(input,
        [
            """{"id": "a", "prompt": "Hello there", "n_predict": 6, "temperature": 0}""",
            """{"id": "b", "prompt": 42}""",
            """this line is not JSON""",
            "",
            """{"id": 7, "prompt": "Hello there", "n_predict": 6, "temperature": 0}""",
            """{"id": "c", "prompt": "Once upon", "n_predict": 5, "seed": 3, "temperature": 1.0, "top_k": 0}""",
            """{"id": "d", "prompt": "x", "top_p": 7}""",
        ]);
        var r = Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)}"));
        var recs = Records(output);
        Assert.Equal(6, recs.Count);
        Assert.Equal("a", recs[0].GetProperty("id").GetString());
        Assert.Equal("b", recs[1].GetProperty("id").GetString());
        Assert.Contains("prompt", recs[1].GetProperty("error").GetString());
        Assert.Equal(3, recs[2].GetProperty("id").GetInt32()); // no id: the line number
        Assert.True(recs[2].TryGetProperty("error", out _));
        Assert.Equal(7, recs[3].GetProperty("id").GetInt32());
        Assert.Equal("c", recs[4].GetProperty("id").GetString());
        Assert.Equal("d", recs[5].GetProperty("id").GetString());
        Assert.Contains("top_p", recs[5].GetProperty("error").GetString());
        foreach (var i in new[] { 0, 3, 4 })
        {
            Assert.Equal(["id", "text", "tokens", "prompt_tokens", "finish_reason"], recs[i].EnumerateObject().Select(p => p.Name));
            Assert.Contains(recs[i].GetProperty("finish_reason").GetString(), new[] { "length", "eos", "stop" });
            Assert.InRange(recs[i].GetProperty("tokens").GetInt32(), 0, 6);
        }
        // every prompt starts from a fresh state: the same prompt gives the same text, as one `generate` run does
        string textA = recs[0].GetProperty("text").GetString()!;
        Assert.Equal(textA, recs[3].GetProperty("text").GetString());
        using (var g = JsonDocument.Parse(Ok(Run($"-m {M} -p \"Hello there\" -n 6 --temp 0 --json")).Stdout))
            Assert.Equal(textA, g.RootElement.GetProperty("text").GetString());
        Assert.Contains("[1/6]", r.Stderr);

        // An interrupted run: "a" and the error for "b" are there, plus half a line; --resume does the rest.
        string resumed = Path.Combine(dir, "resumed.jsonl");
        File.WriteAllText(resumed, File.ReadAllLines(output)[0] + "\n" + File.ReadAllLines(output)[1] + "\n{\"id\": 7, \"te");
        var r2 = Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(resumed)} --resume"));
        Assert.Contains("1 already done", r2.Stderr);
        var recs2 = Records(resumed); // also proves the half line is gone: every line parses
        var done = recs2.Where(x => x.TryGetProperty("text", out _)).Select(x => x.GetProperty("id").ToString()).ToList();
        Assert.Equal(["a", "7", "c"], done);
        var c1 = recs[4].GetProperty("text").GetString();
        var c2 = recs2.Single(x => x.GetProperty("id").ToString() == "c").GetProperty("text").GetString();
        Assert.Equal(c1, c2); // seeded per line: same text whatever ran before
        // a second --resume has nothing left but the malformed lines
        var r3 = Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(resumed)} --resume"));
        Assert.Contains("3 already done", r3.Stderr);
        Assert.Equal(3, Records(resumed).Count(x => x.TryGetProperty("text", out _)));
    }

    [Fact]
    public void AnExistingOutputIsKeptWithoutResumeOrForce()
    {
        string dir = NewDir(), input = Path.Combine(dir, "in.jsonl"), output = Path.Combine(dir, "out.jsonl");
        File.WriteAllText(input, """{"id": 1, "prompt": "Hi", "n_predict": 2}""" + "\n");
        File.WriteAllText(output, "keep me\n");
        var r = Run($"batch -m {M} -i {Q(input)} -o {Q(output)}");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("keep me\n", File.ReadAllText(output));
        Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)} --force"));
        Assert.Single(Records(output));
    }

    [Fact]
    public void BatchStopStringsApplyPerLine()
    {
        string dir = NewDir(), input = Path.Combine(dir, "in.jsonl"), output = Path.Combine(dir, "out.jsonl");
        File.WriteAllText(input, """{"id": "full", "prompt": "Stories", "n_predict": 16, "temperature": 0}""" + "\n");
        Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)} --ignore-eos"));
        string full = Records(output)[0].GetProperty("text").GetString()!;
        Assert.True(full.Length >= 6, full);
        string stop = full.Substring(full.Length / 2, 2);
        string expected = full[..full.IndexOf(stop, StringComparison.Ordinal)];
        var line = new Dictionary<string, object> { ["id"] = "cut", ["prompt"] = "Stories", ["n_predict"] = 16, ["temperature"] = 0, ["stop"] = new[] { stop } };
        File.WriteAllText(input, JsonSerializer.Serialize(line) + "\n");
        Ok(Run($"batch -m {M} -i {Q(input)} -o {Q(output)} --ignore-eos --force"));
        var rec = Records(output)[0];
        Assert.Equal(expected, rec.GetProperty("text").GetString());
        Assert.Equal("stop", rec.GetProperty("finish_reason").GetString());
    }
}
