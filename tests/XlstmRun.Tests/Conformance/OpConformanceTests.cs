using XlstmRun.Backends.Cpu;
using XlstmRun.Conformance;
using XlstmRun.Conformance.Reference;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.Conformance;

/// <summary>One backend beside the CPU engine (float path), with random inputs written to both.</summary>
public sealed class OpBench : IDisposable
{
    public readonly CpuBackend Cpu = new(Shared.Threads, int8Activations: false);
    public readonly IBackend Be;
    public readonly ConformanceDevice Device;
    private readonly EncodedWeights _weights = new();
    private readonly Random _rng;

    public OpBench(string device, int seed)
    {
        Device = Shared.Device(device);
        Be = Device.Create();
        _rng = new Random(seed);
    }

    /// <summary>Uniform values in shift ± scale.</summary>
    public float[] Random(int n, float scale = 1f, float shift = 0f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(_rng.NextDouble() * 2 - 1) * scale + shift;
        return a;
    }

    /// <summary>A [rows, cols] weight of <paramref name="type"/> from random values (a vector when <paramref name="vector"/>), loaded on both.</summary>
    public (IWeight Cpu, IWeight Be) Weight(GgmlType type, int rows, int cols, float scale = 0.5f, bool vector = false, float shift = 0f)
    {
        var view = _weights.Encode(type, rows, cols, Random(rows * cols, scale, shift), vector);
        return (Cpu.LoadWeight(view), Be.LoadWeight(view));
    }

    public (ITensor Cpu, ITensor Be) Tensor(int rows, int cols, float[]? values = null)
    {
        values ??= Random(rows * cols);
        var c = (CpuTensor)Cpu.Alloc(rows, cols);
        values.CopyTo(c.Span);
        var b = Be.Alloc(rows, cols);
        Device.Write(Be, b, values);
        return (c, b);
    }

    public static float[] Read(IBackend be, ITensor t)
    {
        var a = new float[t.Rows * t.Cols];
        be.Read(t, a);
        return a;
    }

    public float[] ReadCpu(ITensor t) => Read(Cpu, t);
    public float[] ReadBe(ITensor t) => Read(Be, t);

    public void Dispose()
    {
        Be.Dispose();
        Cpu.Dispose();
        _weights.Dispose();
    }
}

/// <summary>
/// Every op of <see cref="IBackend"/> on every device of the machine (except the CPU engine itself, the comparator) against
/// the CPU engine's float path, on random inputs and awkward sizes: odd columns, one row, 65 rows, sizes that are not
/// multiples of 32 or 64, row views with offsets, a non-zero incoming state (in the spirit of ggml's test-backend-ops).
/// Float ops agree within <see cref="Bounds.OpFloat"/> (summation order and the device's exp/tanh/log), the cell within
/// <see cref="Bounds.OpCell"/>; gathers and argmax agree exactly. Backend-specific tests (weight splitting, staging copies,
/// fusions, matvec shapes, the emulated cooperative-matrix GEMM) stay with their backend.
/// </summary>
[Collection("vulkan")]
public class OpConformanceTests
{
    private readonly ITestOutputHelper _out;
    public OpConformanceTests(ITestOutputHelper output) { _out = output; }

    public static IEnumerable<string> OpDevices() => Shared.Devices.Where(d => d.Backend != "cpu").Select(d => d.Id);

    private static TheoryData<string, T> ByDevice<T>(IEnumerable<T> cases)
    {
        var d = new TheoryData<string, T>();
        foreach (var dev in OpDevices())
            foreach (var c in cases) d.Add(dev, c);
        return d;
    }

    private void Close(float[] cpu, float[] be, double tol, string what)
    {
        Assert.Equal(cpu.Length, be.Length);
        Assert.True(Metrics.AllFinite(be), $"{what}: non-finite values");
        double e = Metrics.RelErr(be, cpu);
        _out.WriteLine($"{what}: relative error vs CPU {e:E2}");
        Assert.InRange(e, 0, tol);
    }

    private static bool Quant(GgmlType t) => GgmlTypes.BlockSize(t) > 1;

    // ---- embedding ------------------------------------------------------------------------------------------------------

    public static TheoryData<string, GgmlType> EmbedCases() => ByDevice(Shared.AllTypes);

