using XlstmRun.Backends.Cpu.Kernels;
using XlstmRun.Formats;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.Cpu;

/// <summary>Every matrix-vector kernel path against a float64 reference on random data with awkward sizes.</summary>
public unsafe class MatVecKernelTests(ITestOutputHelper output)
{
    public static TheoryData<GgmlType, int, int> FloatShapes()
    {
        var d = new TheoryData<GgmlType, int, int>();
        foreach (var t in new[] { GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0 })
            foreach (var (r, c) in new[] { (1, 32), (3, 96), (4, 32), (5, 64), (9, 96), (13, 288), (7, 10944), (67, 128) })
                d.Add(t, r, c);
        // float types also with rows that are not a multiple of any vector width
        foreach (var t in new[] { GgmlType.F32, GgmlType.F16, GgmlType.BF16 })
            foreach (var (r, c) in new[] { (1, 1), (5, 37), (6, 100), (2, 17) })
                d.Add(t, r, c);
        return d;
    }

    [Theory, MemberData(nameof(FloatShapes))]
    public void FloatKernelsMatchReference(GgmlType type, int rows, int cols)
    {
        using var w = new TestMatrix(type, rows, cols, seed: rows * 1000 + cols);
        var x = Buf.Random(cols, 7);
        var bias = Buf.Random(rows, 8);
        var scratch = Buf.Zeros(cols);
        foreach (var level in Levels.Float)
        {
            var y = Buf.Random(rows, 9);
            var y0 = (float[])y.Clone();
            MatVec.Float(level, w.Ref, Buf.Ptr(x), 0, rows, new Epilogue(Buf.Ptr(y), null, false), Buf.Ptr(scratch));
            for (int r = 0; r < rows; r++)
            {
                var (dot, abs) = w.Exact(r, x);
                Assert.True(Math.Abs(y[r] - dot) <= 1e-5 * abs + 1e-30, $"{level} {type} row {r}: {y[r]} vs {dot}");
            }
            // accumulate + bias, on a sub-range of rows
            var y1 = (float[])y.Clone();
            int r0 = rows / 3, r1 = rows - rows / 4;
            MatVec.Float(level, w.Ref, Buf.Ptr(x), r0, r1, new Epilogue(Buf.Ptr(y), Buf.Ptr(bias), true), Buf.Ptr(scratch));
            for (int r = 0; r < rows; r++)
            {
                if (r < r0 || r >= r1) { Assert.Equal(y1[r], y[r]); continue; }
                var (dot, abs) = w.Exact(r, x);
                double want = y1[r] + dot + bias[r];
                Assert.True(Math.Abs(y[r] - want) <= 1e-5 * (abs + Math.Abs(y1[r]) + Math.Abs(bias[r])), $"{level} {type} acc row {r}: {y[r]} vs {want}");
            }
            _ = y0;
        }
    }

    /// <summary>
    /// F16 with activations pre-scaled by 2^112 (the decode path for F16 weights) against a float64 reference, with
    /// subnormal halves and activations up to the limit; at widths other than the dedicated AVX2 kernel it is bit for bit
    /// the plain kernel (power-of-two scaling changes no rounding).
    /// </summary>
    [Theory]
    [InlineData(1, 1)]
    [InlineData(5, 37)]
    [InlineData(9, 96)]
    [InlineData(6, 100)]
    [InlineData(7, 10944)]
    [InlineData(67, 4096)]
    public void ScaledF16KernelMatchesReference(int rows, int cols)
    {
        using var w = new TestMatrix(GgmlType.F16, rows, cols, seed: rows + 17 * cols, scale: 3f);
        ushort* h = (ushort*)w.Data;
        for (int k = 0; k < Math.Min(cols, 40); k++) h[k] = (ushort)(k % 2 == 0 ? 0x0001 + k : 0x83FF - k); // subnormals in row 0
        var x = Buf.Random(cols, 18, 2f);
        x[0] = MatVec.ScaledF16Limit;
        if (cols > 1) x[1] = -1e-30f;
        var xs = Buf.Zeros(cols);
        for (int k = 0; k < cols; k++) xs[k] = x[k] * HalfBits.Scale;
        var bias = Buf.Random(rows, 19);
        var scratch = Buf.Zeros(cols);
        foreach (var level in Levels.Float)
        {
            var y1 = Buf.Random(rows, 20); var y0 = (float[])y1.Clone(); var y2 = (float[])y1.Clone();
            MatVec.F16Scaled(level, w.Ref, Buf.Ptr(xs), 0, rows, new Epilogue(Buf.Ptr(y1), Buf.Ptr(bias), true));
            for (int r = 0; r < rows; r++)
            {
                double s = y0[r] + bias[r], a = Math.Abs(y0[r]) + Math.Abs(bias[r]);
                for (int k = 0; k < cols; k++) { double p = (double)HalfBits.ToFloat(h[(long)r * cols + k]) * x[k]; s += p; a += Math.Abs(p); }
                Assert.True(Math.Abs(y1[r] - s) <= 1e-5 * a, $"{level} row {r}: {y1[r]} vs {s}");
            }
            if (level != SimdLevel.V256)
            {
                MatVec.Float(level, w.Ref, Buf.Ptr(x), 0, rows, new Epilogue(Buf.Ptr(y2), Buf.Ptr(bias), true), Buf.Ptr(scratch));
                Assert.Equal(y2, y1);
            }
        }
    }

