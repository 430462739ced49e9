using System.Text.Json;
using System.Text.RegularExpressions;
using XlstmRun.Tests.Support;
using XlstmRun.Tests.Tokenization;
using Xunit;
using static XlstmRun.Tests.Support.CliRunner;

namespace XlstmRun.Tests.Cli;

/// <summary>End-to-end runs of the published binary: prompts, stdin, JSON, BOS, seeds, stop strings, state files.</summary>
public class CliGenerateTests(CliModels m) : IClassFixture<CliModels>
{
    private string M => Q(m.Model);

    private sealed record Gen(string Text, int[] Ids, int PromptTokens, string FinishReason);

    private static Result Ok(Result r)
    {
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        return r;
    }

    private static Gen Json(Result r)
    {
        Ok(r);
        using var doc = JsonDocument.Parse(r.Stdout);
        var e = doc.RootElement;
        Assert.Equal(["text", "ids", "prompt_tokens", "finish_reason"], e.EnumerateObject().Select(p => p.Name));
        return new Gen(e.GetProperty("text").GetString()!, e.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
            e.GetProperty("prompt_tokens").GetInt32(), e.GetProperty("finish_reason").GetString()!);
    }

    private static int[] IdsJson(Result r)
    {
        Ok(r);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(["ids"], doc.RootElement.EnumerateObject().Select(p => p.Name));
        return doc.RootElement.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
    }

    private const string Greedy = "--temp 0 -n 8 --json";

    [Fact]
    public void PromptWordsEqualPromptOptionAndGenerateSubcommand()
    {
        var a = Json(Run($"-m {M} {Greedy} -- hello world"));
        var b = Json(Run($"-m {M} {Greedy} -p \"hello world\""));
        var c = Json(Run($"generate -m {M} {Greedy} -p \"hello world\""));
        Assert.Equal(a.Ids, b.Ids);
        Assert.Equal(a.Ids, c.Ids);
        Assert.Equal(1 + TokTestPaths.Neox.Encode("hello world").Length, a.PromptTokens);
    }

    [Fact]
    public void PromptFileDropsOneTrailingNewline()
    {
        string f = Path.Combine(m.Dir, "prompt-" + Guid.NewGuid().ToString("N")[..6] + ".txt");
        File.WriteAllText(f, "Once upon a time\n");
        var a = Json(Run($"-m {M} {Greedy} -f {Q(f)}"));
        var b = Json(Run($"-m {M} {Greedy} -p \"Once upon a time\""));
        Assert.Equal(b.Ids, a.Ids);
        Assert.Equal(b.PromptTokens, a.PromptTokens);
    }

    [Fact]
    public void PipedStdinIsThePrompt()
    {
        var a = Json(Run($"-m {M} {Greedy}", stdin: "Once upon a time\n"));
        var b = Json(Run($"-m {M} {Greedy} -p \"Once upon a time\""));
        Assert.Equal(b.Ids, a.Ids);
        Assert.Equal(b.PromptTokens, a.PromptTokens);
    }

    [Fact]
    public void PipedStdinComesFirstThenANewlineThenThePromptWords()
    {
        string f = Path.Combine(m.Dir, "joined-" + Guid.NewGuid().ToString("N")[..6] + ".txt");
        File.WriteAllText(f, "Some notes here.\nSummarize:");
        var a = Json(Run($"-m {M} {Greedy} -- Summarize:", stdin: "Some notes here.\n"));
        var b = Json(Run($"-m {M} {Greedy} -f {Q(f)}"));
        Assert.Equal(1 + TokTestPaths.Neox.Encode("Some notes here.\nSummarize:").Length, a.PromptTokens);
        Assert.Equal(b.Ids, a.Ids);
    }

    [Fact]
    public void JsonFieldsDescribeTheGeneration()
    {
        var g = Json(Run($"-m {M} -p \"The meaning of life is\" -n 12 -s 4 --json"));
        var tok = TokTestPaths.Neox;
        Assert.Equal(1 + tok.Encode("The meaning of life is").Length, g.PromptTokens);
        Assert.Contains(g.FinishReason, new[] { "length", "eos" });
        if (g.FinishReason == "length") Assert.Equal(12, g.Ids.Length);
        else Assert.True(g.Ids.Length < 12);
        Assert.All(g.Ids, id => Assert.InRange(id, 0, CliModels.ValidVocab - 1));
        Assert.DoesNotContain(0, g.Ids); // EOS ends generation and is not listed
        Assert.Equal(tok.Decode(g.Ids.Where(id => !tok.IsSpecial(id)).ToArray()), g.Text);
    }

