using XlstmRun.Backends.Cpu;
using XlstmRun.Backends.Vulkan;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Tests.Engine;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.Vulkan;

/// <summary>A model file opened on a backend (Vulkan on the test device, or the CPU engine).</summary>
public sealed class Session : IDisposable
{
    public GgufFile File { get; }
    public IBackend Backend { get; }
    public ModelRunner Runner { get; }
    public int Vocab => Runner.Config.Vocab;

    public Session(string path, bool vulkan, int maxBatch = 256, VulkanOptions? options = null)
    {
        File = GgufFile.Open(path);
        Backend = vulkan ? VulkanTestDevice.NewBackend(options: options) : new CpuBackend(2, int8Activations: false);
        Runner = new ModelRunner(File, Backend, maxBatch);
    }

    public float[] Logits(ReadOnlySpan<int> ids)
    {
        var l = new float[ids.Length * Vocab];
        Runner.Forward(ids, LogitsMode.All, l);
        return l;
    }

    /// <summary>Feed ids one at a time (the replayed step), logits of each.</summary>
    public float[] StepLogits(ReadOnlySpan<int> ids)
    {
        var l = new float[ids.Length * Vocab];
        for (int t = 0; t < ids.Length; t++) Runner.Forward(ids.Slice(t, 1), LogitsMode.Last, l.AsSpan(t * Vocab, Vocab));
        return l;
    }

    public List<int> Greedy(int[] prompt, int n)
    {
        var ids = new List<int> { Runner.ForwardGreedy(prompt, Vocab) };
        while (ids.Count < n) ids.Add(Runner.StepGreedy(ids[^1], Vocab));
        return ids;
    }

    public void Dispose()
    {
        Backend.Dispose();
        File.Dispose();
    }
}

/// <summary>
/// The Vulkan backend on lavapipe: F32 conversions of every fixture against transformers' float64 reference (the same
/// checks and tolerance as <see cref="CpuFixtureTests"/>), and every weight type against the CPU engine on the same file.
/// </summary>
[Collection("vulkan")]
public class VulkanFixtureTests
{
    public const double Tolerance = CpuFixtureTests.Tolerance;
    private readonly ITestOutputHelper _out;
    public VulkanFixtureTests(ITestOutputHelper output) { _out = output; }

    public static TheoryData<string> Fixtures() => new(TestPaths.FixtureNames);

    private static (Session, Reference) Open(string fixture, GgmlType type = GgmlType.F32) =>
        (new Session(Models.Converted(fixture, type), vulkan: true), new Reference(TestPaths.Fixture(fixture)));

