using System.Runtime.InteropServices;
using XlstmRun.Backends.Cpu;
using XlstmRun.Backends.Vulkan;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Formats.Quant;
using XlstmRun.Model;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.Vulkan;

/// <summary>The same weights and inputs on the CPU backend and on the Vulkan backend (lavapipe), op by op.</summary>
public sealed unsafe class OpPair : IDisposable
{
    public readonly CpuBackend Cpu = new(2, int8Activations: false); // the exact float path: other backends keep float activations
    public readonly VulkanBackend Vk;
    private readonly List<nint> _native = new();
    private readonly Random _rng;

    public OpPair(int seed, bool noSubgroups = false)
    {
        Vk = VulkanTestDevice.NewBackend(noSubgroups);
        _rng = new Random(seed);
    }

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
    public (IWeight Cpu, IWeight Vk) Weight(GgmlType type, int rows, int cols, float scale = 0.2f, bool vector = false)
    {
        var f = Random(rows * cols, scale);
        long rowBytes = GgmlTypes.RowBytes(type, cols);
        long bytes = rowBytes * rows;
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 64), 64);
        _native.Add((nint)p);
        for (int r = 0; r < rows; r++) Quantizer.EncodeRow(type, f.AsSpan(r * cols, cols), new Span<byte>(p + r * rowBytes, (int)rowBytes));
        long[] ne = vector ? [cols] : [cols, rows];
        var view = new TensorView($"w{_native.Count}", type, ne, p, bytes);
        return (Cpu.LoadWeight(view), Vk.LoadWeight(view));
    }

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
        foreach (var p in _native) NativeMemory.AlignedFree((void*)p);
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
        using var lim = VulkanTestDevice.Limits(noDirectMapping: true, maxBinding: 2048);
        using var p = new OpPair(7);
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
        p.Cpu.RmsNorm(xc, nc, ac, 1e-5f);
        p.Cpu.MatMul(wc, ac, dc);
        p.Vk.RmsNorm(xv, nv, av, 1e-5f);
        p.Vk.MatMul(wv, av, dv);
        Assert.InRange(Reference.RelErr(p.ReadVk(dv), p.ReadCpu(dc)), 0, OpTolerance);
        Assert.InRange(Reference.RelErr(p.ReadVk(av), p.ReadCpu(ac)), 0, OpTolerance);
        Assert.Equal(1, p.Vk.FusedDispatches);
    }

    // ---- decode-step fusions (deferred ops in VulkanBackend) ----------------------------------------------------------

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
    public void RmsNormFusedIntoTheNextMatvecsMatchesCpu(GgmlType type, int cols, bool noSubgroups)
    {
        // RmsNorm(x → a), then two matvecs reading a (the qkvo and gate matvecs of a block): both apply the norm
        // themselves, the first writes a; a read afterwards sees a, and an op that is not a matvec ends the fusion
        using var p = new OpPair(cols * 3 + (int)type, noSubgroups);
        Assert.True(p.Vk.Fusion);
        var (nc, nv) = p.Weight(GgmlType.F32, 1, cols, 1f, vector: true);
        var (w1c, w1v) = p.Weight(type, 70, cols);
        var (w2c, w2v) = p.Weight(GgmlType.F32, 6, cols);
        var (bc, bv) = p.Weight(GgmlType.F32, 1, 6, 1f, vector: true);
        var (xc, xv) = p.Tensor(1, cols, p.Random(cols, 3f));
        var (ac, av) = p.Tensor(1, cols);
        var (d1c, d1v) = p.Tensor(1, 70);
        var (d2c, d2v) = p.Tensor(1, 6);
        foreach (var be in new (IBackend B, IWeight N, IWeight W1, IWeight W2, IWeight Bias, ITensor X, ITensor A, ITensor D1, ITensor D2)[]
                     { (p.Cpu, nc, w1c, w2c, bc, xc, ac, d1c, d2c), (p.Vk, nv, w1v, w2v, bv, xv, av, d1v, d2v) })
        {
            be.B.RmsNorm(be.X, be.N, be.A, 1e-5f);
            be.B.MatMul(be.W1, be.A, be.D1);
            be.B.MatMul(be.W2, be.A, be.D2, be.Bias);
        }
        Assert.InRange(Reference.RelErr(p.ReadVk(av), p.ReadCpu(ac)), 0, OpTolerance);
        Assert.Equal(2, p.Vk.FusedDispatches);
        Assert.InRange(Reference.RelErr(p.ReadVk(d1v), p.ReadCpu(d1c)), 0, OpTolerance);
        Assert.InRange(Reference.RelErr(p.ReadVk(d2v), p.ReadCpu(d2c)), 0, OpTolerance);
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
        foreach (var be in new (IBackend B, IWeight N, IWeight W, IWeight L, ITensor X, ITensor A, ITensor G, ITensor S, ITensor O)[]
                     { (p.Cpu, nc, wc, lc, xc, ac, gc, sc, oc), (p.Vk, nv, wv, lv, xv, av, gv, sv, ov) })
        {
            // norm → gate|up matvec → SwiGLU (the FFN), then a matvec → soft-cap (the logits), both without a norm too
            be.B.RmsNorm(be.X, be.N, be.A, 1e-5f);
            be.B.MatMul(be.W, be.A, be.G);
            be.B.SwiGlu(be.G, be.S);
            be.B.MatMul(be.L, be.A, be.O);               // a materialized (the norm ended at SwiGlu)
            be.B.SoftCap(be.O, 3f);
        }
        Assert.InRange(Reference.RelErr(p.ReadVk(gv), p.ReadCpu(gc)), 0, OpTolerance);
        Assert.Equal(2, p.Vk.FusedDispatches); // norm+swiglu, softcap
        Assert.InRange(Reference.RelErr(p.ReadVk(sv), p.ReadCpu(sc)), 0, OpTolerance);
        Assert.InRange(Reference.RelErr(p.ReadVk(ov), p.ReadCpu(oc)), 0, OpTolerance);
        Assert.InRange(Reference.RelErr(p.ReadVk(av), p.ReadCpu(ac)), 0, OpTolerance);
        foreach (var be in new (IBackend B, IWeight W, IWeight L, ITensor X, ITensor G, ITensor S, ITensor O)[]
                     { (p.Cpu, wc, lc, xc, gc, sc, oc), (p.Vk, wv, lv, xv, gv, sv, ov) })
        {
            be.B.MatMul(be.W, be.X, be.G);
            be.B.SwiGlu(be.G, be.S);
            be.B.MatMul(be.L, be.X, be.O);
            be.B.SoftCap(be.O, 3f);
        }
        Assert.InRange(Reference.RelErr(p.ReadVk(sv), p.ReadCpu(sc)), 0, OpTolerance);
        Assert.InRange(Reference.RelErr(p.ReadVk(ov), p.ReadCpu(oc)), 0, OpTolerance);
        Assert.Equal(4, p.Vk.FusedDispatches);
    }

    [Fact]
    public void FusionIsSkippedWhereItWouldRace()
    {
        // norm in place (x = a); a matvec accumulating into the norm's input; a second consumer after an unrelated op;
        // a SwiGlu of a tensor that is not the pending matvec's output: every case must equal the unfused ops
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
        foreach (var be in new (IBackend B, IWeight N, IWeight W, IWeight U, ITensor X, ITensor Y, ITensor A, ITensor G, ITensor G2, ITensor S)[]
                     { (p.Cpu, nc, wc, uc, xc, yc, ac, gc, g2c, sc), (p.Vk, nv, wv, uv, xv, yv, av, gv, g2v, sv) })
        {
            be.B.RmsNorm(be.Y, be.N, be.Y, 1e-5f);            // in place
            be.B.MatMul(be.W, be.Y, be.A);
            be.B.RmsNorm(be.X, be.N, be.A, 1e-5f);
            be.B.MatMul(be.W, be.A, be.X, accumulate: true);   // writes the norm's input
            be.B.RmsNorm(be.X, be.N, be.A, 1e-5f);
            be.B.MatMul(be.U, be.A, be.G);
            be.B.SwiGlu(be.G2, be.S);                          // not the pending output: the matvec runs first, unfused
            be.B.MatMul(be.W, be.A, be.Y);                     // a reads the materialized a (the norm ended)
        }
        foreach (var (c, v) in new[] { (xc, xv), (yc, yv), (ac, av), (gc, gv), (sc, sv) })
            Assert.InRange(Reference.RelErr(p.ReadVk(v), p.ReadCpu(c)), 0, OpTolerance);
        Assert.Equal(1, p.Vk.FusedDispatches); // only the U matvec took the norm
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
            p.Cpu.MlstmCell(c, qc, gc, sc, 0, hc);
            p.Cpu.HeadNormGate(c, hc, qc, wc, dc);
            p.Vk.MlstmCell(c, qv, gv, sv, 0, hv);
            p.Vk.HeadNormGate(c, hv, qv, wv, dvv);
            var a = new float[c.StateFloats];
            var b = new float[c.StateFloats];
            p.Cpu.ReadState(sc, a);
            p.Vk.ReadState(sv, b);
            Assert.InRange(Reference.RelErr(p.ReadVk(hv), p.ReadCpu(hc)), 0, 1e-5);
            Assert.InRange(Reference.RelErr(b, a), 0, 1e-5);
            Assert.InRange(Reference.RelErr(p.ReadVk(dvv), p.ReadCpu(dc)), 0, 1e-5);
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
        ulong before = p.Vk.DeviceBytes;
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
        using (var be = VulkanTestDevice.NewBackend()) Assert.DoesNotContain("cooperative matrix", be.Device);
        // and the shader is built and embedded (it runs only on devices that have the extension)
        Assert.True(Kernel.LoadSpirv("matmul_coopmat").Length > 1000);
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
        VulkanBackend.TestEmulateCoopMat = true;
        OpPair p;
        try { p = new OpPair(rows + cols + T); }
        finally { VulkanBackend.TestEmulateCoopMat = false; }
        using var _ = p;
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
        Assert.InRange(e1, 1e-9, 2e-3);   // not exact: the operands went through f16
        Assert.InRange(e2, 0, 2e-3);
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