    [Fact]
    public void StreamedTextEqualsTheJsonTextAndStderrHasOnlyTimings()
    {
        const string args = "-p \"Hello\" -n 20 -s 11 --temp 1.0";
        var s = Ok(Run($"-m {M} {args}"));
        var j = Json(Run($"-m {M} {args} --json"));
        Assert.Equal(j.Text, s.Stdout); // stdout is a pipe here: no newline is added
        var lines = s.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length);
        Assert.Matches(@"^\s*load time = +[0-9.]+ ms$", lines[0]);
        Assert.Matches(@"^prompt eval time = +[0-9.]+ ms / +2 tokens \( *[0-9.]+ ms per token, +[0-9.]+ tokens per second\)$", lines[1]);
        Assert.Matches(@"^\s*eval time = +[0-9.]+ ms / +\d+ runs +\( *[0-9.]+ ms per token, +[0-9.]+ tokens per second\)$", lines[2]);
        Assert.Matches(@"^\s*total time = +[0-9.]+ ms / +\d+ tokens$", lines[3]);
    }

    [Fact]
    public void TextModePutsBosFirstAndMatchesTheIdsForm()
    {
        var tok = TokTestPaths.Neox;
        int[] body = tok.Encode("A long time ago");
        var text = Json(Run($"-m {M} {Greedy} -p \"A long time ago\""));
        var ids = IdsJson(Run($"generate -m {M} --ids {string.Join(",", new[] { 0 }.Concat(body))} -n 8 --json"));
        Assert.Equal(ids, text.Ids);
        var noBos = Json(Run($"-m {M} {Greedy} --no-bos -p \"A long time ago\""));
        var idsNoBos = IdsJson(Run($"generate -m {M} --ids {string.Join(",", body)} -n 8 --json"));
        Assert.Equal(idsNoBos, noBos.Ids);
        Assert.Equal(body.Length, noBos.PromptTokens);
        Assert.NotEqual(text.Ids, noBos.Ids);
    }

    [Fact]
    public void ASeedRepeatsARunAndAnotherSeedDiffers()
    {
        const string args = "-p \"Once\" -n 16 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 --ignore-eos --json";
        var a = Json(Run($"-m {M} {args} -s 5"));
        var b = Json(Run($"-m {M} {args} -s 5"));
        var c = Json(Run($"-m {M} {args} -s 6"));
        Assert.Equal(a.Ids, b.Ids);
        Assert.NotEqual(a.Ids, c.Ids);
    }

    [Fact]
    public void AStopStringSpanningTokensEndsOutputBeforeIt()
    {
        var tok = TokTestPaths.Neox;
        const string args = "-p \"Stories\" --temp 0 -n 24 --ignore-eos";
        var full = Json(Run($"-m {M} {args} --json"));
        // a 4-character stop string made of the end of one token and the start of the next
        string? stop = null;
        for (int i = full.Ids.Length / 2; i < full.Ids.Length - 1 && stop == null; i++)
        {
            string before = tok.Decode(full.Ids[..i].Where(id => !tok.IsSpecial(id)).ToArray());
            if (before.Length < 2 || !full.Text.StartsWith(before, StringComparison.Ordinal) || full.Text.Length - before.Length < 2) continue;
            string cand = full.Text.Substring(before.Length - 2, 4);
            if (cand.Any(ch => char.IsControl(ch) || char.IsSurrogate(ch) || ch == '\uFFFD' || ch == '"' || ch == '\\') || cand.StartsWith('-')) continue;
            if (tok.Decode([full.Ids[i - 1]]).Length < 2 || tok.Decode([full.Ids[i]]).Length < 2) continue;
            stop = cand;
        }
        Assert.True(stop != null, "no token boundary to build a stop string from: " + full.Text);
        string expected = full.Text[..full.Text.IndexOf(stop, StringComparison.Ordinal)];
        var streamed = Ok(Run($"-m {M} {args} -r {Q(stop!)}"));
        Assert.Equal(expected, streamed.Stdout);
        var j = Json(Run($"-m {M} {args} --stop {Q(stop!)} --json"));
        Assert.Equal("stop", j.FinishReason);
        Assert.Equal(expected, j.Text);
    }

    [Fact]
    public void SavedStateAfterPromptAThenPromptBEqualsOneRunOverAB()
    {
        var tok = TokTestPaths.Neox;
        const string a = "The cat sat.", b = " On the mat, it";
        Assert.Equal(tok.Encode(a + b), tok.Encode(a).Concat(tok.Encode(b)).ToArray()); // the split is a token boundary
        string st = Path.Combine(m.Dir, "ab-" + Guid.NewGuid().ToString("N")[..6] + ".state");
        Ok(Run($"-m {M} -n 0 -p {Q(a)} --save-state {Q(st)}"));
        Assert.True(File.Exists(st));
        var resumed = Json(Run($"-m {M} {Greedy} --load-state {Q(st)} -p {Q(b)}"));
        var oneRun = Json(Run($"-m {M} {Greedy} -p {Q(a + b)}"));
        Assert.Equal(oneRun.Ids, resumed.Ids);
        Assert.Equal(tok.Encode(b).Length, resumed.PromptTokens); // no BOS after a loaded state
    }

    [Fact]
    public void SavedStateAfterGenerationContinuesAfterTheGeneratedTokens()
    {
        var tok = TokTestPaths.Neox;
        string st = Path.Combine(m.Dir, "gen-" + Guid.NewGuid().ToString("N")[..6] + ".state");
        var first = Json(Run($"-m {M} --temp 0 -n 5 --ignore-eos --json -p \"Hello\" --save-state {Q(st)}"));
        Assert.Equal(5, first.Ids.Length);
        var resumed = Json(Run($"-m {M} {Greedy} --load-state {Q(st)} -p \" again\""));
        int[] all = [0, .. tok.Encode("Hello"), .. first.Ids, .. tok.Encode(" again")];
        var oneRun = IdsJson(Run($"generate -m {M} --ids {string.Join(",", all)} -n 8 --json"));
        Assert.Equal(oneRun, resumed.Ids);
    }

    [Fact]
    public void IdsFormWithoutTokenizerKeepsItsOutputAndHasNoEosStop()
    {
        string p = Q(m.Plain);
        var plain = Ok(Run($"generate -m {p} --ids 1,2,3 -n 40"));
        Assert.Matches(new Regex(@"^\d+(,\d+){39}\n$"), plain.Stdout);
        Assert.Equal("", plain.Stderr);
        var ids = IdsJson(Run($"generate -m {p} --ids 1,2,3 -n 40 --json"));
        Assert.Equal(plain.Stdout.Trim().Split(',').Select(int.Parse), ids);
        Assert.All(ids, id => Assert.InRange(id, 0, CliModels.PlainVocab - 1));
        Assert.Equal(ids, IdsJson(Run($"-m {p} --ids 1,2,3 -n 40 --json"))); // the root command takes it too
        // the chained form: state saved after generating continues like one run over everything
        string st = Path.Combine(m.Dir, "plain-" + Guid.NewGuid().ToString("N")[..6] + ".state");
        var g = IdsJson(Run($"generate -m {p} --ids 1,2,3 -n 4 --json --save-state {Q(st)}"));
        var resumed = IdsJson(Run($"generate -m {p} --ids 7,8 -n 6 --json --load-state {Q(st)}"));
        var oneRun = IdsJson(Run($"generate -m {p} --ids {string.Join(",", new[] { 1, 2, 3 }.Concat(g).Concat([7, 8]))} -n 6 --json"));
        Assert.Equal(oneRun, resumed);
    }

    [Fact]
    public void TokenizeAndDetokenizeRoundTrip()
    {
        const string text = "Hello, wörld! 東京 🎉\n  indented\tand <|endoftext|> literal";
        var tok = TokTestPaths.Neox;
        var t = Ok(Run($"tokenize -m {M}", stdin: text));
        int[] ids = JsonSerializer.Deserialize<int[]>(t.Stdout)!;
        Assert.Equal(tok.Encode(text), ids);
        var d = Ok(Run($"detokenize -m {M} --ids {string.Join(",", ids)}"));
        Assert.Equal(text, d.Stdout);
        var d2 = Ok(Run($"detokenize -m {M}", stdin: t.Stdout));
        Assert.Equal(text, d2.Stdout);
        var withBos = Ok(Run($"tokenize -m {M} --bos -p \"Hi there\""));
        Assert.Equal([0, .. tok.Encode("Hi there")], JsonSerializer.Deserialize<int[]>(withBos.Stdout)!);
    }
}
