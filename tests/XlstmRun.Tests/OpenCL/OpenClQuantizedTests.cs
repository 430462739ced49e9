using XlstmRun.Backends.Cpu;
using XlstmRun.Backends.OpenCL;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.OpenCL;

/// <summary>
/// Every quantized weight type on the OpenCL engine against the CPU engine on the same file: both decode the same weights
/// exactly, so they differ only by float32 summation order and the device's exp/tanh/log. Prefill logits (chunkwise form,
/// tiled matmul) and then step logits (step form, matvec) after the prompt; the greedy ids must be identical.
/// The random fixtures are ill-conditioned at a few positions (a small cell denominator), where float32 rounding
/// differences grow to 1e-3 of that row; bounds are about 3× the largest whole-tensor error measured on PoCL 3.1
/// (docs/notes/opencl-backend.md). A decoding or indexing bug gives errors of 1e-2 and more.
/// </summary>
public class OpenClQuantizedTests
{
    private readonly ITestOutputHelper _out;
    public OpenClQuantizedTests(ITestOutputHelper o) { _out = o; }

    public static TheoryData<string, GgmlType, double> Cases() => new()
    {
        // fixture, type, max relative error of prefill and of step logits (measured prefill / step on PoCL 3.1, 2 cores,
        // register-blocked kernels; the work-group kernels measured at most 1.2e-5 except the Q4_0 case noted)
        { "tiny-f32", GgmlType.F16, 5e-5 },     // 4.8e-7 / 1.3e-6
        { "tiny-f32", GgmlType.BF16, 5e-5 },    // 5.0e-7 / 5.7e-6
        { "tiny-f32", GgmlType.Q8_0, 5e-5 },    // 5.1e-7 / 1.1e-6
        { "tiny-f32", GgmlType.Q4_0, 5e-5 },    // 9.5e-7 / 4.9e-7
        { "tiny-bf16", GgmlType.F16, 5e-5 },    // 4.1e-6 / 1.2e-6
        { "tiny-bf16", GgmlType.BF16, 5e-5 },   // 3.9e-6 / 1.3e-6
        { "tiny-bf16", GgmlType.Q8_0, 5e-5 },   // 6.9e-6 / 2.5e-6
        { "tiny-bf16", GgmlType.Q4_0, 2.5e-4 }, // 5.0e-5 / 1.8e-6 (7.7e-5 with the work-group kernels): one ill-conditioned position (160) near 1e-3
        { "tiny-fused", GgmlType.F16, 5e-5 },   // 5.5e-7 / 8.6e-7
        { "tiny-fused", GgmlType.BF16, 5e-5 },  // 6.8e-7 / 4.9e-6
        { "tiny-fused", GgmlType.Q8_0, 5e-5 },  // 6.7e-7 / 5.9e-7
        { "tiny-fused", GgmlType.Q4_0, 5e-5 },  // 6.1e-7 / 4.8e-7
    };

    private static (float[] Prefill, float[] Steps, int[] Greedy) Run(GgufFile f, IBackend be, Reference rf, int steps)
    {
        var r = new ModelRunner(f, be);
        int V = r.Config.Vocab;
        var prefill = new float[rf.InputIds.Length * V];
        r.Forward(rf.InputIds, LogitsMode.All, prefill);
        var stepLogits = new float[steps * V];
        for (int i = 0; i < steps; i++) r.Forward(rf.GreedyIds.AsSpan(i, 1), LogitsMode.Last, stepLogits.AsSpan(i * V, V));
        r.ResetState();
        var greedy = new List<int> { r.ForwardGreedy(rf.InputIds, V) };
        while (greedy.Count < steps) greedy.Add(r.StepGreedy(greedy[^1], V));
        return (prefill, stepLogits, greedy.ToArray());
    }

    [Theory, MemberData(nameof(Cases))]
    public void QuantizedLogitsMatchCpuOnTheSameFile(string fixture, GgmlType type, double maxRel)
    {
        var rf = new Reference(TestPaths.Fixture(fixture));
        using var f = GgufFile.Open(Models.Converted(fixture, type));
        Assert.Contains(f.TensorNames, n => f.Tensor(n).Type == type);
        int steps = Math.Min(8, rf.GreedyIds.Length);
        var cpu = Run(f, new CpuBackend(2, int8Activations: false), rf, steps);
        using var cl = new OpenClBackend();
        var gpu = Run(f, cl, rf, steps);
        double ep = Reference.RelErr(gpu.Prefill, cpu.Prefill), es = Reference.RelErr(gpu.Steps, cpu.Steps);
        _out.WriteLine($"{fixture} {GgmlTypes.Name(type)}: prefill rel {ep:E2}, step rel {es:E2}");
        Assert.InRange(ep, 0, maxRel);
        Assert.InRange(es, 0, maxRel);
        Assert.Equal(cpu.Greedy, gpu.Greedy);
    }
}
