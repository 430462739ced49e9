using XlstmRun.Backends.Cpu;
using XlstmRun.Backends.Vulkan;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
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
/// Vulkan-specific model-level tests on lavapipe (fusions, the emulated cooperative-matrix GEMM, batches and staging copies,
/// profiling). The fixture checks every backend shares (every fixture, type and quantity) are in
/// Conformance/FixtureConformanceTests.cs.
/// </summary>
[Collection("vulkan")]
public class VulkanFixtureTests
{
    public const double Tolerance = XlstmRun.Conformance.Bounds.F32VsReference;
    /// <summary>Same file, Vulkan against the CPU engine: float32 arithmetic on both sides (see Conformance.Bounds).</summary>
    public const double SameFileTolerance = 2e-4;
    private readonly ITestOutputHelper _out;
    public VulkanFixtureTests(ITestOutputHelper output) { _out = output; }

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

    [Fact]
    public void LongPromptAcrossBatchesAndStagingPathMatchCpu()
    {
        // maxBatch 64 splits the 150-token prompt into three batches (token ids rewritten between them); device memory
        // is not mapped, so weights, token-driven reads and logits take the copy paths of a discrete GPU
        var rf = new Reference(TestPaths.Fixture("tiny-f32"));
        string path = Models.Converted("tiny-f32", GgmlType.Q8_0);
        using var v = new Session(path, vulkan: true, maxBatch: 64, options: VulkanTestDevice.Limits(noDirectMapping: true));
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
