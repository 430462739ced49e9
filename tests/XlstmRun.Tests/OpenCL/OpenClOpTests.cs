using System.Runtime.InteropServices;
using XlstmRun.Backends.Cpu;
using XlstmRun.Backends.OpenCL;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Formats.Quant;
using XlstmRun.Model;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.OpenCL;

/// <summary>A random weight encoded as <see cref="GgmlType"/> in native memory, viewed as a GGUF tensor.</summary>
internal sealed unsafe class NativeWeight : IDisposable
{
    private readonly byte* _p;
    public TensorView View { get; }

    public NativeWeight(string name, GgmlType type, int rows, int cols, Random rng, float scale = 1f)
    {
        long rowBytes = GgmlTypes.RowBytes(type, cols);
        long bytes = rowBytes * rows;
        _p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), 64);
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            for (int i = 0; i < cols; i++) row[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
            Quantizer.EncodeRow(type, row, new Span<byte>(_p + r * rowBytes, (int)rowBytes));
        }
        View = new TensorView(name, type, rows == 1 ? [cols] : [cols, rows], _p, bytes);
    }

    public void Dispose() => NativeMemory.AlignedFree(_p);
}

/// <summary>
/// Every op of the OpenCL backend against the CPU backend's op on random inputs, with sizes that are not multiples of
/// the work-group size (64), the matmul tile (16) or the chunk size. Float ops agree within 2e-6 relative error (measured ≤ 4.2e-7) (the only
/// differences are float32 summation orders and the device's exp/tanh/log); decoding ops (embed, argmax) agree exactly.
/// </summary>
public class OpenClOpTests : IDisposable
{
    private const double Tol = 2e-6; // measured at most 4.2e-7 on PoCL 3.1
    private readonly CpuBackend _cpu = new(2, int8Activations: false); // the exact float path: OpenCL keeps float activations
    private readonly OpenClBackend _cl = new();
    private readonly Random _rng = new(1234);
    private readonly ITestOutputHelper _out;

    public OpenClOpTests(ITestOutputHelper output) { _out = output; }

    public void Dispose() => _cl.Dispose();

    private float[] Rand(int n, float scale = 1f, float shift = 0f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(_rng.NextDouble() * 2 - 1) * scale + shift;
        return a;
    }

    private (ITensor Cpu, ITensor Cl) Pair(int rows, int cols, float[]? data = null)
    {
        var c = _cpu.Alloc(rows, cols);
        var g = _cl.Alloc(rows, cols);
        if (data != null)
        {
            data.CopyTo(((CpuTensor)c).Span);
            _cl.Write(g, data);
        }
        return (c, g);
    }

    private float[] ReadCl(ITensor t)
    {
        var a = new float[t.Rows * t.Cols];
        _cl.Read(t, a);
        return a;
    }

    private static float[] ReadCpu(ITensor t) => ((CpuTensor)t).Span.ToArray();

    private void Close(float[] cpu, float[] cl, double tol = Tol)
    {
        Assert.Equal(cpu.Length, cl.Length);
        Assert.All(cl, v => Assert.True(float.IsFinite(v)));
        double e = Reference.RelErr(cl, cpu);
        _out.WriteLine($"relative error vs CPU: {e:E2}");
        Assert.InRange(e, 0, tol);
    }

    public static TheoryData<GgmlType> AllTypes() => new(GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0);

    private static int ColsFor(GgmlType t, int floatCols, int blockCols) => GgmlTypes.BlockSize(t) == 1 ? floatCols : blockCols;

    [Theory]
    [InlineData(GgmlType.F32, false)] [InlineData(GgmlType.F16, false)] [InlineData(GgmlType.BF16, false)]
    [InlineData(GgmlType.Q8_0, false)] [InlineData(GgmlType.Q4_0, false)]
    [InlineData(GgmlType.F32, true)] [InlineData(GgmlType.Q4_0, true)]
    public void EmbedDecodesRowsExactly(GgmlType type, bool split)
    {
        int rows = 37, cols = ColsFor(type, 45, 96);
        using var w = new NativeWeight("emb", type, rows, cols, _rng);
        using var cl = split ? new OpenClBackend(-1, 5 * w.View.RowBytes) : null;
        var be = cl ?? _cl;
        var wc = _cpu.LoadWeight(w.View);
        var wg = (ClWeight)be.LoadWeight(w.View);
        if (split) Assert.Equal(8, wg.PartCount);
        int[] ids = [0, 36, 5, 17, 5, 30, 1];
        var tc = _cpu.AllocTokens(ids.Length);
        var tg = be.AllocTokens(ids.Length);
        _cpu.WriteTokens(tc, ids);
        be.WriteTokens(tg, ids);
        var dc = _cpu.Alloc(ids.Length, cols);
        var dg = be.Alloc(ids.Length, cols);
        _cpu.Embed(wc, tc, dc);
        be.Embed(wg, tg, dg);
        var got = new float[ids.Length * cols];
        be.Read(dg, got);
        Assert.Equal(ReadCpu(dc), got);
    }