    [Theory, MemberData(nameof(EmbedCases))]
    public void EmbedDecodesRowsExactly(string device, GgmlType type)
    {
        using var b = new OpBench(device, 11 + (int)type);
        int rows = 67, cols = Quant(type) ? 96 : 45;
        var (wc, wb) = b.Weight(type, rows, cols, 1f);
        int[] ids = [0, 66, 5, 17, 5, 64, 1];
        var tc = b.Cpu.AllocTokens(8);
        var tb = b.Be.AllocTokens(8);
        b.Cpu.WriteTokens(tc, ids);
        b.Be.WriteTokens(tb, ids);
        var (dc, db) = b.Tensor(ids.Length, cols);
        b.Cpu.Embed(wc, tc, dc);
        b.Be.Embed(wb, tb, db);
        Assert.Equal(b.ReadCpu(dc), b.ReadBe(db));
    }

    // ---- matmul ---------------------------------------------------------------------------------------------------------

    public static TheoryData<string, string> MatMulCases()
    {
        var cases = new List<string>();
        foreach (var t in Shared.AllTypes)
        {
            bool q = Quant(t);
            foreach (var (T, rows, cols) in new[] { (1, 37, q ? 96 : 45), (1, 1, q ? 32 : 7), (2, 65, q ? 160 : 333), (65, 33, q ? 96 : 63), (65, 130, q ? 64 : 129) })
                cases.Add($"{GgmlTypes.Name(t)} {T} {rows} {cols}");
        }
        return ByDevice(cases);
    }

    /// <summary>"type tokens rows cols": plain; then with bias, accumulating; then on row views in the middle of bigger tensors.</summary>
    [Theory, MemberData(nameof(MatMulCases))]
    public void MatMulMatchesCpu(string device, string shape)
    {
        var p = shape.Split(' ');
        var type = GgmlTypes.Parse(p[0]);
        int T = int.Parse(p[1]), rows = int.Parse(p[2]), cols = int.Parse(p[3]);
        using var b = new OpBench(device, T * 7 + rows * 3 + cols);
        double tol = Bounds.OpFloat;
        // a backend with 16- or 8-bit activations inside matrix products gets its column's bound
        var precision = BackendCatalog.PrecisionOf(b.Be, type);
        if (precision != ActivationPrecision.Float32) tol = Bounds.SameFile(type, precision).Rel;
        var (wc, wb) = b.Weight(type, rows, cols);
        var (bc, bb) = b.Weight(GgmlType.F32, 1, rows, 1f, vector: true);
        var (xc, xb) = b.Tensor(T, cols);
        var (dc, db) = b.Tensor(T, rows);
        b.Cpu.MatMul(wc, xc, dc);
        b.Be.MatMul(wb, xb, db);
        Close(b.ReadCpu(dc), b.ReadBe(db), tol, "plain");
        b.Cpu.MatMul(wc, xc, dc, bc, accumulate: true);
        b.Be.MatMul(wb, xb, db, bb, accumulate: true);
        Close(b.ReadCpu(dc), b.ReadBe(db), tol, "bias + accumulate");
        // views: rows [2, 2+n) of x into rows [3, 3+n) of a bigger destination; the other rows stay as they were
        int n = Math.Max(1, T / 2), big = n + 5;
        var (xc2, xb2) = b.Tensor(big, cols);
        var init = b.Random(big * rows);
        var (dc2, db2) = b.Tensor(big, rows, init);
        b.Cpu.MatMul(wc, b.Cpu.Rows(xc2, 2, n), b.Cpu.Rows(dc2, 3, n), bc);
        b.Be.MatMul(wb, b.Be.Rows(xb2, 2, n), b.Be.Rows(db2, 3, n), bb);
        var got = b.ReadBe(db2);
        Close(b.ReadCpu(dc2), got, tol, "row views");
        Assert.Equal(init.AsSpan(0, 3 * rows).ToArray(), got.AsSpan(0, 3 * rows).ToArray());
        Assert.Equal(init.AsSpan((3 + n) * rows).ToArray(), got.AsSpan((3 + n) * rows).ToArray());
    }

    // ---- row ops ------------------------------------------------------------------------------------------------------

    public static TheoryData<string, string> RmsNormCases() => ByDevice(["1 7", "1 64", "65 45", "3 333", "2 4096"]);

