using XlstmRun.Backends.Cpu;
using XlstmRun.Backends.Vulkan;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.Vulkan;

/// <summary>The same weights and inputs on the CPU backend and on the Vulkan backend (lavapipe), op by op.</summary>
public sealed class OpPair : IDisposable
{
    public readonly CpuBackend Cpu = new(2, int8Activations: false); // the exact float path: other backends keep float activations
    public readonly VulkanBackend Vk;
    private readonly EncodedWeights _weights = new();
    private readonly Random _rng;

    public OpPair(int seed, bool noSubgroups = false, VulkanOptions? options = null)
    {
        Vk = VulkanTestDevice.NewBackend(noSubgroups, options);
        _rng = new Random(seed);
    }

    /// <summary>The values of the last <see cref="Weight"/>.</summary>
    public float[] LastValues { get; private set; } = [];

    public float[] Random(int n, float scale = 1f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++)
        {
            // roughly normal: sum of uniforms
            double s = _rng.NextDouble() + _rng.NextDouble() + _rng.NextDouble() - 1.5;
            a[i] = (float)(s * 2 * scale);
        }
        return a;
    }

    /// <summary>A [rows, cols] weight of <paramref name="type"/> from random values, loaded into both backends.</summary>
    public (IWeight Cpu, IWeight Vk) Weight(GgmlType type, int rows, int cols, float scale = 0.2f, bool vector = false, float[]? values = null)
    {
        var f = values ?? Random(rows * cols, scale);
        LastValues = f;
        var view = _weights.Encode(type, rows, cols, f, vector);
        return (Cpu.LoadWeight(view), Vk.LoadWeight(view));
    }

    /// <summary>The same encoded weight loaded into another backend.</summary>
    public IWeight LoadInto(IBackend be, GgmlType type, int rows, int cols, float[] values, bool vector = false) =>
        be.LoadWeight(_weights.Encode(type, rows, cols, values, vector));

    public (ITensor Cpu, ITensor Vk) Tensor(int rows, int cols, float[]? values = null)
    {
        values ??= Random(rows * cols);
        var c = (CpuTensor)Cpu.Alloc(rows, cols);
        values.CopyTo(c.Span);
        var v = Vk.Alloc(rows, cols);
        Vk.Write(v, values);
        return (c, v);
    }

    public float[] ReadCpu(ITensor t) => ((CpuTensor)t).Span.ToArray();

    public float[] ReadVk(ITensor t)
    {
        var a = new float[t.Rows * t.Cols];
        Vk.Read(t, a);
        return a;
    }

    public static double MaxAbs(float[] a, float[] b)
    {
        double m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs((double)a[i] - b[i]));
        return m;
    }

    public void Dispose()
    {
        Vk.Dispose();
        _weights.Dispose();
    }
}

/// <summary>
/// Vulkan-specific op tests on lavapipe: matvec/GEMM tile shapes, weight splitting and staging copies, long rows, the decode
/// fusions, the emulated cooperative-matrix GEMM, replay, the bandwidth probe. Every op on generic awkward sizes, for every
/// backend, is in Conformance/OpConformanceTests.cs.
/// </summary>
[Collection("vulkan")]
public class VulkanOpTests
{
    private readonly ITestOutputHelper _out;
    public VulkanOpTests(ITestOutputHelper output) { _out = output; }