    [Theory]
    [InlineData(GgmlType.F32, 1, false, false, false)] [InlineData(GgmlType.F32, 19, true, false, false)] [InlineData(GgmlType.F32, 1, false, true, true)]
    [InlineData(GgmlType.F16, 1, true, true, false)] [InlineData(GgmlType.F16, 19, false, true, false)] [InlineData(GgmlType.F16, 33, true, false, true)]
    [InlineData(GgmlType.BF16, 1, false, false, false)] [InlineData(GgmlType.BF16, 19, true, true, false)]
    [InlineData(GgmlType.Q8_0, 1, true, false, false)] [InlineData(GgmlType.Q8_0, 19, false, true, true)] [InlineData(GgmlType.Q8_0, 5, true, true, false)]
    [InlineData(GgmlType.Q4_0, 1, false, true, false)] [InlineData(GgmlType.Q4_0, 19, true, false, false)] [InlineData(GgmlType.Q4_0, 1, true, true, true)]
    public void MatMulMatchesCpu(GgmlType type, int tokens, bool bias, bool accumulate, bool split)
    {
        int outRows = 71, K = ColsFor(type, 75, 160);
        using var w = new NativeWeight("w", type, outRows, K, _rng, 0.5f);
        using var bw = new NativeWeight("b", GgmlType.F32, 1, outRows, _rng);
        var x = Rand(tokens * K);
        var d0 = Rand(tokens * outRows);
        var xc = _cpu.Alloc(tokens, K);
        var dc = _cpu.Alloc(tokens, outRows);
        x.CopyTo(((CpuTensor)xc).Span);
        d0.CopyTo(((CpuTensor)dc).Span);
        _cpu.MatMul(_cpu.LoadWeight(w.View), xc, dc, bias ? _cpu.LoadWeight(bw.View) : null, accumulate);
        var want = ReadCpu(dc);
        // both kernel families: register-blocked (CPU devices) and work-group (GPUs)
        foreach (bool workGroup in new[] { false, true })
        {
            using var be = new OpenClBackend(-1, split ? 9 * w.View.RowBytes : 0, workGroup);
            Assert.Equal(workGroup, be.WorkGroupKernels);
            var wg = (ClWeight)be.LoadWeight(w.View);
            if (split) Assert.Equal(8, wg.PartCount);
            var xg = be.Alloc(tokens, K);
            var dg = be.Alloc(tokens, outRows);
            be.Write(xg, x);
            be.Write(dg, d0);
            be.MatMul(wg, xg, dg, bias ? be.LoadWeight(bw.View) : null, accumulate);
            var got = new float[tokens * outRows];
            be.Read(dg, got);
            Close(want, got);
        }
    }

    /// <summary>A view of rows in the middle of bigger tensors (non-zero offsets) reads and writes only those rows.</summary>
    [Fact]
    public void MatMulOnRowViewsTouchesOnlyTheView()
    {
        int K = 64, outRows = 40;
        using var w = new NativeWeight("w", GgmlType.F16, outRows, K, _rng);
        var wc = _cpu.LoadWeight(w.View);
        var wg = _cl.LoadWeight(w.View);
        var (xc, xg) = Pair(10, K, Rand(10 * K));
        var init = Rand(10 * outRows);
        var (dc, dg) = Pair(10, outRows, init);
        foreach (var (r0, n) in new[] { (3, 1), (4, 5) })
        {
            _cpu.MatMul(wc, _cpu.Rows(xc, r0, n), _cpu.Rows(dc, r0 + 1, n));
            _cl.MatMul(wg, _cl.Rows(xg, r0, n), _cl.Rows(dg, r0 + 1, n));
        }
        var got = ReadCl(dg);
        Close(ReadCpu(dc), got);
        Assert.Equal(init.AsSpan(0, 4 * outRows).ToArray(), got.AsSpan(0, 4 * outRows).ToArray());
        Assert.Equal(init.AsSpan(10 * outRows - 0).ToArray(), got.AsSpan(10 * outRows).ToArray());
    }

