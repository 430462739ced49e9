using Xunit;
using static XlstmRun.Tests.Cli.BatchTestKit;
using static XlstmRun.Tests.Support.CliRunner;

namespace XlstmRun.Tests.Cli;

/// <summary>`batch --shard` covers every line exactly once; `--shard auto` reads Slurm and Kubernetes variables;
/// `batch-merge` joins shard outputs in input order and reports what is missing or duplicated.</summary>
public class BatchShardTests(CliModels m) : IClassFixture<CliModels>
{
    private string M => Q(m.Model);

    /// <summary>11 lines: 9 prompt lines (one malformed), 2 blank.</summary>
    private static string WriteInput(string dir)
    {
        string input = Path.Combine(dir, "in.jsonl");
        File.WriteAllLines(input,
        [
            """{"id": "a", "prompt": "One", "n_predict": 2, "temperature": 0}""",
            """{"prompt": "Two", "n_predict": 3}""",
            "",
            """{"id": "c", "prompt": "Three", "n_predict": 2}""",
            """{"id": "d", "prompt": 4}""",
            """{"id": "e", "prompt": "Five", "max_tokens": 2, "temperature": 0}""",
            "",
            """{"id": "f", "prompt": "Seven", "n_predict": 2}""",
            """{"id": "g", "prompt": "Eight", "n_predict": 1}""",
            """{"id": "h", "prompt": "Nine", "n_predict": 2, "seed": 4}""",
            """{"id": "i", "prompt": "Ten", "n_predict": 0}""",
        ]);
        return input;
    }

    private static readonly int[] PromptLines = [1, 2, 4, 5, 6, 8, 9, 10, 11];

    // one sequence at a time: records then complete in input order, so the unsharded output is the merged file byte for
    // byte (with --parallel > 1 they complete in any order and only the records per line are the same)
    private string Batch(string input, string output, string extra = "") => $"batch -m {M} -i {Q(input)} -o {Q(output)} -s 9 --parallel 1 {extra}";

    [Fact]
    public void ShardsCoverEveryLineExactlyOnceAndMergeGivesTheUnshardedFile()
    {
        string dir = NewDir(m, "shards"), input = WriteInput(dir);
        string whole = Path.Combine(dir, "whole.jsonl");
        Ok(Run(Batch(input, whole)));
        Assert.Equal(PromptLines, RawByLine(whole).Keys.Order());
        foreach (int n in new[] { 2, 3, 4, 12 })
        {
            var seen = new List<int>();
            var outs = new List<string>();
            for (int k = 0; k < n; k++)
            {
                string o = Path.Combine(dir, $"n{n}-{k}.jsonl");
                outs.Add(o);
                Ok(Run(Batch(input, o, $"--shard {k}/{n}")));
                var lines = RawByLine(o).Keys.ToList();
                Assert.All(lines, line => Assert.Equal(k, (line - 1) % n)); // index = line number - 1, ≡ K mod N
                seen.AddRange(lines);
            }
            Assert.Equal(PromptLines, seen.Order()); // every prompt line once, none twice
            string merged = Path.Combine(dir, $"merged-{n}.jsonl");
            // shard outputs in any order
            var r = Ok(Run($"batch-merge -i {Q(input)} -o {Q(merged)} {string.Join(' ', Enumerable.Reverse(outs).Select(Q))}"));
            Assert.Contains($"wrote {PromptLines.Length} records", r.Stderr);
            Assert.Equal(File.ReadAllText(whole), File.ReadAllText(merged)); // per-line seeds: byte for byte the same
        }
        // a shard past the end of a short file is empty, and fine
        string empty = Path.Combine(dir, "n12-11.jsonl");
        Assert.Equal("", File.ReadAllText(empty));
    }

