using System.Runtime.InteropServices;
using XlstmRun.Backends.Cpu.Kernels;
using XlstmRun.Formats;
using Xunit;

namespace XlstmRun.Tests.Cpu;

/// <summary>
/// The 8-row packed Q8_0/Q4_0 layout and its AVX2 kernels: packing keeps every value, and the decode and prefill
/// kernels compute exactly the integer block dot products of the quantized activations (against a float64 reference
/// over the decoded weights), for rows that are not a multiple of eight, tokens that are not a multiple of the tile,
/// partial group ranges, bias and accumulation, and activations large enough to need the exact scalar path.
/// </summary>
public unsafe class PackedKernelTests
{
    private sealed class Packed : IDisposable
    {
        public Packed(TestMatrix m)
        {
            Bytes = PackedRef.SizeOf(m.Type, m.Rows, m.Cols);
            Mem = (byte*)NativeMemory.AlignedAlloc((nuint)Bytes + 64, 64);
            new Span<byte>(Mem, (int)Bytes + 64).Fill(0xA5); // packing must write every byte it owns
            Ref = new PackedRef(Mem, m.Type, m.Rows, m.Cols);
            int half = Ref.Groups / 2;
            Packing.Pack(m.Ref, Ref, 0, half);                // in two ranges, as the parallel packer does
            Packing.Pack(m.Ref, Ref, half, Ref.Groups);
        }
        public long Bytes { get; }
        public byte* Mem { get; }
        public PackedRef Ref { get; }
        public void Dispose() => NativeMemory.AlignedFree(Mem);
    }

    public static TheoryData<GgmlType, int, int> Shapes()
    {
        var d = new TheoryData<GgmlType, int, int>();
        foreach (var t in new[] { GgmlType.Q8_0, GgmlType.Q4_0 })
            foreach (var (r, c) in new[] { (1, 32), (7, 64), (8, 32), (9, 96), (20, 288), (13, 10944), (67, 4096) })
                d.Add(t, r, c);
        return d;
    }

    [Theory, MemberData(nameof(Shapes))]
    public void PackingKeepsEveryValueAndTheSize(GgmlType type, int rows, int cols)
    {
        using var m = new TestMatrix(type, rows, cols, seed: rows + 3 * cols);
        using var p = new Packed(m);
        Assert.Equal(m.Ref.RowBytes * ((rows + 7) / 8 * 8), p.Bytes);   // same bytes as the GGUF rows, padded to 8 rows
        var row = new float[cols];
        fixed (float* pr = row)
            for (int r = 0; r < rows; r++)
            {
                Packing.DequantRow(p.Ref, r, 0, cols, pr);
                Assert.Equal(m.Values.AsSpan(r * cols, cols).ToArray(), row);
            }
        // padding rows decode to zeros
        if (rows % 8 != 0)
            fixed (float* pr = row)
            {
                Packing.DequantRow(p.Ref, rows, 0, cols, pr);
                Assert.All(row, v => Assert.Equal(0f, v));
            }
    }

    /// <summary>The quantized activations of row t, exactly (q · d).</summary>
    private static float[] Dequantized(QuantAct qa, int t, int cols)
    {
        var dq = new float[cols];
        for (int k = 0; k < cols; k++) dq[k] = qa.RowQ(t)[k] * qa.RowD(t)[k / 32];
        return dq;
    }

    [Theory, MemberData(nameof(Shapes))]
    public void MatVecMatchesExactIntegerDot(GgmlType type, int rows, int cols)
    {
        using var m = new TestMatrix(type, rows, cols, seed: rows * 31 + cols);
        using var p = new Packed(m);
        var x = Buf.Random(cols, 12, 3f);
        using var qa = new QuantAct();
        qa.Ensure(1, cols);
        qa.QuantizeRow(0, Buf.Ptr(x));
        var dq = Dequantized(qa, 0, cols);
        var bias = Buf.Random(rows, 13);
        var xr = new MatVec.QRow(qa.RowQ(0), qa.RowD(0), qa.RowDS(0), qa.RowSum(0), qa.RowInit4(0), cols / 32);
        foreach (bool scalar in new[] { false, true })
        {
            var y = Buf.Random(rows, 14);
            var y0 = (float[])y.Clone();
            var epi = new Epilogue(Buf.Ptr(y), Buf.Ptr(bias), true);
            // groups in two calls (as the work items split them)
            int cut = p.Ref.Groups / 3;
            if (scalar) { PackedMatVec.Scalar(p.Ref, xr, 0, cut, epi); PackedMatVec.Scalar(p.Ref, xr, cut, p.Ref.Groups, epi); }
            else
            {
                PackedMatVec.Run(p.Ref, qa, 0, 0, cut, epi);
                PackedMatVec.Run(p.Ref, qa, 0, cut, p.Ref.Groups, epi);
            }
            for (int r = 0; r < rows; r++)
            {
                var (dot, abs) = m.Exact(r, dq);
                double want = y0[r] + dot + bias[r];
                Assert.True(Math.Abs(y[r] - want) <= 2e-6 * (abs + Math.Abs(y0[r]) + Math.Abs(bias[r])),
                    $"{(scalar ? "scalar" : "vector")} {type} row {r}: {y[r]} vs {want}");
            }
        }
    }