    public static TheoryData<GgmlType, int, int> QuantShapes()
    {
        var d = new TheoryData<GgmlType, int, int>();
        foreach (var t in new[] { GgmlType.Q8_0, GgmlType.Q4_0 })
            foreach (var (r, c) in new[] { (1, 32), (3, 96), (4, 32), (5, 64), (9, 96), (13, 288), (7, 10944), (67, 4096) })
                d.Add(t, r, c);
        return d;
    }

    /// <summary>The integer kernels compute exactly Σ_b (Σ q_w·q_x)·d_w·d_x; only the float summation over blocks may differ.</summary>
    [Theory, MemberData(nameof(QuantShapes))]
    public void Int8KernelsMatchExactIntegerDot(GgmlType type, int rows, int cols)
    {
        using var w = new TestMatrix(type, rows, cols, seed: rows * 77 + cols);
        var x = Buf.Random(cols, 3, 2f);
        using var qa = new QuantAct();
        qa.Ensure(1, cols);
        qa.QuantizeRow(0, Buf.Ptr(x));
        var dq = new float[cols];
        for (int k = 0; k < cols; k++) dq[k] = qa.Q[k] * qa.D[k / 32];   // the quantized activations, exactly
        foreach (var path in Levels.Int8)
        {
            var y = Buf.Zeros(rows);
            MatVec.Int8(path, w.Ref, qa, 0, 0, rows, new Epilogue(Buf.Ptr(y), null, false));
            for (int r = 0; r < rows; r++)
            {
                var (dot, abs) = w.Exact(r, dq);
                Assert.True(Math.Abs(y[r] - dot) <= 2e-6 * abs + 1e-30, $"{path} {type} row {r}: {y[r]} vs {dot}");
            }
        }
    }

    [Theory]
    [InlineData(32)]
    [InlineData(96)]
    [InlineData(10944)]
    public void ActivationQuantizerVectorAndScalarAgreeExactly(int cols)
    {
        var x = Buf.Random(cols, 11, 5f);
        x[3] = 0; x[40 % cols] = -x[40 % cols]; // some structure
        for (int k = 0; k < Math.Min(32, cols); k++) x[k] = k % 3 == 0 ? 0.5f : -0.5f; // ties at ±63.5 → round to even
        int nb = cols / 32;
        var q1 = new sbyte[cols]; var q2 = new sbyte[cols];
        var d1 = new float[nb]; var d2 = new float[nb];
        var s1 = new int[nb]; var s2 = new int[nb];
        var i1 = new int[nb * 8]; var i2 = new int[nb * 8];
        fixed (sbyte* pq1 = q1, pq2 = q2) fixed (float* pd1 = d1, pd2 = d2) fixed (int* ps1 = s1, ps2 = s2, pi1 = i1, pi2 = i2)
        {
            QuantAct.QuantizeRow(Buf.Ptr(x), cols, pq1, pd1, ps1, pi1, vector: true);
            QuantAct.QuantizeRow(Buf.Ptr(x), cols, pq2, pd2, ps2, pi2, vector: false);
        }
        Assert.Equal(q2, q1);
        Assert.Equal(d2, d1);
        Assert.Equal(s2, s1);
        Assert.Equal(i2, i1);
        for (int b = 0; b < nb; b++)
        {
            Assert.Equal(q1.Skip(32 * b).Take(32).Sum(v => (int)v), s1[b]);
            Assert.Equal(-8 * s1[b], i1[8 * b]);
            for (int k = 0; k < 32; k++)
                Assert.True(Math.Abs(q1[32 * b + k] * d1[b] - x[32 * b + k]) <= 0.5001 * d1[b], "quantization error above half a step");
        }
    }

    /// <summary>
    /// The extra error of 8-bit activations against the float-activation path (same quantized weights), relative L2 over
    /// all outputs, on uniform and on heavy-tailed activations. Reported, and bounded.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q8_0, false, 0.01)]
    [InlineData(GgmlType.Q4_0, false, 0.01)]
    [InlineData(GgmlType.Q8_0, true, 0.02)]
    [InlineData(GgmlType.Q4_0, true, 0.02)]
    public void Int8ActivationErrorIsSmall(GgmlType type, bool heavyTailed, double bound)
    {
        const int rows = 256, cols = 4096;
        using var w = new TestMatrix(type, rows, cols, seed: 5);
        var x = Buf.Random(cols, 6);
        if (heavyTailed)
        {
            var rng = new Random(2);
            for (int k = 0; k < cols; k++)
            {
                // Gaussian with a few large outliers, as in real residual-stream activations
                double g = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
                x[k] = (float)(rng.Next(100) == 0 ? 20 * g : g);
            }
        }
        var yf = Buf.Zeros(rows);
        var scratch = Buf.Zeros(cols);
        MatVec.Float(SimdLevel.Scalar, w.Ref, Buf.Ptr(x), 0, rows, new Epilogue(Buf.Ptr(yf), null, false), Buf.Ptr(scratch));
        using var qa = new QuantAct();
        qa.Ensure(1, cols);
        qa.QuantizeRow(0, Buf.Ptr(x));
        var yq = Buf.Zeros(rows);
        MatVec.Int8(CpuCaps.BestInt8, w.Ref, qa, 0, 0, rows, new Epilogue(Buf.Ptr(yq), null, false));
        double num = 0, den = 0;
        for (int r = 0; r < rows; r++) { num += (double)(yq[r] - yf[r]) * (yq[r] - yf[r]); den += (double)yf[r] * yf[r]; }
        double rel = Math.Sqrt(num / den);
        output.WriteLine($"{type} {(heavyTailed ? "heavy-tailed" : "uniform")} activations: 8-bit vs float activations, relative L2 error {rel:E2}");
        Assert.InRange(rel, 1e-6, bound); // nonzero (the path really quantizes) and small
    }
}
