using XlstmRun.Fuzz;
using XlstmRun.Tests.Support;
using Xunit;

namespace XlstmRun.Tests.Hostile;

/// <summary>
/// The fuzz harness's mutation loop, seeded and short, in the normal suite: every mutant of the seed corpus
/// (fuzz/corpus) goes through the real parsers and must be accepted or refused with a clean one-line BadInputException;
/// any other exception, a run over 10 s or over 512 MiB allocated, fails. The long runs (≥ 1M per parser) are in NOTES.
/// </summary>
public class SeededMutationTests
{
    [Theory]
    [InlineData("gguf", 3000)]
    [InlineData("safetensors", 2000)]
    [InlineData("state", 20000)]
    [InlineData("tokenizer", 3000)]
    public void MutantsAreAcceptedOrRefusedCleanly(string target, int runs)
    {
        var dir = Path.Combine(TestPaths.RepoRoot, "fuzz", "corpus", target);
        var pool = Directory.GetFiles(dir).OrderBy(p => p, StringComparer.Ordinal).Select(File.ReadAllBytes).ToList();
        Assert.NotEmpty(pool);
        // every seed is valid: the mutants start from inputs the parsers accept
        foreach (var seed in pool)
        {
            Assert.True(FuzzTargets.Check(FuzzTargets.Get(target), seed, out bool ok) == null && ok, $"a {target} seed is not accepted");
        }
        var findings = new List<string>();
        var stats = new MutationStats();
        try
        {
            MutationLoop.Run(FuzzTargets.Get(target), pool, seed: 20261130, runs, FuzzTargets.IsJson(target), stats,
                (i, input, e, ms) => findings.Add($"mutant {i} ({input.Length} bytes, {ms} ms): {e.GetType().Name}: {e.Message}\n{e.InnerException}"));
        }
        finally
        {
            FuzzTargets.Cleanup();
        }
        Assert.Equal(runs, stats.Runs);
        Assert.True(findings.Count == 0, string.Join("\n\n", findings.Take(3)));
        // the mutants are not all trivially rejected: some still parse (the loop reaches deep into the parsers)
        Assert.True(stats.Accepted > 0, $"no {target} mutant was accepted");
    }
}