    [Theory, MemberData(nameof(RmsNormCases))]
    public void RmsNormMatchesCpu(string device, string shape)
    {
        var p = shape.Split(' ');
        int T = int.Parse(p[0]), cols = int.Parse(p[1]);
        using var b = new OpBench(device, T + cols);
        var (wc, wb) = b.Weight(GgmlType.F32, 1, cols, 0.2f, vector: true, shift: 1f);
        var (xc, xb) = b.Tensor(T, cols, b.Random(T * cols, 3f, 0.5f));
        var (dc, db) = b.Tensor(T, cols);
        b.Cpu.RmsNorm(xc, wc, dc, 1e-6f);
        b.Be.RmsNorm(xb, wb, db, 1e-6f);
        Close(b.ReadCpu(dc), b.ReadBe(db), Bounds.OpFloat, "rmsnorm");
    }

    private static ModelConfig Cfg(int heads, int dqk, int dv, int chunk = 64) => new()
    {
        Hidden = heads * dv, Blocks = 2, Heads = heads, QkDim = heads * dqk, VDim = heads * dv, FfnDim = 64, Vocab = 32, ChunkSize = chunk,
    };

    public static TheoryData<string, string> HeadNormCases() => ByDevice(["1 1 7", "1 3 40", "65 3 40", "2 2 512", "5 4 33"]);

    /// <summary>"tokens heads dv".</summary>
    [Theory, MemberData(nameof(HeadNormCases))]
    public void HeadNormGateMatchesCpu(string device, string shape)
    {
        var p = shape.Split(' ');
        int T = int.Parse(p[0]), heads = int.Parse(p[1]), dv = int.Parse(p[2]);
        var c = Cfg(heads, 12, dv);
        using var b = new OpBench(device, T * 5 + dv);
        var (wc, wb) = b.Weight(GgmlType.F32, 1, c.VDim, 0.2f, vector: true, shift: 1f);
        var (hc, hb) = b.Tensor(T, c.VDim, b.Random(T * c.VDim, 2f, 0.3f));
        var (qc, qb) = b.Tensor(T, c.QkvoDim, b.Random(T * c.QkvoDim, 4f));
        var (dc, db) = b.Tensor(T, c.VDim);
        b.Cpu.HeadNormGate(c, hc, qc, wc, dc);
        b.Be.HeadNormGate(c, hb, qb, wb, db);
        Close(b.ReadCpu(dc), b.ReadBe(db), Bounds.OpFloat, "headnorm");
    }

    public static TheoryData<string, string> ElementwiseCases() => ByDevice(["1 37", "65 77", "2 300"]);

    /// <summary>"tokens cols": SwiGLU over [T, 2F] → [T, F], then the soft-cap in place on a row view (values beyond the cap).</summary>
    [Theory, MemberData(nameof(ElementwiseCases))]
    public void SwiGluAndSoftCapMatchCpu(string device, string shape)
    {
        var p = shape.Split(' ');
        int T = int.Parse(p[0]), F = int.Parse(p[1]);
        using var b = new OpBench(device, T + F);
        var (gc, gb) = b.Tensor(T, 2 * F, b.Random(T * 2 * F, 6f));
        var (dc, db) = b.Tensor(T, F);
        b.Cpu.SwiGlu(gc, dc);
        b.Be.SwiGlu(gb, db);
        Close(b.ReadCpu(dc), b.ReadBe(db), Bounds.OpFloat, "swiglu");
        int rows = T + 2;
        var (xc, xb) = b.Tensor(rows, F, b.Random(rows * F, 90f));
        b.Cpu.SoftCap(b.Cpu.Rows(xc, 1, T), 30f);
        b.Be.SoftCap(b.Be.Rows(xb, 1, T), 30f);
        var got = b.ReadBe(xb);
        Close(b.ReadCpu(xc), got, Bounds.OpFloat, "softcap");
        Assert.All(got.AsSpan(F, T * F).ToArray(), v => Assert.InRange(v, -30f, 30f));
    }

    public static TheoryData<string, string> ArgmaxCases() => ByDevice(["4 1000 777", "1 50 50", "65 65 1", "2 300 129"]);