    [Theory]
    [InlineData(GgmlType.Q4_0, 9, 96, 1)]
    [InlineData(GgmlType.Q4_0, 8, 64, 4)]
    [InlineData(GgmlType.Q4_0, 20, 288, 9)]
    [InlineData(GgmlType.Q4_0, 37, 10944, 6)]
    [InlineData(GgmlType.Q8_0, 1, 32, 3)]
    [InlineData(GgmlType.Q8_0, 13, 96, 5)]
    [InlineData(GgmlType.Q8_0, 37, 4096, 8)]
    public void GemmMatchesExactIntegerDot(GgmlType type, int rows, int cols, int T)
    {
        using var m = new TestMatrix(type, rows, cols, seed: 5 * rows + cols);
        using var p = new Packed(m);
        var X = Buf.Random(T * cols, 21, 3f);
        using var qa = new QuantAct();
        qa.Ensure(T, cols);
        for (int t = 0; t < T; t++) qa.QuantizeRow(t, Buf.Ptr(X) + t * cols);
        var bias = Buf.Random(rows, 22);
        foreach (bool accumulate in new[] { false, true })
        {
            var D = Buf.Random(T * rows, 23);
            var D0 = (float[])D.Clone();
            var epi = new Epilogue2D(Buf.Ptr(D), rows, accumulate ? Buf.Ptr(bias) : null, accumulate);
            for (int g = 0; g < p.Ref.Groups; g += 2) PackedGemm.Run(p.Ref, qa, T, g, Math.Min(p.Ref.Groups, g + 2), epi);
            for (int t = 0; t < T; t++)
            {
                var dq = Dequantized(qa, t, cols);
                for (int r = 0; r < rows; r++)
                {
                    var (dot, abs) = m.Exact(r, dq);
                    double want = accumulate ? D0[t * rows + r] + dot + bias[r] : dot;
                    double scale = abs + (accumulate ? Math.Abs(D0[t * rows + r]) + Math.Abs(bias[r]) : 0);
                    Assert.True(Math.Abs(D[t * rows + r] - want) <= 2e-6 * scale + 1e-30, $"{type} acc={accumulate} t{t} r{r}: {D[t * rows + r]} vs {want}");
                }
            }
        }
    }

    /// <summary>Activations above ~8·10^6 overflow the scaled-half trick: the kernels must take the exact scalar path.</summary>
    [Theory]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q8_0)]
    public void HugeActivationsStayExact(GgmlType type)
    {
        const int rows = 11, cols = 128, T = 5;
        using var m = new TestMatrix(type, rows, cols, seed: 99);
        using var p = new Packed(m);
        var X = Buf.Random(T * cols, 31, 1f);
        X[2 * cols + 40] = 3e9f;                                   // token 2 has one huge activation
        using var qa = new QuantAct();
        qa.Ensure(T, cols);
        for (int t = 0; t < T; t++) qa.QuantizeRow(t, Buf.Ptr(X) + t * cols);
        Assert.NotEqual(0, qa.Huge[2]);
        var D = Buf.Zeros(T * rows);
        PackedGemm.Run(p.Ref, qa, T, 0, p.Ref.Groups, new Epilogue2D(Buf.Ptr(D), rows, null, false));
        var y = Buf.Zeros(rows);
        PackedMatVec.Run(p.Ref, qa, 2, 0, p.Ref.Groups, new Epilogue(Buf.Ptr(y), null, false));
        for (int t = 0; t < T; t++)
        {
            var dq = Dequantized(qa, t, cols);
            for (int r = 0; r < rows; r++)
            {
                var (dot, abs) = m.Exact(r, dq);
                Assert.True(Math.Abs(D[t * rows + r] - dot) <= 2e-6 * abs, $"gemm t{t} r{r}: {D[t * rows + r]} vs {dot}");
                if (t == 2) Assert.True(Math.Abs(y[r] - dot) <= 2e-6 * abs, $"matvec r{r}: {y[r]} vs {dot}");
            }
        }
    }
}
