using XlstmRun.Backends.Cpu.Kernels;
using XlstmRun.Formats;
using Xunit;

namespace XlstmRun.Tests.Cpu;

/// <summary>The blocked matrix-matrix kernels (prefill) against float64 references, with tails in every dimension.</summary>
public unsafe class GemmKernelTests
{
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(4, 16, 8)]
    [InlineData(5, 37, 19)]
    [InlineData(13, 64, 256)]
    [InlineData(64, 100, 33)]
    [InlineData(3, 513, 7)]
    public void FloatGemmMatchesNaive(int M, int N, int K)
    {
        int lda = K + 3, ldb = N + 5, ldc = N + 2;
        var A = Buf.Random(M * lda, 1);
        var B = Buf.Random(K * ldb, 2);
        foreach (var level in Levels.Float)
        {
            var C = Buf.Random(M * ldc, 3);
            var C0 = (float[])C.Clone();
            FloatGemm.Gemm(level, M, N, K, Buf.Ptr(A), lda, Buf.Ptr(B), ldb, Buf.Ptr(C), ldc);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < ldc; j++)
                {
                    if (j >= N) { Assert.Equal(C0[i * ldc + j], C[i * ldc + j]); continue; } // padding untouched
                    double s = C0[i * ldc + j], a = Math.Abs(s);
                    for (int k = 0; k < K; k++) { double p = (double)A[i * lda + k] * B[k * ldb + j]; s += p; a += Math.Abs(p); }
                    Assert.True(Math.Abs(C[i * ldc + j] - s) <= 1e-5 * a + 1e-30, $"{level} ({i},{j}): {C[i * ldc + j]} vs {s}");
                }
        }
    }

    public static TheoryData<GgmlType, int, int, int> ProjShapes()
    {
        var d = new TheoryData<GgmlType, int, int, int>();
        foreach (var t in new[] { GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0 })
            foreach (var (r, c, T) in new[] { (1, 32, 2), (13, 96, 5), (37, 288, 9), (8, 32, 4), (33, 10944, 3), (17, 64, 33) })
                d.Add(t, r, c, T);
        return d;
    }

    /// <summary>Float path: every level, rows not a multiple of the panel, tokens not a multiple of the micro-tile; bias and accumulate.</summary>
    [Theory, MemberData(nameof(ProjShapes))]
    public void FloatPanelsMatchReference(GgmlType type, int rows, int cols, int T)
    {
        using var w = new TestMatrix(type, rows, cols, seed: rows + cols + T);
        var X = Buf.Random(T * cols, 4);
        var bias = Buf.Random(rows, 5);
        foreach (var level in Levels.Float)
        {
            int nr = ProjGemm.ItemRowsFloat(level);
            var scratch = Buf.Zeros((int)ProjGemm.FloatScratch(level, T));
            var D = Buf.Random(T * rows, 6);
            var D0 = (float[])D.Clone();
            var epi = new Epilogue2D(Buf.Ptr(D), rows, Buf.Ptr(bias), true);
            for (int p = 0; p < (rows + nr - 1) / nr; p++) ProjGemm.FloatPanel(level, w.Ref, p, Buf.Ptr(X), cols, T, epi, Buf.Ptr(scratch));
            for (int t = 0; t < T; t++)
                for (int r = 0; r < rows; r++)
                {
                    var (dot, abs) = w.Exact(r, X.AsSpan(t * cols, cols));
                    double want = D0[t * rows + r] + dot + bias[r];
                    Assert.True(Math.Abs(D[t * rows + r] - want) <= 1e-5 * (abs + Math.Abs(D0[t * rows + r]) + Math.Abs(bias[r])),
                        $"{level} {type} t{t} r{r}: {D[t * rows + r]} vs {want}");
                }
        }
    }

    /// <summary>8-bit path (AVX-VNNI): exactly the integer dot products of the quantized tokens, like the matvec kernels.</summary>
    [Theory]
    [InlineData(GgmlType.Q8_0, 1, 32, 1)]
    [InlineData(GgmlType.Q8_0, 13, 96, 5)]
    [InlineData(GgmlType.Q8_0, 37, 10944, 6)]
    [InlineData(GgmlType.Q4_0, 1, 32, 2)]
    [InlineData(GgmlType.Q4_0, 8, 64, 4)]
    [InlineData(GgmlType.Q4_0, 37, 288, 9)]
    [InlineData(GgmlType.Q4_0, 21, 10944, 7)]
    public void Int8PanelsMatchExactIntegerDot(GgmlType type, int rows, int cols, int T)
    {
        if (!CpuCaps.Supports(Int8Path.AvxVnni)) return; // the 8-bit GEMM exists only with AVX-VNNI (other CPUs use the float panels)
        using var w = new TestMatrix(type, rows, cols, seed: 3 * rows + cols);
        var X = Buf.Random(T * cols, 8, 3f);
        using var qa = new QuantAct();
        qa.Ensure(T, cols);
        for (int t = 0; t < T; t++) qa.QuantizeRow(t, Buf.Ptr(X) + t * cols);
        var scratch = new byte[ProjGemm.Int8Scratch(cols) + 64];
        int nr = ProjGemm.ItemRowsInt8;
        var D = Buf.Random(T * rows, 9);
        var D0 = (float[])D.Clone();
        fixed (byte* s = scratch)
        {
            var epi = new Epilogue2D(Buf.Ptr(D), rows, null, false);
            for (int p = 0; p < (rows + nr - 1) / nr; p++) ProjGemm.Int8Panel(w.Ref, p, qa, T, epi, s);
        }
        var dq = new float[cols];
        for (int t = 0; t < T; t++)
        {
            for (int k = 0; k < cols; k++) dq[k] = qa.RowQ(t)[k] * qa.RowD(t)[k / 32];
            for (int r = 0; r < rows; r++)
            {
                var (dot, abs) = w.Exact(r, dq);
                Assert.True(Math.Abs(D[t * rows + r] - dot) <= 2e-6 * abs + 1e-30, $"{type} t{t} r{r}: {D[t * rows + r]} vs {dot}");
            }
        }
        _ = D0;
    }
}