    /// <summary>"rows cols validCols": a maximum planted beyond the valid columns, an exact tie inside them (first index wins).</summary>
    [Theory, MemberData(nameof(ArgmaxCases))]
    public void ArgmaxMatchesCpuIncludingTiesAndValidCols(string device, string shape)
    {
        var p = shape.Split(' ');
        int rows = int.Parse(p[0]), cols = int.Parse(p[1]), valid = int.Parse(p[2]);
        using var b = new OpBench(device, rows + cols);
        var data = b.Random(rows * cols, 5f);
        data[cols - 1] = 100f;
        if (valid > 10) { data[valid - 2] = 50f; data[valid / 2] = 50f; }
        for (int j = 0; j < cols && rows > 3; j++) data[3 * cols + j] = -1f; // an all-equal row
        var (xc, xb) = b.Tensor(rows, cols, data);
        var ic = b.Cpu.AllocIndices(rows);
        var ib = b.Be.AllocIndices(rows);
        b.Cpu.Argmax(xc, valid, ic);
        b.Be.Argmax(xb, valid, ib);
        var a = new int[rows];
        var g = new int[rows];
        b.Cpu.ReadIndices(ic, a);
        b.Be.ReadIndices(ib, g);
        Assert.Equal(a, g);
        if (valid > 10 && valid < cols) Assert.Equal(valid / 2, g[0]);
        if (rows > 3) Assert.Equal(0, g[3]);
    }

    // ---- mLSTM cell -------------------------------------------------------------------------------------------------------

    public static TheoryData<string, string> CellCases() => ByDevice([
        "1 1 5 7 64",     // step, odd head sizes
        "1 3 20 40 64",
        "1 2 256 512 64", // the 7B head
        "2 2 16 33 64",   // a chunk of two
        "65 3 20 40 64",  // one full chunk + 1
        "130 2 16 96 64", // two chunks + 2
        "63 1 12 20 8",   // chunks of 8, remainder 7
        "21 4 9 17 8",
    ]);

    /// <summary>
    /// "tokens heads dqk dv chunk": the step form (one token) or the chunkwise form (chunks and a partial last one) from a
    /// non-zero state on block 1 of 2; twice, so the state the first call wrote feeds the second; block 0 stays untouched.
    /// Gates over a wide range: exponential input gates from e⁻⁸ to e⁴, forget gates mostly open.
    /// </summary>
    [Theory, MemberData(nameof(CellCases))]
    public void MlstmCellMatchesCpu(string device, string shape)
    {
        var p = shape.Split(' ').Select(int.Parse).ToArray();
        int T = p[0], heads = p[1], dqk = p[2], dv = p[3], chunk = p[4];
        var c = Cfg(heads, dqk, dv, chunk);
        using var b = new OpBench(device, T * 7 + dqk + dv);
        var s0 = b.Random((int)c.StateFloats, 0.5f);
        for (int blk = 0; blk < c.Blocks; blk++)
            for (int h = 0; h < heads; h++) s0[blk * c.StateFloatsPerBlock + heads * dqk * (dv + 1) + h] = (float)(2 + h * 0.5);
        var sc = b.Cpu.AllocState(c);
        var sb = b.Be.AllocState(c);
        b.Cpu.WriteState(sc, s0);
        b.Be.WriteState(sb, s0);
        int per = (int)c.StateFloatsPerBlock;
        for (int rep = 0; rep < 2; rep++)
        {
            var (qc, qb) = b.Tensor(T, c.QkvoDim, b.Random(T * c.QkvoDim, 1.5f));
            var gates = new float[T * 2 * heads];
            for (int t = 0; t < T; t++)
                for (int h = 0; h < heads; h++)
                {
                    gates[t * 2 * heads + h] = b.Random(1, 6f, -2f)[0];
                    gates[t * 2 * heads + heads + h] = b.Random(1, 4.5f, 3.5f)[0];
                }
            var (gc, gb) = b.Tensor(T, 2 * heads, gates);
            var (hc, hb) = b.Tensor(T, c.VDim);
            b.Cpu.MlstmCell(c, qc, gc, sc, 1, hc);
            b.Be.MlstmCell(c, qb, gb, sb, 1, hb);
            Close(b.ReadCpu(hc), b.ReadBe(hb), Bounds.OpCell, $"h, call {rep + 1}");
            var a = new float[c.StateFloats];
            var g = new float[c.StateFloats];
            b.Cpu.ReadState(sc, a);
            b.Be.ReadState(sb, g);
            Assert.Equal(s0.AsSpan(0, per).ToArray(), g.AsSpan(0, per).ToArray());
            Close(a.AsSpan(per).ToArray(), g.AsSpan(per).ToArray(), Bounds.OpCell, $"state, call {rep + 1}");
            int mo = per + heads * dqk * (dv + 1);
            Close(a.AsSpan(mo, heads).ToArray(), g.AsSpan(mo, heads).ToArray(), Bounds.OpCell, $"m, call {rep + 1}");
        }
    }

