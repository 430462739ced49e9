using Xunit;
using static XlstmRun.Tests.Cli.BatchTestKit;
using static XlstmRun.Tests.Support.CliRunner;

namespace XlstmRun.Tests.Cli;

/// <summary>
/// Crash safety: `batch` really killed with SIGKILL (by its test hook at chosen records, including halfway through a
/// record and between two records, and from outside at an arbitrary moment), then `--resume`: every prompt line has
/// exactly one record, the same as an uninterrupted run's.
/// </summary>
public class BatchCrashTests(CliModels m) : IClassFixture<CliModels>
{
    private string M => Q(m.Model);

    /// <summary>The input: results (greedy and sampled), malformed lines, a duplicate id, and a line whose record is
    /// over 4 KiB (its id is long).</summary>
    private (string Dir, string Input, Dictionary<int, string> Reference) Setup(string tag)
    {
        string dir = NewDir(m, tag), input = Path.Combine(dir, "in.jsonl");
        string longId = new string('L', 5000);
        File.WriteAllLines(input,
        [
            """{"id": "g1", "prompt": "Hello there", "n_predict": 5, "temperature": 0}""",
            """{"id": "s2", "prompt": "Once upon a time", "n_predict": 6}""",
            """{"id": "bad", "prompt": 42}""",
            "",
            $$"""{"id": "{{longId}}", "prompt": "A long record", "n_predict": 4}""",
            """{"id": "g1", "prompt": "duplicate id"}""",
            """{"prompt": "no id\ud800"}""",
            """{"id": "s8", "prompt": "The weather", "n_predict": 7, "temperature": 1.2}""",
            "not json at all",
            """{"id": "g10", "prompt": "Last line", "n_predict": 3, "temperature": 0}""",
        ]);
        string reference = Path.Combine(dir, "reference.jsonl");
        Ok(Run(Args(input, reference)));
        var refs = RawByLine(reference);
        Assert.Equal(9, refs.Count);
        Assert.True(refs[5].Length > 4096);
        return (dir, input, refs);
    }

    // one sequence at a time, so that a kill or signal lands at a known line (the slots of --parallel are tested elsewhere)
    private string Args(string input, string output, string extra = "") => $"batch -m {M} -i {Q(input)} -o {Q(output)} -s 77 --parallel 1 {extra}";

    [Theory]
    [InlineData("kill-before:1")] // nothing written yet
    [InlineData("kill-torn:1")]   // half of the first record
    [InlineData("kill-after:3")]  // between two records
    [InlineData("kill-torn:4")]   // halfway through the record over 4 KiB
    [InlineData("kill-before:9")] // before the last record
    [InlineData("kill-torn:9")]   // halfway through the last record
    public void KilledAtARecordThenResumedHasExactlyOneRecordPerLine(string hook)
    {
        var (dir, input, refs) = Setup("crash");
        string output = Path.Combine(dir, "out.jsonl");
        RunKilled(Args(input, output), hook);
        string left = File.Exists(output) ? File.ReadAllText(output) : "";
        if (hook.StartsWith("kill-torn")) Assert.False(left.EndsWith('\n'), "the hook should leave half a record");
        var r = Ok(Run(Args(input, output, "--resume")));
        if (hook.StartsWith("kill-torn")) Assert.Contains("cut off an incomplete last record", r.Stderr);
        Assert.Equal(refs.OrderBy(x => x.Key), RawByLine(output).OrderBy(x => x.Key));
        Assert.EndsWith("\n", File.ReadAllText(output));
    }

    [Fact]
    public void KilledAgainAndAgainDuringResumesStillEndsWithOneRecordPerLine()
    {
        var (dir, input, refs) = Setup("crash-chain");
        string output = Path.Combine(dir, "out.jsonl");
        // each run dies at its 2nd record, half written or not; error records are never written twice
        string[] hooks = ["kill-torn:2", "kill-after:2", "kill-torn:2", "kill-before:2", "kill-after:1", "kill-torn:2"];
        foreach (var hook in hooks) RunKilled(Args(input, output, "--resume"), hook);
        // and one killed from outside while it waits between two records
        using (var p = new Running(Args(input, output, "--resume"), new Dictionary<string, string> { ["XLSTM_BATCH_TEST_CRASH"] = "pause-after:1" }))
        {
            p.WaitPaused();
            Assert.Equal(137, p.KillNine());
        }
        var partial = RawByLine(output); // fails on a duplicated line
        Assert.InRange(partial.Count, 1, 8);
        Ok(Run(Args(input, output, "--resume")));
        Assert.Equal(refs.OrderBy(x => x.Key), RawByLine(output).OrderBy(x => x.Key));
    }

