using XlstmRun.Backends.Cpu;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Tests.Support;
using Xunit;

namespace XlstmRun.Tests.Engine;

/// <summary>The CPU engine on F32 conversions of every fixture, against transformers' float64 reference.</summary>
public class CpuFixtureTests
{
    public const double Tolerance = 3e-5;

    public static TheoryData<string> Fixtures() => new(TestPaths.FixtureNames);

    private static (GgufFile, ModelRunner, Reference) Open(string fixture)
    {
        var f = GgufFile.Open(Models.Converted(fixture, GgmlType.F32));
        return (f, new ModelRunner(f, new CpuBackend(2)), new Reference(TestPaths.Fixture(fixture)));
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void PrefillLogitsMatchReference(string fixture)
    {
        var (f, r, rf) = Open(fixture);
        using var _ = f;
        var logits = new float[rf.InputIds.Length * r.Config.Vocab];
        r.Forward(rf.InputIds, LogitsMode.All, logits);
        Assert.InRange(Reference.RelErr(logits, rf["logits_prefill"]), 0, Tolerance);
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void StepLogitsMatchReference(string fixture)
    {
        var (f, r, rf) = Open(fixture);
        using var _ = f;
        int V = r.Config.Vocab;
        var all = new float[rf.InputIds.Length * V];
        for (int t = 0; t < rf.InputIds.Length; t++) r.Forward(rf.InputIds.AsSpan(t, 1), LogitsMode.Last, all.AsSpan(t * V, V));
        Assert.InRange(Reference.RelErr(all, rf["logits_step"]), 0, Tolerance);
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void StateAfterPromptMatchesReference(string fixture)
    {
        var (f, r, rf) = Open(fixture);
        using var _ = f;
        r.Forward(rf.InputIds, LogitsMode.None, default);
        var s = r.SaveState();
        var c = r.Config;
        for (int b = 0; b < c.Blocks; b++)
        {
            long o = b * c.StateFloatsPerBlock;
            int nc = c.Heads * c.DQk * c.DV, nn = c.Heads * c.DQk;
            Assert.InRange(Reference.RelErr(s.AsSpan((int)o, nc), rf[$"state.{b}.C"]), 0, Tolerance);
            Assert.InRange(Reference.RelErr(s.AsSpan((int)o + nc, nn), rf[$"state.{b}.n"]), 0, Tolerance);
            Assert.InRange(Reference.RelErr(s.AsSpan((int)o + nc + nn, c.Heads), rf[$"state.{b}.m"]), 0, Tolerance);
        }
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void GreedyContinuationAndContinuePrefillMatchReference(string fixture)
    {
        var (f, r, rf) = Open(fixture);
        using var _ = f;
        int V = r.Config.Vocab;
        var last = new float[V];
        r.Forward(rf.InputIds, LogitsMode.Last, last);
        var ids = new List<int>();
        var glog = new float[rf.GreedyIds.Length * V];
        int next = ArgMax(last);
        for (int i = 0; i < rf.GreedyIds.Length; i++)
        {
            ids.Add(next);
            // feed the reference's token so that one early mismatch does not cascade into every later logit
            r.Forward(rf.GreedyIds.AsSpan(i, 1), LogitsMode.Last, glog.AsSpan(i * V, V));
            next = ArgMax(glog.AsSpan(i * V, V));
        }
        Assert.Equal(rf.GreedyIds, ids);
        Assert.InRange(Reference.RelErr(glog, rf["greedy_logits"]), 0, Tolerance);
        if (rf.ContinueIds.Length > 0)
        {
            var cont = new float[rf.ContinueIds.Length * V];
            r.Forward(rf.ContinueIds, LogitsMode.All, cont);
            Assert.InRange(Reference.RelErr(cont, rf["logits_continue"]), 0, Tolerance);
        }
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void GreedyStepOpMatchesReferenceIds(string fixture)
    {
        var (f, r, rf) = Open(fixture);
        using var _ = f;
        var ids = new List<int> { r.ForwardGreedy(rf.InputIds, r.Config.Vocab) };
        while (ids.Count < rf.GreedyIds.Length) ids.Add(r.StepGreedy(ids[^1], r.Config.Vocab));
        Assert.Equal(rf.GreedyIds, ids);
    }

    internal static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }
}