    [Fact]
    public void ShardAutoReadsSlurmAndKubernetesVariables()
    {
        string dir = NewDir(m, "auto"), input = WriteInput(dir);
        List<int> Lines(Dictionary<string, string> env, string extra = "")
        {
            string o = Path.Combine(dir, Guid.NewGuid().ToString("N")[..8] + ".jsonl");
            var r = Run(Batch(input, o, "--shard auto " + extra), env: env);
            Assert.True(r.ExitCode == 0, r.Stderr);
            return RawByLine(o).Keys.Order().ToList();
        }
        var none = new Dictionary<string, string> { ["SLURM_ARRAY_TASK_ID"] = "", ["JOB_COMPLETION_INDEX"] = "", ["XLSTM_SHARD_COUNT"] = "" };
        Dictionary<string, string> Env(params (string K, string V)[] kv)
        {
            var e = new Dictionary<string, string>(none);
            foreach (var (k, v) in kv) e[k] = v;
            return e;
        }
        // Slurm: --array=0-2 → task 1 of 3
        Assert.Equal([2, 5, 8, 11], Lines(Env(("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "3"))));
        // Slurm: --array=1-3 → task 3 is shard 2 (the minimum is subtracted)
        Assert.Equal([6, 9], Lines(Env(("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "3"), ("SLURM_ARRAY_TASK_MIN", "1"))));
        // Slurm: --array=10-16:2 (4 tasks) → task 14 is shard 2 (lines 3, 7 and 11; 3 and 7 are blank)
        Assert.Equal([11], Lines(Env(("SLURM_ARRAY_TASK_ID", "14"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "10"), ("SLURM_ARRAY_TASK_STEP", "2"))));
        // Kubernetes Indexed Job: the index from the pod, the count from --shard-count or $XLSTM_SHARD_COUNT
        Assert.Equal([1, 5, 9], Lines(Env(("JOB_COMPLETION_INDEX", "0")), "--shard-count 4"));
        Assert.Equal([4, 8], Lines(Env(("JOB_COMPLETION_INDEX", "3"), ("XLSTM_SHARD_COUNT", "4"))));

        string o2 = Path.Combine(dir, "bad.jsonl");
        void Bad(string args, Dictionary<string, string> env, string message)
        {
            var r = Run(Batch(input, o2, args), env: env);
            Assert.True(r.ExitCode == 2, $"{args}: exit {r.ExitCode}: {r.Stderr}");
            Assert.Contains(message, r.Stderr);
            Assert.Single(r.Stderr.Trim().Split('\n'));
            Assert.False(File.Exists(o2));
        }
        Bad("--shard auto", none, "neither $SLURM_ARRAY_TASK_ID");
        Bad("--shard auto", Env(("JOB_COMPLETION_INDEX", "1")), "--shard-count");
        Bad("--shard auto", Env(("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "3")), "not in 0..2");
        Bad("--shard auto", Env(("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "3")), "not an integer");
        Bad("--shard 3/3", none, "not in 0..2");
        Bad("--shard 1", none, "expected K/N");
        Bad("--shard 0/0", none, "1 or more");
        Bad("--shard 0/2 --shard-count 2", none, "--shard-count goes with --shard auto");
    }

    [Fact]
    public void MergeReportsMissingDuplicatedIncompleteAndForeignFiles()
    {
        string dir = NewDir(m, "merge"), input = WriteInput(dir);
        var shard = new string[3];
        for (int k = 0; k < 3; k++) Ok(Run(Batch(input, shard[k] = Path.Combine(dir, $"s{k}.jsonl"), $"--shard {k}/3")));
        string merged = Path.Combine(dir, "merged.jsonl");
        string Merge(params string[] files) => $"batch-merge -i {Q(input)} -o {Q(merged)} {string.Join(' ', files.Select(Q))}";

        // a shard missing: exit 1, lines listed, nothing written
        var r = Run(Merge(shard[0], shard[2]));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("4 lines missing: 2, 5, 8, 11", r.Stderr);
        Assert.False(File.Exists(merged));
        // --partial writes what there is, still exit 1
        r = Run(Merge(shard[0], shard[2]) + " --partial");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal([1, 4, 6, 9, 10], RawByLine(merged).Keys);
        File.Delete(merged);

        // a line in two files: duplicated
        string extra = Path.Combine(dir, "extra.jsonl");
        File.WriteAllText(extra, File.ReadAllLines(shard[1])[0] + "\n");
        r = Run(Merge(shard[0], shard[1], shard[2], extra));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("1 line duplicated: 2 (", r.Stderr);
        Assert.False(File.Exists(merged));

        // an interrupted shard (last record cut short): reported, its line missing
        string cut = Path.Combine(dir, "cut.jsonl");
        string s1 = File.ReadAllText(shard[1]);
        File.WriteAllText(cut, s1[..(s1.TrimEnd('\n').LastIndexOf('\n') + 10)]);
        r = Run(Merge(shard[0], cut, shard[2]));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("cut.jsonl: its last record is incomplete", r.Stderr);
        Assert.Contains("1 line missing: 11", r.Stderr);

        // files that are not outputs of this input: exit 2
        string junk = Path.Combine(dir, "junk.jsonl");
        File.WriteAllText(junk, "hello\n");
        r = Run(Merge(shard[0], junk));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("not a batch record", r.Stderr);
        string wrongId = Path.Combine(dir, "wrong-id.jsonl");
        File.WriteAllText(wrongId, File.ReadAllText(shard[0]).Replace("\"id\":\"a\"", "\"id\":\"zz\""));
        r = Run(Merge(wrongId, shard[1], shard[2]));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("another input file", r.Stderr);
        r = Run(Merge(shard[0], shard[0]));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("given twice", r.Stderr);

        // a shard still being written: exit 2, not a silent partial merge
        string running = Path.Combine(dir, "running.jsonl");
        using (var p = new Running(Batch(input, running, "--shard 1/3"), new Dictionary<string, string> { ["XLSTM_BATCH_TEST_CRASH"] = "pause-after:1" }))
        {
            p.WaitPaused();
            r = Run(Merge(shard[0], running, shard[2]));
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("still writing", r.Stderr);
            p.KillNine();
        }

        // complete: exit 0, to a file (existing only with --force) or to standard output
        r = Ok(Run(Merge(shard[0], shard[1], shard[2])));
        Assert.Equal(PromptLines, RawByLine(merged).Keys);
        Assert.Equal(2, Run(Merge(shard[0], shard[1], shard[2])).ExitCode);
        Ok(Run(Merge(shard[0], shard[1], shard[2]) + " --force"));
        var so = Ok(Run($"batch-merge -i {Q(input)} -o - {Q(shard[2])} {Q(shard[1])} {Q(shard[0])}"));
        Assert.Equal(File.ReadAllText(merged), so.Stdout);
        Assert.Equal(2, Run($"batch-merge -i {Q(input)} -o {Q(shard[0])} --force {Q(shard[0])} {Q(shard[1])} {Q(shard[2])}").ExitCode);
    }
}