    [Theory, MemberData(nameof(Fixtures))]
    public void PrefillLogitsMatchReference(string fixture)
    {
        var (s, rf) = Open(fixture);
        using var _ = s;
        double e = Reference.RelErr(s.Logits(rf.InputIds), rf["logits_prefill"]);
        _out.WriteLine($"{fixture}: prefill rel err {e:E2}");
        Assert.InRange(e, 0, Tolerance);
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void StepLogitsMatchReference(string fixture)
    {
        var (s, rf) = Open(fixture);
        using var _ = s;
        double e = Reference.RelErr(s.StepLogits(rf.InputIds), rf["logits_step"]);
        _out.WriteLine($"{fixture}: step rel err {e:E2}");
        Assert.InRange(e, 0, Tolerance);
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void StateAfterPromptMatchesReference(string fixture)
    {
        var (s, rf) = Open(fixture);
        using var _ = s;
        s.Runner.Forward(rf.InputIds, LogitsMode.None, default);
        var st = s.Runner.SaveState();
        var c = s.Runner.Config;
        for (int b = 0; b < c.Blocks; b++)
        {
            long o = b * c.StateFloatsPerBlock;
            int nc = c.Heads * c.DQk * c.DV, nn = c.Heads * c.DQk;
            Assert.InRange(Reference.RelErr(st.AsSpan((int)o, nc), rf[$"state.{b}.C"]), 0, Tolerance);
            Assert.InRange(Reference.RelErr(st.AsSpan((int)o + nc, nn), rf[$"state.{b}.n"]), 0, Tolerance);
            Assert.InRange(Reference.RelErr(st.AsSpan((int)o + nc + nn, c.Heads), rf[$"state.{b}.m"]), 0, Tolerance);
        }
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void GreedyContinuationAndContinuePrefillMatchReference(string fixture)
    {
        var (s, rf) = Open(fixture);
        using var _ = s;
        int V = s.Vocab;
        var last = new float[V];
        s.Runner.Forward(rf.InputIds, LogitsMode.Last, last);
        var ids = new List<int>();
        var glog = new float[rf.GreedyIds.Length * V];
        int next = CpuFixtureTests.ArgMax(last);
        for (int i = 0; i < rf.GreedyIds.Length; i++)
        {
            ids.Add(next);
            s.Runner.Forward(rf.GreedyIds.AsSpan(i, 1), LogitsMode.Last, glog.AsSpan(i * V, V));
            next = CpuFixtureTests.ArgMax(glog.AsSpan(i * V, V));
        }
        Assert.Equal(rf.GreedyIds, ids);
        Assert.InRange(Reference.RelErr(glog, rf["greedy_logits"]), 0, Tolerance);
        if (rf.ContinueIds.Length > 0)
        {
            double e = Reference.RelErr(s.Logits(rf.ContinueIds), rf["logits_continue"]);
            _out.WriteLine($"{fixture}: continue rel err {e:E2}");
            Assert.InRange(e, 0, Tolerance);
        }
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void GreedyStepOpMatchesReferenceIds(string fixture)
    {
        var (s, rf) = Open(fixture);
        using var _ = s;
        Assert.Equal(rf.GreedyIds, s.Greedy(rf.InputIds, rf.GreedyIds.Length));
    }

    /// <summary>
    /// Every weight type: Vulkan against the CPU engine on the same file. Both dequantize to the same float32 weights and
    /// compute in float32, so the difference is summation order only. Measured on lavapipe 2026-11-27
    /// (docs/notes/vulkan-backend.md): 1e-6 to 7e-6 over whole tensors, except tiny-bf16 at q4_0, where one prompt position
    /// (160) is ill-conditioned (the CPU engine's own step and chunkwise forms differ there by 2.7e-5 over the prompt) and
    /// the prompt logits differ by up to 8.6e-5. The 95th percentile of the per-position errors is at most 1.2e-5.
    /// Bounds: whole tensors 2e-4; per-position 95th percentile 4e-5 (catches anything systematic); greedy ids identical.
    /// </summary>
    public static TheoryData<string, GgmlType> TypeCases()
    {
        var d = new TheoryData<string, GgmlType>();
        foreach (var f in TestPaths.FixtureNames)
            foreach (var t in VulkanOpTests.AllTypes) d.Add(f, t);
        return d;
    }

    public const double SameFileTolerance = 2e-4;
    public const double SameFilePositionP95 = 4e-5;

    /// <summary>95th percentile over rows of the per-row relative error.</summary>
    public static double RowP95(float[] a, float[] b, int cols)
    {
        int rows = a.Length / cols;
        var e = new double[rows];
        for (int r = 0; r < rows; r++) e[r] = Reference.RelErr(a.AsSpan(r * cols, cols), b.AsSpan(r * cols, cols));
        Array.Sort(e);
        return e[Math.Min(rows - 1, (int)Math.Ceiling(0.95 * rows) - 1)];
    }

    [Theory, MemberData(nameof(TypeCases))]
    public void EveryWeightTypeMatchesTheCpuEngineOnTheSameFile(string fixture, GgmlType type)
    {
        var rf = new Reference(TestPaths.Fixture(fixture));
        string path = Models.Converted(fixture, type);
        using var v = new Session(path, vulkan: true);
        using var c = new Session(path, vulkan: false);
        var ids = rf.InputIds;
        var lv = v.Logits(ids);
        var lc = c.Logits(ids);
        double ePrefill = Reference.RelErr(lv, lc), p95 = RowP95(lv, lc, v.Vocab);
        // then a few single steps on the carried state (replayed command buffer)
        var steps = rf.GreedyIds.AsSpan(0, 8);
        double eStep = Reference.RelErr(v.StepLogits(steps), c.StepLogits(steps));
        var sv = v.Runner.SaveState();
        var sc = c.Runner.SaveState();
        double eState = Reference.RelErr(sv, sc);
        v.Runner.ResetState();
        c.Runner.ResetState();
        var gv = v.Greedy(ids, 16);
        var gc = c.Greedy(ids, 16);
        string line = $"{fixture} {GgmlTypes.Name(type)}: prefill {ePrefill:E2} (p95 per position {p95:E2}), steps {eStep:E2}, state {eState:E2}, greedy ids equal {gv.SequenceEqual(gc)}";
        _out.WriteLine(line);
        Console.WriteLine("[vulkan-vs-cpu] " + line);
        Assert.InRange(ePrefill, 0, SameFileTolerance);
        Assert.InRange(p95, 0, SameFilePositionP95);
        Assert.InRange(eStep, 0, SameFileTolerance);
        Assert.InRange(eState, 0, SameFileTolerance);
        Assert.Equal(gc, gv);
    }

    /// <summary>
    /// Decode steps with the fusions (deferred norm, SwiGLU/soft-cap epilogues, head norm in the step kernel) against the
    /// same backend with every op dispatched on its own: summation order and one rsqrt per norm differ, nothing else.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    public void FusedDecodeStepsMatchUnfusedOnes(GgmlType type)
    {
        var rf = new Reference(TestPaths.Fixture("tiny-fused"));
        string path = Models.Converted("tiny-fused", type);
        using var a = new Session(path, vulkan: true);
        using var b = new Session(path, vulkan: true, options: new VulkanOptions { Fusion = false });
        var steps = rf.InputIds.AsSpan(0, 24);
        var la = a.StepLogits(steps);
        var lb = b.StepLogits(steps);
        double e = Reference.RelErr(la, lb);
        double es = Reference.RelErr(a.Runner.SaveState(), b.Runner.SaveState());
        _out.WriteLine($"{GgmlTypes.Name(type)}: fused vs unfused steps {e:E2}, state {es:E2}");
        Assert.True(((VulkanBackend)a.Backend).FusedDispatches > 0);
        Assert.Equal(0, ((VulkanBackend)b.Backend).FusedDispatches);
        Assert.InRange(e, 0, 2e-5);
        Assert.InRange(es, 0, 2e-5);
        a.Runner.ResetState();
        b.Runner.ResetState();
        Assert.Equal(b.Greedy(rf.InputIds, 12), a.Greedy(rf.InputIds, 12));
    }

    /// <summary>
    /// The whole model's prefill through the cooperative-matrix GEMM (emulated on lavapipe): f16 GEMM operands, so not
    /// within the float32 bounds; measured against transformers' float64 reference to know what the H100 path costs in
    /// accuracy. Bound 1e-2 on the prompt logits, greedy continuation identical.
    /// </summary>
    [Theory]
    [InlineData("tiny-fused", GgmlType.F16)]
    [InlineData("tiny-f32", GgmlType.Q4_0)]
    public void PrefillThroughTheCoopMatGemmStaysClose(string fixture, GgmlType type)
    {
        var rf = new Reference(TestPaths.Fixture(fixture));
        string path = Models.Converted(fixture, type);
        using var v = new Session(path, vulkan: true, options: VulkanTestDevice.EmulatedCoopMat);
        using var f = new Session(path, vulkan: true);
        var lv = v.Logits(rf.InputIds);
        var lf = f.Logits(rf.InputIds);
        double eRef = Reference.RelErr(lv, rf["logits_prefill"]), eF32 = Reference.RelErr(lv, lf);
        _out.WriteLine($"{fixture} {GgmlTypes.Name(type)}: coopmat prefill vs reference {eRef:E2}, vs the fp32 GEMM {eF32:E2}");
        Console.WriteLine($"[coopmat-emulated] {fixture} {GgmlTypes.Name(type)}: prefill vs reference {eRef:E2}, vs fp32 GEMM {eF32:E2}");
        Assert.InRange(eF32, 1e-9, 1e-2);
        v.Runner.ResetState();
        f.Runner.ResetState();
        Assert.Equal(f.Greedy(rf.InputIds, 8), v.Greedy(rf.InputIds, 8));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void StateFilesAreInterchangeableWithTheCpuEngine(bool vulkanFirst)
    {
        // prompt on one backend, state saved to a file, loaded by the other, continued there == one backend throughout
        const string fixture = "tiny-fused";
        var rf = new Reference(TestPaths.Fixture(fixture));
        string path = Models.Converted(fixture, GgmlType.F32);
        string stateFile = Path.Combine(TestPaths.TempDir(), "s.xlstate");
        using (var a = new Session(path, vulkan: vulkanFirst))
        {
            a.Runner.Forward(rf.InputIds, LogitsMode.None, default);
            StateFile.Save(stateFile, a.Runner.Config, a.Runner.SaveState(), a.Runner.Position);
        }
        using var b = new Session(path, vulkan: !vulkanFirst);
        var st = StateFile.Load(stateFile, b.Runner.Config, out long pos);
        Assert.Equal(rf.InputIds.Length, pos);
        b.Runner.LoadState(st, pos);
        var cont = b.Logits(rf.ContinueIds);
        using var r = new Session(path, vulkan: false);
        r.Runner.Forward(rf.InputIds, LogitsMode.None, default);
        var want = r.Logits(rf.ContinueIds);
        Assert.InRange(Reference.RelErr(cont, want), 0, SameFileTolerance);
    }

    [Fact]
    public void LongPromptAcrossBatchesAndStagingPathMatchCpu()
    {
        // maxBatch 64 splits the 150-token prompt into three batches (token ids rewritten between them); device memory
        // is not mapped, so weights, token-driven reads and logits take the copy paths of a discrete GPU
        using var lim = VulkanTestDevice.Limits(noDirectMapping: true);
        var rf = new Reference(TestPaths.Fixture("tiny-f32"));
        string path = Models.Converted("tiny-f32", GgmlType.Q8_0);
        using var v = new Session(path, vulkan: true, maxBatch: 64);
        using var c = new Session(path, vulkan: false);
        Assert.InRange(Reference.RelErr(v.Logits(rf.InputIds), c.Logits(rf.InputIds)), 0, SameFileTolerance);
        Assert.Equal(c.Greedy(rf.ContinueIds, 8), v.Greedy(rf.ContinueIds, 8));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ProfileReportsEveryOp(bool fusion)
    {
        string path = Models.Converted("tiny-bf16", GgmlType.Q4_0);
        using var f = GgufFile.Open(path);
        using var be = VulkanTestDevice.NewBackend(options: new VulkanOptions { Profile = true, Fusion = fusion });
        var r = new ModelRunner(f, be);
        var rf = new Reference(TestPaths.Fixture("tiny-bf16"));
        int next = r.ForwardGreedy(rf.InputIds, r.Config.Vocab);
        for (int i = 0; i < 4; i++) next = r.StepGreedy(next, r.Config.Vocab);
        string rep = be.ProfileReport();
        _out.WriteLine(rep);
        Assert.True(be.Profiling);
        // prefill ops are never fused; decode steps are (norm into the next matvec with the gate rows beside q|k|v|o,
        // SwiGLU and soft-cap as matvec epilogues, head norm in the step kernel) unless fusion is off
        string[] ops = fusion
            ? ["embed.q4_0", "rmsnorm", "gemm.f32.q4_0", "matvec.f32", "mlstm.chunk.prep", "mlstm.chunk.kv", "mlstm.chunk.scan", "mlstm.chunk.out",
               "headnorm", "swiglu", "argmax", "matvec.q4_0", "matvec.q4_0+norm+aux", "matvec.q4_0+norm+swiglu", "matvec.q4_0+norm+softcap",
               "mlstm.step+headnorm"]
            : ["embed.q4_0", "rmsnorm", "matvec.q4_0", "matvec.f32", "gemm.f32.q4_0", "mlstm.step", "mlstm.chunk.prep", "mlstm.chunk.kv",
               "mlstm.chunk.scan", "mlstm.chunk.out", "headnorm", "swiglu", "softcap", "argmax"];
        foreach (var op in ops) Assert.Contains(" " + op + " ", rep);
        var decode = rep[rep.IndexOf("replayed decode steps", StringComparison.Ordinal)..];
        if (fusion)
            foreach (var op in new[] { " rmsnorm ", " swiglu ", " softcap ", " headnorm ", " mlstm.step " }) Assert.DoesNotContain(op, decode);
        Assert.Contains("replayed decode steps: 5 steps", rep);
    }
}
