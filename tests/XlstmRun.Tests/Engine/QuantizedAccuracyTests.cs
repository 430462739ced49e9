using XlstmRun.Backends.Cpu;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.Engine;

/// <summary>
/// Quantized files against the F32 file of the same fixture, on the CPU engine: relative logit error and mean KL divergence
/// KL(p_f32 ‖ p_quant) per position over the prompt. Bounds are about 2× the figures measured on 2026-11-26 (docs/NOTES.md). The random fixtures amplify weight
/// error about 4-8× into the logits (bf16 rounding alone gives 0.8 %), so these are larger than on a trained model.
/// </summary>
public class QuantizedAccuracyTests
{
    private readonly ITestOutputHelper _out;
    public QuantizedAccuracyTests(ITestOutputHelper o) { _out = o; }

    public static TheoryData<string, GgmlType, double, double> Cases() => new()
    {
        // fixture, type, max relative logit error, max mean KL (nats)
        { "tiny-f32", GgmlType.F16, 2e-3, 1e-6 },      // measured 8.7e-4, 3.8e-7
        { "tiny-f32", GgmlType.BF16, 1.7e-2, 1e-4 },   // measured 8.3e-3, 3.6e-5
        { "tiny-f32", GgmlType.Q8_0, 0.15, 6e-3 },     // measured 3.2e-2, 5.4e-4 (float activations); 7.6e-2, 2.9e-3 (8-bit)
        { "tiny-f32", GgmlType.Q4_0, 0.6, 0.13 },      // measured 0.35, 6.2e-2
        { "tiny-bf16", GgmlType.Q8_0, 0.3, 0.03 },     // measured 0.16, 1.3e-2; 0.15, 1.2e-2 (8-bit)
        { "tiny-bf16", GgmlType.Q4_0, 1.0, 0.35 },     // measured 0.57, 0.17
        { "tiny-fused", GgmlType.Q8_0, 0.15, 6e-3 },   // measured 7.3e-2, 2.9e-3; 7.5e-2, 3.0e-3 (8-bit)
        { "tiny-fused", GgmlType.Q4_0, 0.5, 0.08 },    // measured 0.28, 4.0e-2
    };

    public static float[] Logits(string path, int[] ids, bool int8Activations)
    {
        using var f = GgufFile.Open(path);
        var r = new ModelRunner(f, new CpuBackend(2, int8Activations));
        var l = new float[ids.Length * r.Config.Vocab];
        r.Forward(ids, LogitsMode.All, l);
        return l;
    }

    /// <summary>Mean over rows of KL(softmax(p) ‖ softmax(q)).</summary>
    public static double MeanKl(float[] p, float[] q, int vocab)
    {
        int rows = p.Length / vocab;
        double total = 0;
        for (int r = 0; r < rows; r++)
        {
            var a = p.AsSpan(r * vocab, vocab);
            var b = q.AsSpan(r * vocab, vocab);
            double ma = double.NegativeInfinity, mb = double.NegativeInfinity;
            for (int i = 0; i < vocab; i++) { ma = Math.Max(ma, a[i]); mb = Math.Max(mb, b[i]); }
            double za = 0, zb = 0;
            for (int i = 0; i < vocab; i++) { za += Math.Exp(a[i] - ma); zb += Math.Exp(b[i] - mb); }
            double lza = Math.Log(za), lzb = Math.Log(zb), kl = 0;
            for (int i = 0; i < vocab; i++)
            {
                double lpa = a[i] - ma - lza, lpb = b[i] - mb - lzb;
                kl += Math.Exp(lpa) * (lpa - lpb);
            }
            total += kl;
        }
        return total / rows;
    }

    /// <summary>Both CPU paths: float activations (exact dequantized products) and the default 8-bit activations for Q8_0/Q4_0.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void QuantizedLogitsStayCloseToF32(string fixture, GgmlType type, double maxRel, double maxKl)
    {
        foreach (bool int8 in new[] { false, true })
            Check(fixture, type, maxRel, maxKl, int8);
    }

    private void Check(string fixture, GgmlType type, double maxRel, double maxKl, bool int8)
    {
        var rf = new Reference(TestPaths.Fixture(fixture));
        var ids = rf.InputIds;
        var f32 = Logits(Models.Converted(fixture, GgmlType.F32), ids, false);
        var q = Logits(Models.Converted(fixture, type), ids, int8);
        int vocab = f32.Length / ids.Length;
        double rel = Reference.RelErr(q, f32), kl = MeanKl(f32, q, vocab);
        _out.WriteLine($"{fixture} {GgmlTypes.Name(type)} int8={int8}: rel {rel:E3}, KL {kl:E3}");
        Assert.InRange(rel, 1e-9, maxRel); // > 0: the quantized file really differs
        Assert.InRange(kl, 0, maxKl);
    }
}