    [Theory]
    [InlineData(1, 100)] [InlineData(3, 100)] [InlineData(2, 7)] [InlineData(5, 256)]
    public void RmsNormMatchesCpu(int rows, int n)
    {
        using var w = new NativeWeight("norm", GgmlType.F32, 1, n, _rng);
        var (xc, xg) = Pair(rows, n, Rand(rows * n, 3f, 0.5f));
        var (dc, dg) = Pair(rows, n);
        _cpu.RmsNorm(xc, _cpu.LoadWeight(w.View), dc, 1e-6f);
        _cl.RmsNorm(xg, _cl.LoadWeight(w.View), dg, 1e-6f);
        Close(ReadCpu(dc), ReadCl(dg));
    }

    private static ModelConfig Config(int heads = 3, int dqk = 12, int dv = 20, int chunk = 8) => new()
    {
        Hidden = 48, Blocks = 2, Heads = heads, QkDim = heads * dqk, VDim = heads * dv, FfnDim = 64, Vocab = 10, ChunkSize = chunk,
    };

    [Theory]
    [InlineData(1)] [InlineData(5)]
    public void HeadNormGateMatchesCpu(int T)
    {
        var c = Config(3, 12, 40);
        using var w = new NativeWeight("hn", GgmlType.F32, 1, c.VDim, _rng);
        var (hc, hg) = Pair(T, c.VDim, Rand(T * c.VDim, 2f, 0.3f));
        var (qc, qg) = Pair(T, c.QkvoDim, Rand(T * c.QkvoDim, 4f));
        var (dc, dg) = Pair(T, c.VDim);
        _cpu.HeadNormGate(c, hc, qc, _cpu.LoadWeight(w.View), dc);
        _cl.HeadNormGate(c, hg, qg, _cl.LoadWeight(w.View), dg);
        Close(ReadCpu(dc), ReadCl(dg));
    }

    [Theory]
    [InlineData(1, 77)] [InlineData(3, 77)] [InlineData(2, 130)]
    public void SwiGluMatchesCpu(int T, int F)
    {
        var (gc, gg) = Pair(T, 2 * F, Rand(T * 2 * F, 6f));
        var (dc, dg) = Pair(T, F);
        _cpu.SwiGlu(gc, dc);
        _cl.SwiGlu(gg, dg);
        Close(ReadCpu(dc), ReadCl(dg));
    }

    [Fact]
    public void SoftCapMatchesCpu()
    {
        var (xc, xg) = Pair(5, 33, Rand(5 * 33, 90f));
        _cpu.SoftCap(_cpu.Rows(xc, 1, 3), 30f);
        _cl.SoftCap(_cl.Rows(xg, 1, 3), 30f);
        var got = ReadCl(xg);
        Close(ReadCpu(xc), got);
        Assert.All(got.AsSpan(33, 3 * 33).ToArray(), v => Assert.InRange(v, -30f, 30f));
    }

    [Theory]
    [InlineData(4, 1000, 777)] [InlineData(1, 50, 50)] [InlineData(3, 65, 1)] [InlineData(2, 300, 129)]
    public void ArgmaxMatchesCpu(int rows, int cols, int valid)
    {
        var data = Rand(rows * cols, 5f);
        // plant a maximum beyond the valid range, and an exact tie inside it in row 0
        data[cols - 1] = 100f;
        if (valid > 10) { data[valid - 2] = 50f; data[valid / 2] = 50f; }
        var (xc, xg) = Pair(rows, cols, data);
        var ic = _cpu.AllocIndices(rows);
        var ig = _cl.AllocIndices(rows);
        _cpu.Argmax(xc, valid, ic);
        _cl.Argmax(xg, valid, ig);
        var a = new int[rows];
        var b = new int[rows];
        _cpu.ReadIndices(ic, a);
        _cl.ReadIndices(ig, b);
        Assert.Equal(a, b);
        if (valid > 10 && valid < cols) Assert.Equal(valid / 2, b[0]);
    }