    public const double OpTolerance = 2e-6;
    public static readonly GgmlType[] AllTypes = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0];

    public static TheoryData<GgmlType, int, int, int> MatMulCases()
    {
        var d = new TheoryData<GgmlType, int, int, int>();
        foreach (var t in AllTypes)
        {
            bool q = t is GgmlType.Q8_0 or GgmlType.Q4_0;
            d.Add(t, 1, 37, q ? 64 : 45);      // decode matvec; rows not a multiple of the rows per workgroup, cols not of 8
            d.Add(t, 1, 300, q ? 320 : 333);   // several workgroups, several chunks per invocation
            d.Add(t, 3, 70, q ? 96 : 100);     // few rows: matvec per token (grid z)
            d.Add(t, 130, 65, q ? 64 : 37);    // few rows, many tokens
            d.Add(t, 3, 150, q ? 96 : 100);    // prefill GEMM, partial tiles everywhere
            d.Add(t, 130, 200, q ? 64 : 37);   // GEMM with more than two token tiles
        }
        return d;
    }

    [Theory, MemberData(nameof(MatMulCases))]
    public void MatMulMatchesCpu(GgmlType type, int T, int rows, int cols)
    {
        using var p = new OpPair(rows * 31 + cols + T);
        var (wc, wv) = p.Weight(type, rows, cols);
        var (bc, bv) = p.Weight(GgmlType.F32, 1, rows, 1f, vector: true);
        var (xc, xv) = p.Tensor(T, cols);
        var init = p.Random(T * rows);
        var (dc, dv) = p.Tensor(T, rows, init);
        // plain, then with bias and accumulate on top of the result
        p.Cpu.MatMul(wc, xc, dc);
        p.Vk.MatMul(wv, xv, dv);
        var a1 = p.ReadCpu(dc);
        var b1 = p.ReadVk(dv);
        Assert.InRange(Reference.RelErr(b1, a1), 0, OpTolerance);
        p.Cpu.MatMul(wc, xc, dc, bc, accumulate: true);
        p.Vk.MatMul(wv, xv, dv, bv, accumulate: true);
        var a2 = p.ReadCpu(dc);
        var b2 = p.ReadVk(dv);
        double e = Reference.RelErr(b2, a2);
        _out.WriteLine($"{type} T={T} {rows}x{cols}: rel err {Reference.RelErr(b1, a1):E2} / with bias+acc {e:E2}");
        Assert.InRange(e, 0, OpTolerance);
    }

    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    public void SplitWeightsAndStagingPathMatchCpu(GgmlType type)
    {
        // weights split into parts of a few rows each (binding limit 2 KiB), uploads and reads through staging copies
        using var p = new OpPair(7, options: VulkanTestDevice.Limits(noDirectMapping: true, maxBinding: 2048));
        int rows = 150, cols = 96;
        var (wc, wv) = p.Weight(type, rows, cols);
        Assert.True(((VkWeight)wv).Parts.Length > 3, "the weight should have been split");
        Assert.False(((VkTensor)p.Vk.Alloc(1, 4)).Buf.IsMapped);
        foreach (int T in new[] { 1, 3 })
        {
            var (xc, xv) = p.Tensor(T, cols);
            var (dc, dv) = p.Tensor(T, rows);
            p.Cpu.MatMul(wc, xc, dc);
            p.Vk.MatMul(wv, xv, dv);
            Assert.InRange(Reference.RelErr(p.ReadVk(dv), p.ReadCpu(dc)), 0, OpTolerance);
        }
        // one row of activation buffers larger than a binding: bound through a window of the buffer
        {
            var (xc, xv) = p.Tensor(8, cols);
            var (dc, dv) = p.Tensor(8, rows);
            Assert.True(((VkTensor)dv).Buf.Size > 2048);
            p.Cpu.MatMul(wc, p.Cpu.Rows(xc, 6, 1), p.Cpu.Rows(dc, 7, 1));
            p.Vk.MatMul(wv, p.Vk.Rows(xv, 6, 1), p.Vk.Rows(dv, 7, 1));
            Assert.InRange(Reference.RelErr(p.ReadVk(dv), p.ReadCpu(dc)), 0, OpTolerance);
        }
        // embedding gather from a split table
        int[] ids = [0, 149, 77, 120];
        var tc = p.Cpu.AllocTokens(8);
        var tv = p.Vk.AllocTokens(8);
        p.Cpu.WriteTokens(tc, ids);
        p.Vk.WriteTokens(tv, ids);
        var (ec, ev) = p.Tensor(ids.Length, cols);
        p.Cpu.Embed(wc, tc, ec);
        p.Vk.Embed(wv, tv, ev);
        Assert.Equal(p.ReadCpu(ec), p.ReadVk(ev));
    }

    private static ModelConfig Cfg(int heads, int dqk, int dv, int chunk = 64) => new()
    {
        Hidden = heads * dv, Blocks = 2, Heads = heads, QkDim = heads * dqk, VDim = heads * dv, FfnDim = 64, Vocab = 32, ChunkSize = chunk,
    };

    public static TheoryData<GgmlType, int> LongRowCases()
    {
        var d = new TheoryData<GgmlType, int>();
        foreach (var t in AllTypes) d.Add(t, t is GgmlType.Q8_0 or GgmlType.Q4_0 ? 5120 + 96 : 2100 + 3);
        return d;
    }

    /// <summary>Rows longer than one pass of the workgroup (each invocation takes several blocks), with and without the
    /// fused norm.</summary>
    [Theory, MemberData(nameof(LongRowCases))]
    public void MatvecOverLongRowsMatchesCpu(GgmlType type, int cols)
    {
        using var p = new OpPair(cols);
        var (wc, wv) = p.Weight(type, 21, cols);
        var (nc, nv) = p.Weight(GgmlType.F32, 1, cols, 1f, vector: true);
        var (xc, xv) = p.Tensor(1, cols);
        var (ac, av) = p.Tensor(1, cols);
        var (dc, dv) = p.Tensor(1, 21);
        p.Cpu.MatMul(wc, xc, dc);
        p.Vk.MatMul(wv, xv, dv);
        Assert.InRange(Reference.RelErr(p.ReadVk(dv), p.ReadCpu(dc)), 0, OpTolerance);
        PlanOp[] Ops(IWeight n, IWeight w, ITensor x, ITensor a, ITensor d) => [new RmsNormOp(x, n, a, 1e-5f, 0), new MatMulOp(w, a, d, null, false, 0)];
        RunBoth(p, Ops(nc, wc, xc, ac, dc), Ops(nv, wv, xv, av, dv));
        Assert.InRange(Reference.RelErr(p.ReadVk(dv), p.ReadCpu(dc)), 0, OpTolerance);
        Assert.Equal(1, p.Vk.FusedDispatches);
    }

    // ---- decode-step fusions (Planner + fused kernels) -------------------------------------------------------------------

    /// <summary>The same ops as a plan: unfused on the CPU, compiled by the Vulkan planner.</summary>
    private static void RunBoth(OpPair p, PlanOp[] cpu, PlanOp[] vk, string key = "t")
    {
        new ForwardPlan(key, 1, cpu).RunUnfused(p.Cpu);
        p.Vk.Run(new ForwardPlan(key, 1, vk));
    }

    public static TheoryData<GgmlType, int, bool> FusedNormCases()
    {
        var d = new TheoryData<GgmlType, int, bool>();
        foreach (var t in AllTypes)
        {
            bool q = t is GgmlType.Q8_0 or GgmlType.Q4_0;
            d.Add(t, q ? 320 : 333, false);   // several chunks per invocation; float types: a partial last group
            d.Add(t, q ? 96 : 45, true);
        }
        return d;
    }

    [Theory, MemberData(nameof(FusedNormCases))]
    public void RmsNormAndGateRowsFusedIntoTheNextMatvecMatchCpu(GgmlType type, int cols, bool noSubgroups)
    {
        // RmsNorm(x → a), then two products of a (the qkvo and gate projections of a block): one dispatch that applies
        // the norm itself, computes the gate rows (F32, with bias) beside the main rows, and writes a because a later op
        // reads it
        using var p = new OpPair(cols * 3 + (int)type, noSubgroups);
        var (nc, nv) = p.Weight(GgmlType.F32, 1, cols, 1f, vector: true);
        var (w1c, w1v) = p.Weight(type, 70, cols);
        var (w2c, w2v) = p.Weight(GgmlType.F32, 6, cols);
        var (bc, bv) = p.Weight(GgmlType.F32, 1, 6, 1f, vector: true);
        var (xc, xv) = p.Tensor(1, cols, p.Random(cols, 3f));
        var (ac, av) = p.Tensor(1, cols);
        var (d1c, d1v) = p.Tensor(1, 70);
        var (d2c, d2v) = p.Tensor(1, 6);
        var (d3c, d3v) = p.Tensor(1, 70);
        PlanOp[] Ops(IWeight n, IWeight w1, IWeight w2, IWeight b, ITensor x, ITensor a, ITensor d1, ITensor d2, ITensor d3) =>
            [new RmsNormOp(x, n, a, 1e-5f, 0), new MatMulOp(w1, a, d1, null, false, 0), new MatMulOp(w2, a, d2, b, false, 0),
             new MatMulOp(w1, a, d3, null, false, 0)];
        RunBoth(p, Ops(nc, w1c, w2c, bc, xc, ac, d1c, d2c, d3c), Ops(nv, w1v, w2v, bv, xv, av, d1v, d2v, d3v));
        Assert.Equal(1, p.Vk.FusedDispatches);
        foreach (var (c, v) in new[] { (ac, av), (d1c, d1v), (d2c, d2v), (d3c, d3v) })
            Assert.InRange(Reference.RelErr(p.ReadVk(v), p.ReadCpu(c)), 0, OpTolerance);
    }

    [Theory]
    [InlineData(GgmlType.F32, false)]
    [InlineData(GgmlType.F16, false)]
    [InlineData(GgmlType.BF16, true)]
    [InlineData(GgmlType.Q8_0, false)]
    [InlineData(GgmlType.Q4_0, false)]
    [InlineData(GgmlType.Q4_0, true)]
    public void SwiGluAndSoftCapAsMatvecEpiloguesMatchCpu(GgmlType type, bool noSubgroups)
    {
        using var p = new OpPair(17 + (int)type, noSubgroups);
        int cols = 64, F = 75;
        var (nc, nv) = p.Weight(GgmlType.F32, 1, cols, 1f, vector: true);
        var (wc, wv) = p.Weight(type, 2 * F, cols, 0.5f);
        var (lc, lv) = p.Weight(type, 90, cols, 2f);
        var (xc, xv) = p.Tensor(1, cols);
        var (ac, av) = p.Tensor(1, cols);
        var (gc, gv) = p.Tensor(1, 2 * F);
        var (sc, sv) = p.Tensor(1, F);
        var (oc, ov) = p.Tensor(1, 90);
        // norm → gate|up matvec → SwiGLU (the FFN), then a matvec of the normalized row → soft-cap (the logits)
        PlanOp[] Ops(IWeight n, IWeight w, IWeight l, ITensor x, ITensor a, ITensor g, ITensor s, ITensor o) =>
            [new RmsNormOp(x, n, a, 1e-5f, 0), new MatMulOp(w, a, g, null, false, 0), new SwiGluOp(g, s, 0), new MatMulOp(l, a, o, null, false, 0),
             new SoftCapOp(o, 3f)];
        RunBoth(p, Ops(nc, wc, lc, xc, ac, gc, sc, oc), Ops(nv, wv, lv, xv, av, gv, sv, ov));
        Assert.Equal(2, p.Vk.FusedDispatches); // norm+swiglu (writing a for the logits matvec), softcap
        Assert.InRange(Reference.RelErr(p.ReadVk(sv), p.ReadCpu(sc)), 0, OpTolerance);
        Assert.InRange(Reference.RelErr(p.ReadVk(ov), p.ReadCpu(oc)), 0, OpTolerance);
        Assert.InRange(Reference.RelErr(p.ReadVk(av), p.ReadCpu(ac)), 0, OpTolerance);
        // without a norm; gate|up read afterwards, so the matvec writes it too
        var (yc, yv) = p.Tensor(1, 2 * F);
        PlanOp[] Ops2(IWeight w, IWeight l, ITensor x, ITensor g, ITensor s, ITensor o, ITensor y) =>
            [new MatMulOp(w, x, g, null, false, 0), new SwiGluOp(g, s, 0), new MatMulOp(l, x, o, null, false, 0), new SoftCapOp(o, 3f),
             new SwiGluOp(g, y, 0)];
        var (y2c, y2v) = p.Tensor(1, F);
        RunBoth(p, Ops2(wc, lc, xc, gc, sc, oc, y2c), Ops2(wv, lv, xv, gv, sv, ov, y2v));
        foreach (var (c, v) in new[] { (sc, sv), (oc, ov), (gc, gv), (y2c, y2v) })
            Assert.InRange(Reference.RelErr(p.ReadVk(v), p.ReadCpu(c)), 0, OpTolerance);
        Assert.Equal(4, p.Vk.FusedDispatches);
    }

    [Fact]
    public void FusionIsSkippedWhereItWouldRace()
    {
        // norm in place (x = a); a matvec accumulating into the norm's input; a SwiGlu of a tensor that is not the
        // matvec's output: every case must equal the unfused ops
        using var p = new OpPair(23);
        int n = 64;
        var (nc, nv) = p.Weight(GgmlType.F32, 1, n, 1f, vector: true);
        var (wc, wv) = p.Weight(GgmlType.Q4_0, n, n);
        var (uc, uv) = p.Weight(GgmlType.Q8_0, 2 * n, n);
        var (xc, xv) = p.Tensor(1, n);
        var (yc, yv) = p.Tensor(1, n);
        var (ac, av) = p.Tensor(1, n);
        var (gc, gv) = p.Tensor(1, 2 * n);
        var (g2c, g2v) = p.Tensor(1, 2 * n);
        var (sc, sv) = p.Tensor(1, n);
        PlanOp[] Ops(IWeight nw, IWeight w, IWeight u, ITensor x, ITensor y, ITensor a, ITensor g, ITensor g2, ITensor s) =>
        [
            new RmsNormOp(y, nw, y, 1e-5f, 0),                     // in place
            new MatMulOp(w, y, a, null, false, 0),
            new RmsNormOp(x, nw, a, 1e-5f, 0),
            new MatMulOp(w, a, x, null, true, 0),                  // writes the norm's input
            new RmsNormOp(x, nw, a, 1e-5f, 0),
            new MatMulOp(u, a, g, null, false, 0),
            new SwiGluOp(g2, s, 0),                                // not the matvec's output
            new MatMulOp(w, a, y, null, false, 0),                 // reads a: the fused norm must still write it
        ];
        RunBoth(p, Ops(nc, wc, uc, xc, yc, ac, gc, g2c, sc), Ops(nv, wv, uv, xv, yv, av, gv, g2v, sv));
        foreach (var (c, v) in new[] { (xc, xv), (yc, yv), (ac, av), (gc, gv), (sc, sv) })
            Assert.InRange(Reference.RelErr(p.ReadVk(v), p.ReadCpu(c)), 0, OpTolerance);
        Assert.Equal(1, p.Vk.FusedDispatches); // only the U matvec took the norm
    }

    /// <summary>The matvec's row sums by reduce-scatter (the default) and by one subgroupAdd per row: both match the CPU,
    /// for 8 rows (int8) and 4 rows (float) per workgroup, one token and several.</summary>
    [Theory]
    [InlineData(GgmlType.Q4_0, true, 1)]
    [InlineData(GgmlType.Q8_0, true, 5)]
    [InlineData(GgmlType.F16, false, 1)]
    [InlineData(GgmlType.F32, false, 3)]
    public void MatvecRowSumsWithAndWithoutReduceScatterMatchCpu(GgmlType type, bool intDot, int tokens)
    {
        const int rows = 300, cols = 320;
        float[]? first = null;
        foreach (bool scatter in new[] { true, false })
        {
            var o = (intDot ? VulkanTestDevice.IntDot : new VulkanOptions()) with { ReduceScatter = scatter };
            using var cpu = new CpuBackend(2, int8Activations: intDot);
            using var p = new OpPair(rows + cols, options: o);
            var f = p.Random(rows * cols, 0.2f);
            var (_, wv) = p.Weight(type, rows, cols, values: f);
            var wc = p.LoadInto(cpu, type, rows, cols, f);
            var xs = p.Random(tokens * cols);
            var (_, xv) = p.Tensor(tokens, cols, xs);
            var (_, dv) = p.Tensor(tokens, rows);
            p.Vk.MatMul(wv, xv, dv);
            var xc = (CpuTensor)cpu.Alloc(tokens, cols);
            xs.CopyTo(xc.Span);
            var dc = (CpuTensor)cpu.Alloc(tokens, rows);
            cpu.MatMul(wc, xc, dc);
            var got = p.ReadVk(dv);
            double e = Reference.RelErr(got, dc.Span.ToArray());
            _out.WriteLine($"{type} x{tokens} reduce-scatter {scatter}: {e:E2} against the CPU");
            Assert.InRange(e, 0, intDot ? 2e-3 : OpTolerance);
            // the two reductions add the same partial sums in another order
            if (first == null) first = got;
            else Assert.InRange(Reference.RelErr(got, first), 0, 1e-6);
        }
    }

    /// <summary>
    /// Int8 products over several tokens through the tensor-core kernel (its emulated build here: the same tiles, block
    /// order and epilogue, the block sums in float) give every token the bits of the one-token matvec: few blocks per row
    /// (most leaves empty) and 300 blocks (two or three per leaf), 2 to 17 tokens (a partial tile of 16), rows not a
    /// multiple of the tile, with a bias and accumulating into the output; 4 and 3 blocks per step.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q4_0, 320)]
    [InlineData(GgmlType.Q4_0, 9600)]
    [InlineData(GgmlType.Q8_0, 9600)]
    public void TensorCoreProductsGiveTheOneTokenMatvecsBits(GgmlType type, int cols)
    {
        const int rows = 70, maxT = 17;
        float[] Run(VulkanOptions o, int T, out long tensorCalls)
        {
            using var p = new OpPair(7, options: o);
            var (_, wv) = p.Weight(type, rows, cols, values: p.Random(rows * cols, 0.2f));
            var (_, bv) = p.Weight(GgmlType.F32, 1, rows, vector: true, values: p.Random(rows, 0.5f));
            var xs = p.Random(maxT * cols, 2f);
            var d0 = p.Random(maxT * rows);
            var result = new List<float>();
            for (int t0 = 0; t0 < maxT; t0 += T)
            {
                int n = Math.Min(T, maxT - t0);
                var (_, xv) = p.Tensor(n, cols, xs.AsSpan(t0 * cols, n * cols).ToArray());
                var (_, dv) = p.Tensor(n, rows);
                var (_, av) = p.Tensor(n, rows, d0.AsSpan(t0 * rows, n * rows).ToArray());
                p.Vk.MatMul(wv, xv, dv);
                p.Vk.MatMul(wv, xv, av, bv, accumulate: true);
                float[] d = p.ReadVk(dv), a = p.ReadVk(av);
                for (int i = 0; i < n; i++)   // token by token, whatever T
                {
                    result.AddRange(d.AsSpan(i * rows, rows).ToArray());
                    result.AddRange(a.AsSpan(i * rows, rows).ToArray());
                }
            }
            tensorCalls = p.Vk.TensorMatVecs;
            return result.ToArray();
        }
        var want = Run(VulkanTestDevice.IntDot with { TensorMatVec = 0 }, 1, out _);
        foreach (var (T, kb) in new[] { (2, 4), (17, 3) })   // blocks per step: a divisor of the leaves' slots, and not
        {
            var got = Run(VulkanTestDevice.IntDot with { TensorMatVec = 2, TensorMatVecBlocks = kb }, T, out long calls);
            Assert.True(calls > 0, "the tensor-core kernel was not used");
            for (int i = 0; i < want.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(want[i]) == BitConverter.SingleToInt32Bits(got[i]),
                    $"{T} tokens, element {i}: {got[i]:R} against {want[i]:R}");
        }
    }

    public static TheoryData<GgmlType, int, int, bool> IntDotCases()
    {
        var d = new TheoryData<GgmlType, int, int, bool>();
        foreach (var t in new[] { GgmlType.Q8_0, GgmlType.Q4_0 })
        {
            d.Add(t, 37, 64, false);
            d.Add(t, 300, 320, false);
            d.Add(t, 21, 5120 + 96, false);   // several blocks per invocation
            d.Add(t, 70, 96, true);
        }
        return d;
    }

    /// <summary>
    /// Q8_0/Q4_0 matvecs with int8 activations (integer dot products, forced on: lavapipe has the feature, not
    /// accelerated) against the CPU engine's 8-bit-activation path, which quantizes the same way: the integer products
    /// are exact, only the float summation differs. With the fused norm the quantized vector is x·w instead of the
    /// normalized one (a scalar apart), so ties may round differently: a looser bound there.
    /// </summary>
    [Theory, MemberData(nameof(IntDotCases))]
    public void IntDotMatvecsMatchTheCpusInt8Path(GgmlType type, int rows, int cols, bool noSubgroups)
    {
        using var cpu8 = new CpuBackend(2, int8Activations: true);
        using var p = new OpPair(rows + cols, noSubgroups, VulkanTestDevice.IntDot);
        Assert.Equal(ActivationPrecision.Int8, p.Vk.MatMulActivations(type, 1));
        var f = p.Random(rows * cols, 0.2f);
        var (wc, wv) = p.Weight(type, rows, cols, values: f);
        var w8 = p.LoadInto(cpu8, type, rows, cols, f);
        var xs = p.Random(cols, 2f);
        var (xc, xv) = p.Tensor(1, cols, xs);
        var x8 = (CpuTensor)cpu8.Alloc(1, cols);
        xs.CopyTo(x8.Span);
        var d8 = cpu8.Alloc(1, rows);
        var (dc, dv) = p.Tensor(1, rows);
        cpu8.MatMul(w8, x8, d8);
        p.Vk.MatMul(wv, xv, dv);
        var want = ((CpuTensor)d8).Span.ToArray();
        double e = Reference.RelErr(p.ReadVk(dv), want);
        p.Cpu.MatMul(wc, xc, dc);
        double eFloat = Reference.RelErr(p.ReadVk(dv), p.ReadCpu(dc));
        _out.WriteLine($"{type} {rows}x{cols}: int8 vs CPU int8 {e:E2}, vs float activations {eFloat:E2}");
        Assert.InRange(e, 0, 1e-5);
        Assert.InRange(eFloat, 1e-7, 3e-2);   // 8-bit activations: not the float result, but close
        // fused norm + SwiGLU epilogue
        var (nc, nv) = p.Weight(GgmlType.F32, 1, cols, 1f, vector: true);
        var nw8 = p.LoadInto(cpu8, GgmlType.F32, 1, cols, p.LastValues, vector: true);
        var a8 = cpu8.Alloc(1, cols);
        var s8 = cpu8.Alloc(1, rows / 2);
        var (ac, av) = p.Tensor(1, cols);
        var (sc, sv) = p.Tensor(1, rows / 2);
        if (rows % 2 == 0)
        {
            new ForwardPlan("n", 1, [new RmsNormOp(x8, nw8, a8, 1e-5f, 0), new MatMulOp(w8, a8, d8, null, false, 0), new SwiGluOp(d8, s8, 0)]).RunUnfused(cpu8);
            p.Vk.Run(new ForwardPlan("n", 1, [new RmsNormOp(xv, nv, av, 1e-5f, 0), new MatMulOp(wv, av, dv, null, false, 0), new SwiGluOp(dv, sv, 0)]));
            Assert.Equal(1, p.Vk.FusedDispatches);
            double es = Reference.RelErr(p.ReadVk(sv), ((CpuTensor)s8).Span.ToArray());
            _out.WriteLine($"  norm+swiglu fused: {es:E2}");
            Assert.InRange(es, 0, 2e-3);
        }
    }

    /// <summary>
    /// A one-token int8 matvec whose output (accumulated into a residual) is the next fused norm's input quantizes it for
    /// the next matvec itself (M_QOUT): the two results must be the bits of the same products with the quantization in
    /// its own kernel (one token's plan and a two-token plan, whose quantization runs in quantize_x), and close to the
    /// CPU's 8-bit path.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q4_0, false)]
    [InlineData(GgmlType.Q8_0, true)]
    public void MatvecQuantizesItsOutputForTheNextNormExactly(GgmlType type, bool noSubgroups)
    {
        const int hidden = 320, inner = 96, rows2 = 64;
        using var cpu8 = new CpuBackend(2, int8Activations: true);
        using var p = new OpPair(hidden + rows2, noSubgroups, VulkanTestDevice.IntDot);
        var f1 = p.Random(hidden * inner, 0.2f);
        var f2 = p.Random(rows2 * hidden, 0.2f);
        var nwv = p.Random(hidden, 1f);
        var (_, w1) = p.Weight(type, hidden, inner, values: f1);
        var (_, w2) = p.Weight(type, rows2, hidden, values: f2);
        var (_, nw) = p.Weight(GgmlType.F32, 1, hidden, values: nwv, vector: true);
        var xs = p.Random(2 * inner, 2f);
        var res = p.Random(2 * hidden, 1f);
        float[] RunVk(int tokens)
        {
            var (_, x) = p.Tensor(tokens, inner, xs[..(tokens * inner)]);
            var (_, r) = p.Tensor(tokens, hidden, res[..(tokens * hidden)]);
            var (_, a) = p.Tensor(tokens, hidden);
            var (_, d) = p.Tensor(tokens, rows2);
            p.Vk.Run(new ForwardPlan($"q{tokens}", tokens, [new MatMulOp(w1, x, r, null, true, 0), new RmsNormOp(r, nw, a, 1e-5f, 0), new MatMulOp(w2, a, d, null, false, 0)]));
            return p.ReadVk(d);
        }
        long before = p.Vk.QuantizedOutputs;
        var one = RunVk(1);
        Assert.Equal(before + 1, p.Vk.QuantizedOutputs);
        var two = RunVk(2);
        Assert.Equal(before + 1, p.Vk.QuantizedOutputs);   // two tokens: quantize_x
        Assert.Equal(one, two[..rows2]);
        // the CPU's 8-bit path on the same ops (sums in another order, and the norm's Σx² too: a tie may round apart)
        var c1 = p.LoadInto(cpu8, type, hidden, inner, f1);
        var c2 = p.LoadInto(cpu8, type, rows2, hidden, f2);
        var cn = p.LoadInto(cpu8, GgmlType.F32, 1, hidden, nwv, vector: true);
        var cx = (CpuTensor)cpu8.Alloc(1, inner);
        xs.AsSpan(0, inner).CopyTo(cx.Span);
        var cr = (CpuTensor)cpu8.Alloc(1, hidden);
        res.AsSpan(0, hidden).CopyTo(cr.Span);
        var ca = cpu8.Alloc(1, hidden);
        var cd = (CpuTensor)cpu8.Alloc(1, rows2);
        new ForwardPlan("c", 1, [new MatMulOp(c1, cx, cr, null, true, 0), new RmsNormOp(cr, cn, ca, 1e-5f, 0), new MatMulOp(c2, ca, cd, null, false, 0)]).RunUnfused(cpu8);
        double e = Reference.RelErr(one, cd.Span.ToArray());
        _out.WriteLine($"{type}: quantized-output path vs CPU int8 {e:E2}");
        Assert.InRange(e, 0, 2e-3);
    }

    [Theory]
    [InlineData(3, 20, 40, false)]     // one split (h goes through the partials when fused), dv not a multiple of 64
    [InlineData(2, 256, 512, false)]   // 7B head size: 8 row splits, 2 column tiles
    [InlineData(3, 64, 300, true)]
    public void HeadNormFusedIntoTheStepKernelMatchesCpu(int heads, int dqk, int dv, bool noSubgroups)
    {
        var c = Cfg(heads, dqk, dv);
        using var p = new OpPair(heads * dqk + dv, noSubgroups);
        var sc = p.Cpu.AllocState(c);
        var sv = p.Vk.AllocState(c);
        var s0 = p.Random((int)c.StateFloats, 0.5f);
        p.Cpu.WriteState(sc, s0);
        p.Vk.WriteState(sv, s0);
        var (wc, wv) = p.Weight(GgmlType.F32, 1, c.VDim, 1f, vector: true);
        for (int rep = 0; rep < 2; rep++)
        {
            var (qc, qv) = p.Tensor(1, c.QkvoDim);
            var (gc, gv) = p.Tensor(1, 2 * heads, p.Random(2 * heads, 3f));
            var (hc, hv) = p.Tensor(1, c.VDim);
            var (dc, dvv) = p.Tensor(1, c.VDim);
            var (d2c, d2v) = p.Tensor(1, c.VDim);
            // the second time a later op reads h: the step kernel must write it as well
            PlanOp[] Ops(ITensor q, ITensor g, IStateBuffer s, ITensor h, IWeight w, ITensor d, ITensor d2) => rep == 0
                ? [new MlstmCellOp(c, q, g, s, h, 0), new HeadNormGateOp(c, h, q, w, d, 0)]
                : [new MlstmCellOp(c, q, g, s, h, 0), new HeadNormGateOp(c, h, q, w, d, 0), new HeadNormGateOp(c, h, q, w, d2, 0)];
            new ForwardPlan("c", 1, Ops(qc, gc, sc, hc, wc, dc, d2c)).RunUnfused(p.Cpu);
            p.Vk.Run(new ForwardPlan("c", 1, Ops(qv, gv, sv, hv, wv, dvv, d2v)));
            if (rep == 1)
            {
                // h = q̂ᵀC / max(|q̂·n|, e^−m): a cancelling q̂·n amplifies summation-order differences (the F32 bound, 3e-5)
                Assert.InRange(Reference.RelErr(p.ReadVk(hv), p.ReadCpu(hc)), 0, 3e-5);
                Assert.InRange(Reference.RelErr(p.ReadVk(d2v), p.ReadCpu(d2c)), 0, 3e-5);
            }
            var a = new float[c.StateFloats];
            var b = new float[c.StateFloats];
            p.Cpu.ReadState(sc, a);
            p.Vk.ReadState(sv, b);
            Assert.InRange(Reference.RelErr(b, a), 0, 1e-5);
            // the normalized h inherits h's error (see above): the F32 bound
            Assert.InRange(Reference.RelErr(p.ReadVk(dvv), p.ReadCpu(dc)), 0, 3e-5);
            Assert.Equal(rep + 1, p.Vk.FusedDispatches);
        }
    }

    [Fact]
    public void DeviceBandwidthProbeCopiesAndFreesItsBuffers()
    {
        using var p = new OpPair(3);
        var (wc, wv) = p.Weight(GgmlType.Q8_0, 40, 64);
        var (xc, xv) = p.Tensor(1, 64);
        var (dc, dv) = p.Tensor(1, 40);
        p.Vk.MatMul(wv, xv, dv); // pending work is finished first
        long before = p.Vk.DeviceBytes;
        var r = ((IBandwidthProbe)p.Vk).MeasureDeviceBandwidth(24L << 20, 3);
        _out.WriteLine(r.Method);
        Assert.InRange(r.GBs, 0.01, 1e5);
        Assert.Equal(24L << 20, r.Bytes);
        Assert.Contains("vkCmdCopyBuffer", r.Method);
        Assert.Contains("shader copy", r.Method);
        Assert.Equal(before, p.Vk.DeviceBytes);
        p.Cpu.MatMul(wc, xc, dc);
        Assert.InRange(Reference.RelErr(p.ReadVk(dv), p.ReadCpu(dc)), 0, OpTolerance);
    }

    [Fact]
    public void PrefillGemmSelection()
    {
        // the cooperative-matrix GEMM needs every piece; lavapipe has none of it and keeps the fp32 GEMM
        Assert.True(GemmSelection.CoopMatUsable(true, true, true, true, 32, null));
        Assert.True(GemmSelection.CoopMatUsable(true, true, true, true, 32, "1"));
        Assert.False(GemmSelection.CoopMatUsable(true, true, true, true, 32, "0"));
        Assert.False(GemmSelection.CoopMatUsable(false, true, true, true, 32, null));
        Assert.False(GemmSelection.CoopMatUsable(true, false, true, true, 32, null));
        Assert.False(GemmSelection.CoopMatUsable(true, true, false, true, 32, null));
        Assert.False(GemmSelection.CoopMatUsable(true, true, true, false, 32, null));
        Assert.False(GemmSelection.CoopMatUsable(true, true, true, true, 64, null));
        Assert.False(VulkanTestDevice.Context.CoopMatNv);
        using (var be = VulkanTestDevice.NewBackend()) Assert.DoesNotContain("cooperative matri", be.Device);
        // and the shader is built and embedded (it runs only on devices that have the extension)
        Assert.True(Kernel.LoadSpirv("matmul_coopmat").Length > 1000);
    }

    /// <summary>
    /// The shaders Debian's glslc cannot compile (shaders/cm2) are committed as SPIR-V made by scripts/build-cm2-spirv.sh:
    /// each one is embedded, is SPIR-V, and was made from the source as it is now (the script records the source's
    /// SHA-256): editing a source without regenerating its SPIR-V fails here.
    /// </summary>
    [Fact]
    public void PrebuiltSpirvMatchesItsSource()
    {
        var dir = Path.Combine(TestPaths.RepoRoot, "shaders");
        var sources = Directory.GetFiles(Path.Combine(dir, "cm2"), "*.comp");
        Assert.NotEmpty(sources);
        foreach (var src in sources)
        {
            string name = Path.GetFileNameWithoutExtension(src);
            var spv = Kernel.LoadSpirv(name);
            Assert.True(spv.Length > 1000, name);
            Assert.Equal(0x07230203u, BitConverter.ToUInt32(spv, 0));
            Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "prebuilt", name + ".spv")), spv);
            string recorded = File.ReadAllText(Path.Combine(dir, "prebuilt", name + ".source.sha256")).Trim();
            string actual = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(src))).ToLowerInvariant();
            Assert.True(recorded == actual, $"{name}: shaders/prebuilt/{name}.spv was made from another version of {src}: run scripts/build-cm2-spirv.sh");
        }
        // lavapipe has no coopmat2: the backend stays on the other GEMMs
        Assert.False(VulkanTestDevice.Context.CoopMat2);
    }

    public static TheoryData<GgmlType, int, int, int> CoopMatCases()
    {
        var d = new TheoryData<GgmlType, int, int, int>();
        foreach (var t in AllTypes)
        {
            bool q = t is GgmlType.Q8_0 or GgmlType.Q4_0;
            d.Add(t, 3, 150, q ? 96 : 100);     // partial tiles everywhere, K not a multiple of 32 (float types)
            d.Add(t, 130, 260, q ? 64 : 37);    // three token tiles, three row tiles
        }
        return d;
    }

    /// <summary>
    /// The cooperative-matrix GEMM's tiling, f16 staging, loads and epilogue, with the 16×16 matrix operations emulated
    /// (lavapipe has no cooperative matrices). Its operands are rounded to f16: bound 2e-3 (measured below 6e-4).
    /// </summary>
    [Theory, MemberData(nameof(CoopMatCases))]
    public void CoopMatGemmEmulatedMatchesCpu(GgmlType type, int T, int rows, int cols)
    {
        using var p = new OpPair(rows + cols + T, options: VulkanTestDevice.EmulatedCoopMat);
        var (wc, wv) = p.Weight(type, rows, cols);
        var (bc, bv) = p.Weight(GgmlType.F32, 1, rows, 1f, vector: true);
        var (xc, xv) = p.Tensor(T, cols);
        var (dc, dv) = p.Tensor(T, rows, p.Random(T * rows));
        p.Cpu.MatMul(wc, xc, dc);
        p.Vk.MatMul(wv, xv, dv);
        double e1 = Reference.RelErr(p.ReadVk(dv), p.ReadCpu(dc));
        p.Cpu.MatMul(wc, xc, dc, bc, accumulate: true);
        p.Vk.MatMul(wv, xv, dv, bv, accumulate: true);
        double e2 = Reference.RelErr(p.ReadVk(dv), p.ReadCpu(dc));
        _out.WriteLine($"{type} T={T} {rows}x{cols}: coopmat (emulated) rel err {e1:E2} / with bias+acc {e2:E2}");
        if (type == GgmlType.F32)
        {
            // F32 weights never take the f16 GEMM (docs/precision.md): the float32 GEMM, exact
            Assert.Equal(ActivationPrecision.Float32, p.Vk.MatMulActivations(type, T));
            Assert.InRange(e1, 0, OpTolerance);
            Assert.InRange(e2, 0, OpTolerance);
            return;
        }
        Assert.Equal(ActivationPrecision.Float16, p.Vk.MatMulActivations(type, T));
        Assert.InRange(e1, 1e-9, 2e-3);   // not exact: the operands went through f16
        Assert.InRange(e2, 0, 2e-3);
    }

    /// <summary>
    /// The tensor-core GEMM's f16 operands prepared once (x converted by convert_f16.comp, quantized weights dequantized
    /// to F16 in slabs of rows) give the same bits as the GEMM converting them tile by tile: same rounding, same products;
    /// so do two register stages of operands and a grid with token tiles fastest. Emulated matrix operations; slabs of 64 rows so that a 200-row weight takes
    /// four (the last one short); 96-136 columns are 3 to 5 K steps of 32 (odd and even step counts for the stages).
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q4_0, 70, 96)]
    [InlineData(GgmlType.Q8_0, 130, 64)]
    [InlineData(GgmlType.F16, 70, 100)]
    public void GemmOperandsPreparedOnceGiveTheSameBits(GgmlType type, int T, int cols)
    {
        const int rows = 200;
        float[] Run(VulkanOptions o)
        {
            using var p = new OpPair(T + cols, options: o);
            var (_, wv) = p.Weight(type, rows, cols);
            var (_, bv) = p.Weight(GgmlType.F32, 1, rows, 1f, vector: true);
            var (_, xv) = p.Tensor(T, cols);
            var (_, dv) = p.Tensor(T, rows, p.Random(T * rows));
            p.Vk.MatMul(wv, xv, dv, bv, accumulate: true);
            var first = p.ReadVk(dv);
            p.Vk.MatMul(wv, xv, dv);
            return [.. first, .. p.ReadVk(dv)];
        }
        var perTile = VulkanTestDevice.EmulatedCoopMat with
        {
            GemmHalfXTokens = VulkanOptions.Never, GemmDequantTokens = VulkanOptions.Never, GemmRegisterStages = 1,
        };
        var plain = Run(perTile);
        var prepared = Run(perTile with { GemmHalfXTokens = 1, GemmDequantTokens = 1, GemmDequantBytes = 2 * 104 * 100 });
        var halfX = Run(perTile with { GemmHalfXTokens = 1 });
        var staged = Run(perTile with { GemmHalfXTokens = 1, GemmDequantTokens = 1, GemmRegisterStages = 2, GemmTokenMajor = true });
        Assert.Equal(plain, prepared);
        Assert.Equal(plain, halfX);
        Assert.Equal(plain, staged);
        Assert.Contains(plain, v => v != 0f);
    }

    /// <summary>
    /// A multi-sequence step over more than VecTokens sequences runs its products as GEMMs inside a command buffer that is
    /// recorded once and replayed: it must not read the f16 workspaces, which every prefill grows and releases. Prefills
    /// around the steps do use them; the steps still give every sequence the logits it gets on its own (within the f16
    /// GEMM's bound).
    /// </summary>
    [Fact]
    public void ReplayedGemmStepsDoNotNameThePrefillWorkspaces()
    {
        using var file = XlstmRun.Formats.Gguf.GgufFile.Open(Models.Converted("tiny-fused", GgmlType.Q4_0));
        using var be = VulkanTestDevice.NewBackend(options: VulkanTestDevice.EmulatedCoopMat with { VecTokens = 4 });
        var w = new ModelWeights(file, be);
        int V = w.Config.Vocab, slots = 6;
        using var br = new BatchRunner(w, slots);
        var l = new float[V];
        for (int s = 0; s < slots; s++)
        {
            br.Reset(s);
            br.Slot(s).Forward(Enumerable.Range(1 + s, 70 + 13 * s).ToArray(), LogitsMode.Last, l);   // GEMMs, prepared
        }
        long prefilled = be.PreparedGemms;
        Assert.True(prefilled > 0);
        var argmax = new int[slots];
        var logits = new float[slots * V];
        var tokens = Enumerable.Range(7, slots).ToArray();
        br.Step(tokens, V, argmax, logits);
        br.Step(tokens, V, argmax, logits);
        Assert.Equal(prefilled, be.PreparedGemms);   // recorded once, replayed: no prepared operands
        // a longer prompt in slot 0 grows the workspaces and releases them; the recorded step replays unharmed
        br.Reset(0);
        br.Slot(0).Forward(Enumerable.Range(3, 150).ToArray(), LogitsMode.Last, l);
        Assert.True(be.PreparedGemms > prefilled);
        br.Step(tokens, V, argmax, logits);
        Assert.Contains(logits, v => v != 0f);
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
    }

    /// <summary>The GEMM tiles of the multi-sequence decode step (16 to 64 tokens × 64 rows), emulated on lavapipe.</summary>
    [Theory]
    [InlineData(GgmlType.Q4_0, 3, 1, 4, 1, 1)]
    [InlineData(GgmlType.F16, 16, 1, 4, 1, 1)]
    [InlineData(GgmlType.Q8_0, 30, 1, 4, 2, 1)]
    [InlineData(GgmlType.BF16, 40, 2, 4, 2, 1)]
    public void SmallTokenTilesEmulatedMatchCpu(GgmlType type, int T, uint wm, uint wn, uint tm, uint tn)
    {
        using var p = new OpPair(T * 7 + (int)type, options: new VulkanOptions { EmulateCoopMat = new GemmTile(wm, wn, tm, tn, 4), VecTokens = 1 });
        int rows = 200, cols = type is GgmlType.Q8_0 or GgmlType.Q4_0 ? 96 : 100;
        var (wc, wv) = p.Weight(type, rows, cols);
        var (xc, xv) = p.Tensor(T, cols);
        var (dc, dv) = p.Tensor(T, rows, p.Random(T * rows));
        p.Cpu.MatMul(wc, xc, dc, accumulate: true);
        p.Vk.MatMul(wv, xv, dv, accumulate: true);
        double e = Reference.RelErr(p.ReadVk(dv), p.ReadCpu(dc));
        _out.WriteLine($"{type} T={T} tile {wm},{wn},{tm},{tn}: rel err {e:E2}");
        Assert.InRange(e, 1e-9, 2e-3);
    }

    /// <summary>
    /// Buffers come and go (the prefill workspace is released after every feed): a new buffer may get the Vulkan handle
    /// of a destroyed one, and a descriptor set cached for the old handle would read freed memory. Alternating sizes
    /// and contents over many rounds: every result must be the CPU's.
    /// </summary>
    [Fact]
    public void ReleasedBuffersNeverLeaveStaleDescriptorSets()
    {
        using var p = new OpPair(41);
        var (wc, wv) = p.Weight(GgmlType.Q8_0, 40, 64);
        for (int round = 0; round < 24; round++)
        {
            int T = 1 + round % 3 * 70;      // sub-allocated and dedicated sizes, matvec and GEMM
            var xs = p.Random(T * 64);
            var (xc, xv) = p.Tensor(T, 64, xs);
            var dv = p.Vk.Alloc(T, 40);
            var dc = p.Cpu.Alloc(T, 40);
            p.Vk.MatMul(wv, xv, dv);
            p.Cpu.MatMul(wc, xc, dc);
            Assert.InRange(Reference.RelErr(p.ReadVk(dv), p.ReadCpu(dc)), 0, OpTolerance);
            p.Vk.Free(xv);
            p.Vk.Free(dv);
        }
    }

    [Fact]
    public void ReplayRerunsTheRecordingWithNewInputs()
    {
        using var p = new OpPair(11);
        var (wc, wv) = p.Weight(GgmlType.Q8_0, 40, 64);
        var tv = p.Vk.AllocTokens(1);
        var tc = p.Cpu.AllocTokens(1);
        var (ec, ev) = p.Tensor(1, 64);
        var (dc, dv) = p.Tensor(1, 40);
        var iv = p.Vk.AllocIndices(1);
        var ic = p.Cpu.AllocIndices(1);
        var (tw, tvw) = p.Weight(GgmlType.F16, 40, 64);
        int recorded = 0;
        for (int step = 0; step < 5; step++)
        {
            int[] id = [step * 7 % 40];
            p.Vk.WriteTokens(tv, id);
            p.Cpu.WriteTokens(tc, id);
            void Body(IBackend be, IWeight emb, ITokenBuffer t, ITensor e, IWeight w, ITensor d, IIndexBuffer i)
            {
                be.Embed(emb, t, e);
                be.MatMul(w, e, d);
                be.Argmax(d, 40, i);
            }
            p.Vk.Replay("k", () => { recorded++; Body(p.Vk, tvw, tv, ev, wv, dv, iv); });
            p.Cpu.Replay("k", () => Body(p.Cpu, tw, tc, ec, wc, dc, ic));
            var a = new int[1];
            var b = new int[1];
            p.Cpu.ReadIndices(ic, a);
            p.Vk.ReadIndices(iv, b);
            Assert.Equal(a, b);
            Assert.InRange(Reference.RelErr(p.ReadVk(dv), p.ReadCpu(dc)), 0, OpTolerance);
        }
        Assert.Equal(1, recorded);
    }
}
