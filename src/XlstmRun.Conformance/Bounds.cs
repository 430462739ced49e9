using XlstmRun.Model;
using XlstmRun.Formats;

namespace XlstmRun.Conformance;

/// <summary>An error bound: relative error ‖ours − ref‖₂/‖ref‖₂ of a whole tensor, and mean KL divergence of logits (nats).</summary>
public readonly record struct Bound(double Rel, double Kl);

/// <summary>
/// Every error bound of the conformance checks, in one place (the precision policy, docs/NOTES.md "Conformance").
/// <list type="bullet">
/// <item>F32 weights, any backend, against the float64 reference: <see cref="F32VsReference"/>, identical greedy ids.</item>
/// <item>F16/BF16/Q8_0/Q4_0 weights against the CPU engine's float path on the same file: <see cref="SameFile"/>, one column
/// per activation precision of the backend.</item>
/// <item>Quantized weights on the CPU engine against the float64 reference of the unquantized checkpoint (the weight
/// rounding error of each type on each fixture): <see cref="WeightError"/>.</item>
/// </list>
/// </summary>
public static class Bounds
{
    /// <summary>F32 weights vs the float64 reference: every backend, every quantity (2-3× transformers' own float32 run).</summary>
    public const double F32VsReference = 3e-5;

    /// <summary>
    /// Same file, against the CPU engine with float activations. Columns: backends that keep float32 activations, backends
    /// with 16-bit activations inside matrix products, the CPU engine's 8-bit activations (Q8_0/Q4_0 only).
    /// <para>Every column is about 2× the largest error measured on the fixtures (xlstm-run check on the H200, CPU, PoCL and
    /// lavapipe, 2026-11-30; docs/NOTES.md "H200 conformance"). The random fixtures have ill-conditioned positions (a head
    /// normalizer q·n that cancels ~1000-fold) that amplify any rounding of the projections, so these bounds are loose by
    /// nature; the F32 bound against the float64 reference is the strict one.</para>
    /// <para>float32: the same dequantized weights and float32 arithmetic on both sides; largest 1.5e-4 (tiny-bf16 Q4_0 prompt
    /// logits on NVIDIA's OpenCL, one ill-conditioned position), KL 1.1e-8.</para>
    /// <para>16-bit (tensor-core prefill GEMM, f16 operands): F16/BF16 largest 8.4e-2 (tiny-fused F16, continuation logits:
    /// one position amplifies the f16 rounding of q ~1000×; the same run in float32 is at 7e-6), otherwise ≤ 1.8e-2 (tiny-long
    /// state); KL ≤ 1e-4. Q8_0/Q4_0 on such devices use the 8-bit column (int8 matvecs).</para>
    /// <para>8-bit: largest 0.27 (tiny-long Q4_0 state C, CPU and Vulkan), logits 0.13, KL 8.6e-3.</para>
    /// </summary>
    private static readonly (GgmlType Type, Bound Float32, Bound Half16, Bound? Int8)[] SameFileTable =
    [
        //  type          float32 activations     16-bit activations      8-bit activations
        (GgmlType.F16,  new(3e-4, 3e-8),        new(0.2, 1e-4),         null),
        (GgmlType.BF16, new(3e-4, 3e-8),        new(0.2, 1e-4),         null),
        (GgmlType.Q8_0, new(3e-4, 3e-8),        new(0.2, 4e-4),         new(0.6, 0.02)),
        (GgmlType.Q4_0, new(3e-4, 3e-8),        new(0.2, 4e-4),         new(0.6, 0.02)),
    ];

    public static Bound SameFile(GgmlType type, ActivationPrecision p)
    {
        if (type == GgmlType.F32) return new(F32VsReference, 1e-8);
        foreach (var r in SameFileTable)
            if (r.Type == type)
                return p switch
                {
                    ActivationPrecision.Float32 => r.Float32,
                    ActivationPrecision.Float16 => r.Half16,
                    _ => r.Int8 ?? r.Float32,
                };
        throw new ArgumentOutOfRangeException(nameof(type), type, "no bound for this weight type");
    }

    /// <summary>
    /// Prompt logits of a quantized file on the CPU engine (float activations) against the float64 reference of the
    /// checkpoint: about 2× the figures measured on 2026-11-26/30 (docs/NOTES.md). The random fixtures amplify weight error
    /// 4-8× into the logits, so these are larger than on a trained model. A fixture not listed gets the largest bound of its type.
    /// </summary>
    private static readonly (string Fixture, GgmlType Type, Bound Bound)[] WeightErrorTable =
    [
        ("tiny-f32", GgmlType.F16, new(2e-3, 1e-6)),      // measured 8.7e-4, 3.8e-7
        ("tiny-f32", GgmlType.BF16, new(1.7e-2, 1e-4)),   // 8.3e-3, 3.6e-5
        ("tiny-f32", GgmlType.Q8_0, new(0.07, 1.2e-3)),   // 3.2e-2, 5.4e-4
        ("tiny-f32", GgmlType.Q4_0, new(0.7, 0.13)),      // 0.35, 6.2e-2
        ("tiny-bf16", GgmlType.F16, new(2e-3, 1e-6)),
        ("tiny-bf16", GgmlType.BF16, new(3e-5, 1e-8)),   // bf16 checkpoint: exact
        ("tiny-bf16", GgmlType.Q8_0, new(0.3, 0.03)),     // 0.16, 1.3e-2
        ("tiny-bf16", GgmlType.Q4_0, new(1.0, 0.35)),     // 0.57, 0.17
        ("tiny-fused", GgmlType.F16, new(2e-3, 1e-6)),
        ("tiny-fused", GgmlType.BF16, new(1.7e-2, 1e-4)),
        ("tiny-fused", GgmlType.Q8_0, new(0.15, 6e-3)),   // 7.3e-2, 2.9e-3
        ("tiny-fused", GgmlType.Q4_0, new(0.5, 0.08)),    // 0.28, 4.0e-2
        ("tiny-long", GgmlType.F16, new(2e-3, 1e-6)),
        ("tiny-long", GgmlType.BF16, new(3e-5, 1e-8)),   // bf16 checkpoint: exact
        ("tiny-long", GgmlType.Q8_0, new(0.3, 0.03)),
        ("tiny-long", GgmlType.Q4_0, new(1.0, 0.35)),
    ];

    public static Bound WeightError(string fixture, GgmlType type)
    {
        if (type == GgmlType.F32) return new(F32VsReference, 1e-8);
        foreach (var r in WeightErrorTable)
            if (r.Fixture == fixture && r.Type == type) return r.Bound;
        var all = WeightErrorTable.Where(r => r.Type == type).ToArray();
        return new(all.Max(r => r.Bound.Rel), all.Max(r => r.Bound.Kl));
    }

    /// <summary>Op-level checks against the CPU engine: float ops (summation order, device exp/tanh/log) and the mLSTM cell.</summary>
    public const double OpFloat = 2e-6, OpCell = 1e-5;

    /// <summary>
    /// Greedy ids in the 16-bit and 8-bit columns may part from the comparator's at a near tie: the first differing id is
    /// accepted when the comparator's logit gap between the two ids is at most this many times bound × rms(logits row).
    /// </summary>
    public const double TieFactor = 4;
}