    /// <summary>
    /// The mLSTM cell from a random non-zero state: the step form (T = 1) and the chunkwise form over full chunks and a
    /// partial last chunk (T = 21 with chunk 8: 8 + 8 + 5), on block 1 of 2 (non-zero state offset); block 0 stays untouched.
    /// </summary>
    [Theory]
    [InlineData(1, 8)] [InlineData(2, 8)] [InlineData(8, 8)] [InlineData(21, 8)] [InlineData(70, 64)] [InlineData(5, 3)]
    public void MlstmCellMatchesCpu(int T, int chunk)
    {
        var c = Config(3, 12, 20, chunk);
        var s0 = Rand((int)c.StateFloats, 0.5f);
        for (int b = 0; b < c.Blocks; b++)
            for (int h = 0; h < c.Heads; h++) s0[b * c.StateFloatsPerBlock + c.Heads * c.DQk * (c.DV + 1) + h] = (float)(_rng.NextDouble() * 4 - 2);
        var sc = _cpu.AllocState(c);
        var sg = _cl.AllocState(c);
        _cpu.WriteState(sc, s0);
        _cl.WriteState(sg, s0);
        var (qc, qg) = Pair(T, c.QkvoDim, Rand(T * c.QkvoDim, 1.5f));
        var gates = new float[T * 2 * c.Heads];
        for (int t = 0; t < T; t++)
            for (int h = 0; h < c.Heads; h++)
            {
                gates[t * 2 * c.Heads + h] = (float)(_rng.NextDouble() * 12 - 8);          // input gate: exp(i) over a wide range
                gates[t * 2 * c.Heads + c.Heads + h] = (float)(_rng.NextDouble() * 8 - 1);  // forget gate, mostly open
            }
        var (gc, gg) = Pair(T, 2 * c.Heads, gates);
        var (hc, hg) = Pair(T, c.VDim);
        _cpu.MlstmCell(c, qc, gc, sc, 1, hc);
        _cl.MlstmCell(c, qg, gg, sg, 1, hg);
        Close(ReadCpu(hc), ReadCl(hg));
        var a = new float[c.StateFloats];
        var b2 = new float[c.StateFloats];
        _cpu.ReadState(sc, a);
        _cl.ReadState(sg, b2);
        int per = (int)c.StateFloatsPerBlock;
        Assert.Equal(s0.AsSpan(0, per).ToArray(), b2.AsSpan(0, per).ToArray());
        Close(a.AsSpan(per).ToArray(), b2.AsSpan(per).ToArray());
        // m (the stabilizer) separately: it is small next to C and would hide in the norm
        int mo = per + c.Heads * c.DQk * (c.DV + 1);
        Close(a.AsSpan(mo, c.Heads).ToArray(), b2.AsSpan(mo, c.Heads).ToArray());
    }

    [Fact]
    public void StateWriteReadAndReset()
    {
        var c = Config();
        var s = _cl.AllocState(c);
        var data = Rand((int)c.StateFloats);
        _cl.WriteState(s, data);
        var back = new float[c.StateFloats];
        _cl.ReadState(s, back);
        Assert.Equal(data, back);
        _cl.ResetState(s);
        _cl.ReadState(s, back);
        Assert.All(back, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void AMissingLoaderLibraryIsAOneLineReason()
    {
        Assert.Null(ClNative.Load(["libOpenCL-not-installed.so.1"], out var err));
        Assert.NotNull(err);
        Assert.Contains("libOpenCL", err);
        Assert.DoesNotContain('\n', err);
        Assert.NotNull(ClNative.Load(null, out err));
        Assert.Null(err);
    }

    [Fact]
    public void DevicesAreListedAndABadIndexIsAClearError()
    {
        var lines = OpenClBackend.DescribeDevices();
        Assert.NotEmpty(lines);
        Assert.StartsWith("opencl:0: ", lines[0]);
        Assert.Contains("max allocation", lines[0]);
        Assert.Contains("fp16 ", lines[0]);
        Assert.Contains("OpenCL", _cl.Device);
        var e = Assert.Throws<InvalidOperationException>(() => new OpenClBackend(lines.Count));
        Assert.Contains("does not exist", e.Message);
        using var first = new OpenClBackend(0);
        Assert.Equal("opencl", first.Name);
    }
}