    [Fact]
    public void KilledFromOutsideWhileGeneratingThenResumed()
    {
        string dir = NewDir(m, "crash-outside"), input = Path.Combine(dir, "in.jsonl"), output = Path.Combine(dir, "out.jsonl");
        File.WriteAllLines(input, Enumerable.Range(1, 8).Select(i => $$"""{"id": "p{{i}}", "prompt": "Prompt number {{i}}", "n_predict": 60, "temperature": 0.7}"""));
        string reference = Path.Combine(dir, "reference.jsonl");
        Ok(Run(Args(input, reference)));
        var refs = RawByLine(reference);
        var rnd = new Random(1234);
        for (int round = 0; round < 3; round++)
        {
            using var p = new Running(Args(input, output, round == 0 ? "" : "--resume"));
            // wait for some records (file size only: reading it would take the lock the batch holds), then a random moment
            var until = DateTime.UtcNow.AddSeconds(120);
            while (!p.HasExited && DateTime.UtcNow < until && (!File.Exists(output) || new FileInfo(output).Length < 200 * (round + 1))) Thread.Sleep(20);
            Thread.Sleep(rnd.Next(0, 300));
            int rc = p.KillNine();
            Assert.True(rc is 137 or 0, $"exit {rc}: {p.Stderr}");
            if (File.Exists(output))
            {
                var text = File.ReadAllText(output);
                int complete = text.LastIndexOf('\n') + 1;
                RawByLine(WriteComplete(dir, text[..complete]));
            }
        }
        Ok(Run(Args(input, output, "--resume")));
        Assert.Equal(refs.OrderBy(x => x.Key), RawByLine(output).OrderBy(x => x.Key));
    }

    [Fact]
    public void SigtermStopsAfterTheCurrentTokenKeepsWhatIsDoneAndResumeFinishes()
    {
        string dir = NewDir(m, "sigterm"), input = Path.Combine(dir, "in.jsonl"), output = Path.Combine(dir, "out.jsonl");
        File.WriteAllLines(input,
        [
            """{"id": "short", "prompt": "Quick", "n_predict": 2, "temperature": 0}""",
            """{"id": "endless", "prompt": "Go on", "n_predict": 1000000}""",
            """{"id": "after", "prompt": "Later", "n_predict": 2, "temperature": 0}""",
        ]);
        using (var p = new Running(Args(input, output, "--ignore-eos")))
        {
            var until = DateTime.UtcNow.AddSeconds(120);
            while (!p.HasExited && DateTime.UtcNow < until && (!File.Exists(output) || new FileInfo(output).Length == 0)) Thread.Sleep(20);
            Thread.Sleep(300); // well into the endless line
            using (var kill = System.Diagnostics.Process.Start("kill", $"-TERM {p.Pid}")) kill.WaitForExit();
            Assert.Equal(143, p.WaitExit(30_000));
            Assert.Contains("SIGTERM", p.Stderr);
            Assert.Contains("2 lines not done", p.Stderr);
        }
        Assert.Equal([1], RawByLine(output).Keys); // the endless line was not written, the last not started
        File.WriteAllLines(input, File.ReadAllLines(input).Select(l => l.Replace("1000000", "3")));
        var r = Ok(Run(Args(input, output, "--ignore-eos --resume")));
        Assert.Contains("1 already done", r.Stderr);
        Assert.Equal([1, 2, 3], RawByLine(output).Keys.Order());
    }

    private static string WriteComplete(string dir, string text)
    {
        string p = Path.Combine(dir, "complete-part.jsonl");
        File.WriteAllText(p, text);
        return p;
    }
}