    public static TheoryData<string> ClosingGateDevices()
    {
        var d = new TheoryData<string>();
        d.Add("cpu");
        foreach (var dev in OpDevices()) d.Add(dev);
        return d;
    }

    /// <summary>
    /// Closing forget gates over whole chunks (log σ(f) from −1.5 to −6 per token; input gates around them): the cumulative
    /// log-forget b reaches about −250 within a chunk of 64 while the decay weights exp(b_i − b_j) of the neighbouring tokens
    /// still count. A float running sum of b puts |b|·2⁻²⁴ into every exponent; the kernels keep b in double (CPU) or as a
    /// compensated pair (OpenCL, Vulkan). Against the float64 cell (<see cref="ReferenceEngine{T}.RunCell"/>), from a
    /// non-zero state, three chunks and a remainder: h and the state within 2e-6 on every device, the CPU engine included.
    /// Measured (2-core dev box, 2026-11-30): h 1.6e-7 on the CPU and PoCL, 8.5e-7 on lavapipe; 2.6e-6 on lavapipe with the
    /// compensation taken out of mlstm_chunk_prep.comp (this test then fails).
    /// </summary>
    [Theory, MemberData(nameof(ClosingGateDevices))]
    public void ChunkCellKeepsLogGateSumsExactWhenForgetGatesClose(string device)
    {
        const int T = 200, heads = 2, dqk = 16, dv = 24;
        var c = Cfg(heads, dqk, dv, 64);
        using var b = new OpBench(device, 4242);
        var s0 = b.Random((int)c.StateFloats, 0.5f);
        int per = (int)c.StateFloatsPerBlock;
        for (int h = 0; h < heads; h++) s0[per + heads * dqk * (dv + 1) + h] = 1.5f;
        var qkvo = b.Random(T * c.QkvoDim, 1.5f);
        var gates = new float[T * 2 * heads];
        for (int t = 0; t < T; t++)
            for (int h = 0; h < heads; h++)
            {
                gates[t * 2 * heads + h] = b.Random(1, 3f, 1f)[0];
                gates[t * 2 * heads + heads + h] = b.Random(1, 2.25f, -3.75f)[0];
            }
        var sb = b.Be.AllocState(c);
        b.Be.WriteState(sb, s0);
        var (_, qb) = b.Tensor(T, c.QkvoDim, qkvo);
        var (_, gb) = b.Tensor(T, 2 * heads, gates);
        var (_, hb) = b.Tensor(T, c.VDim);
        b.Be.MlstmCell(c, qb, gb, sb, 1, hb);
        var got = new float[c.StateFloats];
        b.Be.ReadState(sb, got);

        var state = s0.AsSpan(per, per).ToArray().Select(x => (double)x).ToArray();
        var h64 = new double[T * c.VDim];
        ReferenceEngine<double>.RunCell(c, state, qkvo.Select(x => (double)x).ToArray(), gates.Select(x => (double)x).ToArray(), h64, T);
        double eh = Metrics.RelErr(b.ReadBe(hb), h64), es = Metrics.RelErr(got.AsSpan(per, per), state);
        _out.WriteLine($"{device}: h {eh:E2}, state {es:E2} vs float64");
        Assert.InRange(eh, 0, 2e-6);
        Assert.InRange(es, 0, 2e-6);
    }

    public static TheoryData<string> StateDevices()
    {
        var d = new TheoryData<string>();
        foreach (var dev in OpDevices()) d.Add(dev);
        return d;
    }

    [Theory, MemberData(nameof(StateDevices))]
    public void StateWriteReadAndReset(string device)
    {
        var c = Cfg(3, 12, 20);
        using var b = new OpBench(device, 3);
        var s = b.Be.AllocState(c);
        var data = b.Random((int)c.StateFloats);
        b.Be.WriteState(s, data);
        var back = new float[c.StateFloats];
        b.Be.ReadState(s, back);
        Assert.Equal(data, back);
        b.Be.ResetState(s);
        b.Be.ReadState(s, back);
        Assert.All(back, v => Assert.Equal(0f, v));
    }
}
