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
/// OpenCL-specific op tests: weights split into several device buffers (embedding gathers and both matmul kernel families
/// across parts), the loader and device listing. Every op on awkward sizes, for every backend, is in
/// Conformance/OpConformanceTests.cs (the work-group kernels as the device variant opencl:N:wg). Float ops agree within
/// 2e-6 relative error (measured ≤ 4.2e-7 on PoCL 3.1); decoding ops agree exactly.
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

    private static float[] ReadCpu(ITensor t) => ((CpuTensor)t).Span.ToArray();

    private void Close(float[] cpu, float[] cl, double tol = Tol)
    {
        Assert.Equal(cpu.Length, cl.Length);
        Assert.All(cl, v => Assert.True(float.IsFinite(v)));
        double e = Reference.RelErr(cl, cpu);
        _out.WriteLine($"relative error vs CPU: {e:E2}");
        Assert.InRange(e, 0, tol);
    }

    private static int ColsFor(GgmlType t, int floatCols, int blockCols) => GgmlTypes.BlockSize(t) == 1 ? floatCols : blockCols;

    [Theory]
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

    /// <summary>Weights split into device buffers of a few rows (both kernel families); unsplit matmuls are in the conformance op suite.</summary>
    [Theory]
    [InlineData(GgmlType.F32, 1, false, true, true)] [InlineData(GgmlType.F16, 33, true, false, true)]
    [InlineData(GgmlType.Q8_0, 19, false, true, true)] [InlineData(GgmlType.Q4_0, 1, true, true, true)]
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
        var lines = new OpenClBackendProvider().Devices(out _).Select(d => d.Description).ToList();
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
