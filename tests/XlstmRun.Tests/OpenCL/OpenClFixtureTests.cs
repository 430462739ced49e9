using XlstmRun.Backends.OpenCL;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Tests.Engine;
using XlstmRun.Tests.Support;
using Xunit;

namespace XlstmRun.Tests.OpenCL;

/// <summary>
/// The OpenCL engine (PoCL in CI) on F32 conversions of every fixture, against transformers' float64 reference, with the
/// same checks and tolerance as <see cref="CpuFixtureTests"/>. No device = failure (the constructor throws).
/// </summary>
public class OpenClFixtureTests
{
    public const double Tolerance = CpuFixtureTests.Tolerance;

    public static TheoryData<string> Fixtures() => new(TestPaths.FixtureNames);

    private sealed class Run : IDisposable
    {
        public Run(string fixture, bool? workGroupKernels = null)
        {
            File = GgufFile.Open(Models.Converted(fixture, GgmlType.F32));
            Backend = new OpenClBackend(-1, 0, workGroupKernels);
            Runner = new ModelRunner(File, Backend);
            Ref = new Reference(TestPaths.Fixture(fixture));
        }
        public GgufFile File { get; }
        public OpenClBackend Backend { get; }
        public ModelRunner Runner { get; }
        public Reference Ref { get; }
        public void Dispose() { Backend.Dispose(); File.Dispose(); }
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void PrefillLogitsMatchReference(string fixture)
    {
        using var x = new Run(fixture);
        var (r, rf) = (x.Runner, x.Ref);
        var logits = new float[rf.InputIds.Length * r.Config.Vocab];
        r.Forward(rf.InputIds, LogitsMode.All, logits);
        Assert.InRange(Reference.RelErr(logits, rf["logits_prefill"]), 0, Tolerance);
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void StepLogitsMatchReference(string fixture)
    {
        using var x = new Run(fixture);
        var (r, rf) = (x.Runner, x.Ref);
        int V = r.Config.Vocab;
        var all = new float[rf.InputIds.Length * V];
        for (int t = 0; t < rf.InputIds.Length; t++) r.Forward(rf.InputIds.AsSpan(t, 1), LogitsMode.Last, all.AsSpan(t * V, V));
        Assert.InRange(Reference.RelErr(all, rf["logits_step"]), 0, Tolerance);
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void StateAfterPromptMatchesReference(string fixture)
    {
        using var x = new Run(fixture);
        var (r, rf) = (x.Runner, x.Ref);
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
        using var x = new Run(fixture);
        var (r, rf) = (x.Runner, x.Ref);
        int V = r.Config.Vocab;
        var last = new float[V];
        r.Forward(rf.InputIds, LogitsMode.Last, last);
        var ids = new List<int>();
        var glog = new float[rf.GreedyIds.Length * V];
        int next = CpuFixtureTests.ArgMax(last);
        for (int i = 0; i < rf.GreedyIds.Length; i++)
        {
            ids.Add(next);
            r.Forward(rf.GreedyIds.AsSpan(i, 1), LogitsMode.Last, glog.AsSpan(i * V, V));
            next = CpuFixtureTests.ArgMax(glog.AsSpan(i * V, V));
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
        using var x = new Run(fixture);
        var r = x.Runner;
        var ids = new List<int> { r.ForwardGreedy(x.Ref.InputIds, r.Config.Vocab) };
        while (ids.Count < x.Ref.GreedyIds.Length) ids.Add(r.StepGreedy(ids[^1], r.Config.Vocab));
        Assert.Equal(x.Ref.GreedyIds, ids);
    }

    /// <summary>The other matmul kernel family (work-group reductions and local-memory tiles, the GPU default) on PoCL.</summary>
    [Theory, MemberData(nameof(Fixtures))]
    public void WorkGroupKernelsMatchReference(string fixture)
    {
        using var x = new Run(fixture, workGroupKernels: true);
        var (r, rf) = (x.Runner, x.Ref);
        Assert.True(x.Backend.WorkGroupKernels);
        int V = r.Config.Vocab;
        var logits = new float[rf.InputIds.Length * V];
        r.Forward(rf.InputIds, LogitsMode.All, logits);
        Assert.InRange(Reference.RelErr(logits, rf["logits_prefill"]), 0, Tolerance);
        r.ResetState();
        var all = new float[rf.InputIds.Length * V];
        for (int t = 0; t < rf.InputIds.Length; t++) r.Forward(rf.InputIds.AsSpan(t, 1), LogitsMode.Last, all.AsSpan(t * V, V));
        Assert.InRange(Reference.RelErr(all, rf["logits_step"]), 0, Tolerance);
    }

    /// <summary>Weights split into many small device buffers give the same logits as whole weights.</summary>
    [Fact]
    public void SplitWeightsGiveTheSameLogits()
    {
        var rf = new Reference(TestPaths.Fixture("tiny-f32"));
        using var f = GgufFile.Open(Models.Converted("tiny-f32", GgmlType.Q8_0));
        float[] Logits(OpenClBackend be)
        {
            using var _ = be;
            var r = new ModelRunner(f, be);
            var l = new float[rf.InputIds.Length * r.Config.Vocab];
            r.Forward(rf.InputIds, LogitsMode.All, l);
            return l;
        }
        var whole = Logits(new OpenClBackend());
        var small = new OpenClBackend(-1, 4096);
        var w = (ClWeight)small.LoadWeight(f.Tensor(TensorNames.Output));
        Assert.True(w.PartCount > 1, $"output weight in {w.PartCount} part(s)");
        var split = Logits(small);
        Assert.Equal(whole, split);
    }
}
