using XlstmRun.Backends.Cpu;
using XlstmRun.Backends.Cpu.Kernels;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Model.Conversion;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.Cpu;

/// <summary>
/// Whole-model checks on a small random model (hidden 256, 2 blocks, 4 heads; prompt of 80 tokens = a full chunk plus a
/// partial one, then single steps): every kernel path and thread count against the scalar float path.
/// </summary>
public class CpuBackendPathTests(ITestOutputHelper output)
{
    private static readonly Dictionary<GgmlType, string> Files = new();
    private static readonly object Lock = new();

    /// <summary>The random model of these tests as a GGUF file of <paramref name="type"/> (written once per run).</summary>
    internal static string Model(GgmlType type)
    {
        lock (Lock)
        {
            if (Files.TryGetValue(type, out var p)) return p;
            var cfg = RandomModel.Shape(256, 2, 4, 512);
            p = Path.Combine(TestPaths.TempDir(), $"rand-{GgmlTypes.Name(type)}.gguf");
            ModelWriter.Write(p, cfg, type, RandomModel.Sources(cfg, 7), _ => { }, null);
            return Files[type] = p;
        }
    }

    private static readonly int[] Prompt = Enumerable.Range(0, 80).Select(i => (i * 37 + 11) % 512).ToArray();
    private static readonly int[] Steps = [5, 77, 300, 1];

    /// <summary>Logits of the prompt (all positions) and of each following step.</summary>
    private static float[] Run(string path, CpuBackend be)
    {
        using var f = GgufFile.Open(path);
        using var _ = be;
        var r = new ModelRunner(f, be, maxBatch: 64);
        int V = r.Config.Vocab;
        var logits = new float[(Prompt.Length + Steps.Length) * V];
        r.Forward(Prompt, LogitsMode.All, logits);
        for (int i = 0; i < Steps.Length; i++) r.Forward(Steps.AsSpan(i, 1), LogitsMode.Last, logits.AsSpan((Prompt.Length + i) * V, V));
        return logits;
    }

    public static TheoryData<GgmlType> Types() => new(GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0);

    [Theory, MemberData(nameof(Types))]
    public void FloatPathsAgreeAtEveryWidthAndThreadCount(GgmlType type)
    {
        var path = Model(type);
        var reference = Run(path, new CpuBackend(1, int8Activations: false, level: SimdLevel.Scalar));
        foreach (var level in Levels.Float)
            foreach (int threads in new[] { 1, 3 })
            {
                var got = Run(path, new CpuBackend(threads, int8Activations: false, level: level));
                double e = Reference.RelErr(got, reference);
                Assert.True(e <= 2e-5, $"{type} {level} t{threads}: relative error {e:E2}");
            }
    }

    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    public void Int8ActivationPathsAgreeAndStayClose(GgmlType type)
    {
        var path = Model(type);
        var reference = Run(path, new CpuBackend(1, int8Activations: false, level: SimdLevel.Scalar));
        // With AVX-VNNI or AVX2 (packed weights) the prompt goes through an 8-bit GEMM too; on the other paths only the
        // single steps use 8 bits.
        var firstOf = new Dictionary<bool, float[]>();
        foreach (var p in Levels.Int8)
            foreach (int threads in new[] { 1, 2 })
            {
                var got = Run(path, new CpuBackend(threads, int8Activations: true, int8Path: p));
                double e = Reference.RelErr(got, reference);
                output.WriteLine($"{type} 8-bit activations, path {p}, {threads} threads: logits relative L2 error vs float activations {e:E2}");
                Assert.InRange(e, 1e-7, 3e-2);
                bool int8Prefill = p is Int8Path.AvxVnni or Int8Path.Avx2;
                if (!firstOf.TryGetValue(int8Prefill, out var first)) firstOf[int8Prefill] = first = got;
                // the integer paths compute the same integer dot products; they differ only in float summation order
                Assert.True(Reference.RelErr(got, first) <= 2e-5, $"{p} t{threads} differs from the other 8-bit paths");
            }
    }

    [Fact]
    public void ThreadCountDoesNotChangeResults()
    {
        var path = Model(GgmlType.Q4_0);
        var one = Run(path, new CpuBackend(1));
        var three = Run(path, new CpuBackend(3));
        Assert.Equal(one, three);
    }
}
