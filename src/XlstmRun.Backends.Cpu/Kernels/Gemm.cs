using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using XlstmRun.Formats;

namespace XlstmRun.Backends.Cpu.Kernels;

/// <summary>
/// Register-tiled float matrix products C += A·B with strided row-major operands: a 4×(2 vectors) micro-kernel keeps
/// eight accumulators in registers, broadcasts one element of A per row and loads two vectors of B per k.
/// Used by the prefill projections (B = a packed, transposed panel of weight rows) and inside the mLSTM cell.
/// Blocked summation: the micro-kernels sum each <see cref="KBlock"/> products in fresh registers and add that partial to C,
/// so float32 rounding grows with K/KBlock rather than K (one running sum over K was the largest float32 error of the
/// engine on the issue-9 look-alike models, up to 1e-3 of a logits row at ill-conditioned positions; docs/NOTES.md
/// "Conformance"). Cost: one load, add and store of C per block of KBlock FMA steps.
/// </summary>
public static unsafe class FloatGemm
{
    /// <summary>Products per partial sum in the micro-kernels.</summary>
    public const int KBlock = 32;

    /// <summary>C[M×N] += A[M×K] · B[K×N]; element (i,k) of A at A[i·lda + k], (k,j) of B at B[k·ldb + j], (i,j) of C at C[i·ldc + j].</summary>
    public static void Gemm(SimdLevel level, int M, int N, int K, float* A, long lda, float* B, long ldb, float* C, long ldc)
    {
        switch (level)
        {
            case SimdLevel.V512: Gemm<V512>(M, N, K, A, lda, B, ldb, C, ldc); break;
            case SimdLevel.V256: Gemm<V256>(M, N, K, A, lda, B, ldb, C, ldc); break;
            case SimdLevel.V128: Gemm<V128>(M, N, K, A, lda, B, ldb, C, ldc); break;
            default: Gemm<V1>(M, N, K, A, lda, B, ldb, C, ldc); break;
        }
    }

    public static void Gemm<TV>(int M, int N, int K, float* A, long lda, float* B, long ldb, float* C, long ldc) where TV : struct, IVec<TV>
    {
        int V = TV.Count, j = 0;
        for (; j + 2 * V <= N; j += 2 * V)
        {
            int i = 0;
            for (; i + 4 <= M; i += 4) Micro4x2<TV>(K, A + i * lda, lda, B + j, ldb, C + i * ldc + j, ldc);
            for (; i < M; i++) Micro1x2<TV>(K, A + i * lda, B + j, ldb, C + i * ldc + j);
        }
        for (; j + V <= N; j += V)
            for (int i = 0; i < M; i++) Micro1x1<TV>(K, A + i * lda, B + j, ldb, C + i * ldc + j);
        for (; j < N; j++)
            for (int i = 0; i < M; i++)
            {
                float s = 0;
                float* a = A + i * lda;
                for (int k = 0; k < K; k++) s += a[k] * B[k * ldb + j];
                C[i * ldc + j] += s;
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Micro4x2<TV>(int K, float* A, long lda, float* B, long ldb, float* C, long ldc) where TV : struct, IVec<TV>
    {
        int V = TV.Count;
        float* a0 = A, a1 = A + lda, a2 = A + 2 * lda, a3 = A + 3 * lda;
        float* c0 = C, c1 = C + ldc, c2 = C + 2 * ldc, c3 = C + 3 * ldc;
        for (int k0 = 0; k0 < K; k0 += KBlock)
        {
            int k1 = Math.Min(K, k0 + KBlock);
            TV x00 = TV.Zero, x01 = TV.Zero, x10 = TV.Zero, x11 = TV.Zero, x20 = TV.Zero, x21 = TV.Zero, x30 = TV.Zero, x31 = TV.Zero;
            for (int k = k0; k < k1; k++)
            {
                float* b = B + k * ldb;
                TV b0 = TV.Load(b), b1 = TV.Load(b + V);
                TV a = TV.Bcast(a0[k]); x00 = TV.Fma(a, b0, x00); x01 = TV.Fma(a, b1, x01);
                a = TV.Bcast(a1[k]); x10 = TV.Fma(a, b0, x10); x11 = TV.Fma(a, b1, x11);
                a = TV.Bcast(a2[k]); x20 = TV.Fma(a, b0, x20); x21 = TV.Fma(a, b1, x21);
                a = TV.Bcast(a3[k]); x30 = TV.Fma(a, b0, x30); x31 = TV.Fma(a, b1, x31);
            }
            AddTo(c0, x00); AddTo(c0 + V, x01); AddTo(c1, x10); AddTo(c1 + V, x11);
            AddTo(c2, x20); AddTo(c2 + V, x21); AddTo(c3, x30); AddTo(c3 + V, x31);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddTo<TV>(float* c, TV x) where TV : struct, IVec<TV> => TV.Store(c, TV.Add(TV.Load(c), x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Micro1x2<TV>(int K, float* A, float* B, long ldb, float* C) where TV : struct, IVec<TV>
    {
        int V = TV.Count;
        for (int k0 = 0; k0 < K; k0 += KBlock)
        {
            int k1 = Math.Min(K, k0 + KBlock);
            TV x0 = TV.Zero, x1 = TV.Zero;
            for (int k = k0; k < k1; k++)
            {
                float* b = B + k * ldb;
                TV a = TV.Bcast(A[k]);
                x0 = TV.Fma(a, TV.Load(b), x0);
                x1 = TV.Fma(a, TV.Load(b + V), x1);
            }
            AddTo(C, x0); AddTo(C + V, x1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Micro1x1<TV>(int K, float* A, float* B, long ldb, float* C) where TV : struct, IVec<TV>
    {
        for (int k0 = 0; k0 < K; k0 += KBlock)
        {
            int k1 = Math.Min(K, k0 + KBlock);
            TV x0 = TV.Zero;
            for (int k = k0; k < k1; k++) x0 = TV.Fma(TV.Bcast(A[k]), TV.Load(B + k * ldb), x0);
            AddTo(C, x0);
        }
    }
}

/// <summary>
/// Prefill projections D[t, r] (+)= Σ_k X[t, k]·W[r, k] for many tokens at once. Work is split by panels of weight rows;
/// each panel's weights are read from the mapped file once, converted to a compact in-cache form, and applied to every
/// token before the next panel:
/// float path (F32/F16/BF16, and Q8_0/Q4_0 on CPUs without AVX-VNNI): K-chunks of the panel dequantized and transposed to
/// [k][NR] floats, with the 4×2-vector float micro-kernel over tokens;
/// 8-bit path (Q8_0/Q4_0 with AVX-VNNI): the panel's 8 rows repacked as u8 [k/4][8 rows][4] (Q4_0 nibbles; Q8_0 values
/// offset by 128) with float block scales, tokens quantized to 8 bits, vpdpbusd with one broadcast 4-byte group of a token
/// against 8 rows at once; the offsets are removed through the per-block activation sums.
/// </summary>
public static unsafe class ProjGemm
{
    public const int KcFloat = 256;
    public const int NrInt8 = 8;
    /// <summary>Panels per work item: the token micro-tile (in L1) is applied to this many panels before moving on, so the
    /// activations stream from L2/L3 once per group rather than once per panel.</summary>
    public const int Group = 4;

    /// <summary>Rows per panel of the float path.</summary>
    public static int NrFloat(SimdLevel level) => 2 * VecCount(level);

    public static int VecCount(SimdLevel level) => level switch { SimdLevel.V512 => 16, SimdLevel.V256 => 8, SimdLevel.V128 => 4, _ => 1 };

    /// <summary>Floats of per-worker scratch the float path needs for <paramref name="tokens"/> tokens.</summary>
    public static long FloatScratch(SimdLevel level, int tokens) => (long)Group * (KcFloat + tokens) * NrFloat(level) + KcFloat + 64;

    /// <summary>Bytes of per-worker scratch the 8-bit path needs for rows of <paramref name="cols"/>.</summary>
    public static long Int8Scratch(int cols) => Group * ((long)cols * NrInt8 + (long)cols / 32 * NrInt8 * 4) + 128;

    /// <summary>Rows per work item of the float path / the 8-bit path.</summary>
    public static int ItemRowsFloat(SimdLevel level) => Group * NrFloat(level);
    public const int ItemRowsInt8 = Group * NrInt8;

    /// <summary>
    /// Float path for weight rows item·Group·NR … (Group panels of NR rows): D rows t &lt; T, X [T, K] with row stride ldx.
    /// </summary>
    public static void FloatPanel(SimdLevel level, in WeightRef w, int item, float* X, long ldx, int T, in Epilogue2D epi, float* scratch)
    {
        switch (level)
        {
            case SimdLevel.V512: FloatPanel<V512>(w, item, X, ldx, T, epi, scratch); break;
            case SimdLevel.V256: FloatPanel<V256>(w, item, X, ldx, T, epi, scratch); break;
            case SimdLevel.V128: FloatPanel<V128>(w, item, X, ldx, T, epi, scratch); break;
            default: FloatPanel<V1>(w, item, X, ldx, T, epi, scratch); break;
        }
    }

    private static void FloatPanel<TV>(in WeightRef w, int item, float* X, long ldx, int T, in Epilogue2D epi, float* scratch) where TV : struct, IVec<TV>
    {
        int NR = 2 * TV.Count, K = w.Cols;
        int rItem = item * Group * NR;
        int groups = Math.Min(Group, (w.Rows - rItem + NR - 1) / NR);
        float* bp = scratch;                                   // [Group][KcFloat][NR]
        float* acc = bp + (long)Group * KcFloat * NR;          // [Group][T][NR]
        float* tmp = acc + (long)Group * T * NR;               // [KcFloat]
        new Span<float>(acc, groups * T * NR).Clear();
        var wr = w;
        for (int k0 = 0; k0 < K; k0 += KcFloat)
        {
            int kc = Math.Min(KcFloat, K - k0);
            // pack: bp[g][k][j] = W[rItem + g·NR + j][k0 + k]
            for (int g = 0; g < groups; g++)
            {
                float* bg = bp + (long)g * KcFloat * NR;
                int r0 = rItem + g * NR, nr = Math.Min(NR, wr.Rows - r0);
                for (int j = 0; j < NR; j++)
                {
                    if (j >= nr) { for (int k = 0; k < kc; k++) bg[k * NR + j] = 0; continue; }
                    float* src;
                    if (wr.Type == GgmlType.F32) src = (float*)wr.Row(r0 + j) + k0;
                    else { Dequant.Row(wr.Type, wr.Row(r0 + j), k0, kc, tmp); src = tmp; }
                    for (int k = 0; k < kc; k++) bg[k * NR + j] = src[k];
                }
            }
            int t = 0;
            for (; t + 4 <= T; t += 4)
                for (int g = 0; g < groups; g++)
                    FloatGemm.Micro4x2<TV>(kc, X + t * ldx + k0, ldx, bp + (long)g * KcFloat * NR, NR, acc + ((long)g * T + t) * NR, NR);
            for (; t < T; t++)
                for (int g = 0; g < groups; g++)
                    FloatGemm.Micro1x2<TV>(kc, X + t * ldx + k0, bp + (long)g * KcFloat * NR, NR, acc + ((long)g * T + t) * NR);
        }
        for (int g = 0; g < groups; g++)
        {
            int r0 = rItem + g * NR, nr = Math.Min(NR, wr.Rows - r0);
            float* ag = acc + (long)g * T * NR;
            for (int t = 0; t < T; t++)
                for (int j = 0; j < nr; j++) epi.Write(t, r0 + j, ag[t * NR + j]);
        }
    }

    /// <summary>8-bit path (needs AVX-VNNI) for rows item·Group·8 … of Q8_0/Q4_0 weights; tokens quantized in <paramref name="xa"/>.</summary>
    public static void Int8Panel(in WeightRef w, int item, QuantAct xa, int T, in Epilogue2D epi, byte* scratch)
    {
        const int NR = NrInt8;
        int K = w.Cols, nb = K / 32;
        int rItem = item * ItemRowsInt8;
        int groups = Math.Min(Group, (w.Rows - rItem + NR - 1) / NR);
        long panelBytes = (long)K * NR + (long)nb * NR * 4;
        for (int g = 0; g < groups; g++) PackInt8(w, rItem + g * NR, scratch + g * panelBytes);
        int off = w.Type == GgmlType.Q4_0 ? 8 : 128;
        int t = 0;
        for (; t + 4 <= T; t += 4)
            for (int g = 0; g < groups; g++)
            {
                byte* wp = scratch + g * panelBytes;
                int r0 = rItem + g * NR;
                Int8Micro4(wp, (float*)(wp + (long)K * NR), nb, xa, t, off, r0, Math.Min(NR, w.Rows - r0), epi);
            }
        for (; t < T; t++)
            for (int g = 0; g < groups; g++)
            {
                byte* wp = scratch + g * panelBytes;
                int r0 = rItem + g * NR;
                Int8Micro1(wp, (float*)(wp + (long)K * NR), nb, xa, t, off, r0, Math.Min(NR, w.Rows - r0), epi);
            }
    }

    /// <summary>Repack rows r0 … r0+7 as u8 [K/4][8 rows][4] (Q4_0 nibbles; Q8_0 values + 128) followed by float scales [K/32][8].</summary>
    private static void PackInt8(in WeightRef w, int r0, byte* wp)
    {
        const int NR = NrInt8;
        int K = w.Cols, nb = K / 32;
        int nr = Math.Min(NR, w.Rows - r0);
        bool q4 = w.Type == GgmlType.Q4_0;
        float* ds = (float*)(wp + (long)K * NR);                // [nb][8]
        for (int j = 0; j < NR; j++)
        {
            if (j >= nr)
            {
                for (int b = 0; b < nb; b++) { ds[b * NR + j] = 0; for (int g = 0; g < 8; g++) *(uint*)(wp + ((b * 8 + g) * NR + j) * 4) = 0; }
                continue;
            }
            byte* p = w.Row(r0 + j);
            if (q4)
                for (int b = 0; b < nb; b++, p += 18)
                {
                    ds[b * NR + j] = HalfBits.ToFloat(*(ushort*)p);
                    ulong lo = *(ulong*)(p + 2), hi = *(ulong*)(p + 10);
                    // groups 0..3: low nibbles of bytes 0..15; groups 4..7: high nibbles
                    uint* dst = (uint*)(wp + (long)b * 8 * NR * 4) + j;
                    dst[0 * NR] = (uint)lo & 0x0F0F0F0F; dst[1 * NR] = (uint)(lo >> 32) & 0x0F0F0F0F;
                    dst[2 * NR] = (uint)hi & 0x0F0F0F0F; dst[3 * NR] = (uint)(hi >> 32) & 0x0F0F0F0F;
                    dst[4 * NR] = (uint)(lo >> 4) & 0x0F0F0F0F; dst[5 * NR] = (uint)(lo >> 36) & 0x0F0F0F0F;
                    dst[6 * NR] = (uint)(hi >> 4) & 0x0F0F0F0F; dst[7 * NR] = (uint)(hi >> 36) & 0x0F0F0F0F;
                }
            else
                for (int b = 0; b < nb; b++, p += 34)
                {
                    ds[b * NR + j] = HalfBits.ToFloat(*(ushort*)p);
                    uint* src = (uint*)(p + 2);
                    uint* dst = (uint*)(wp + (long)b * 8 * NR * 4) + j;
                    for (int g = 0; g < 8; g++) dst[g * NR] = src[g] ^ 0x80808080u;
                }
        }
    }

    private static void Int8Micro4(byte* wp, float* ds, int nb, QuantAct xa, int t, int off, int r0, int nr, in Epilogue2D epi)
    {
        sbyte* q0 = xa.RowQ(t), q1 = xa.RowQ(t + 1), q2 = xa.RowQ(t + 2), q3 = xa.RowQ(t + 3);
        float* d0 = xa.RowD(t), d1 = xa.RowD(t + 1), d2 = xa.RowD(t + 2), d3 = xa.RowD(t + 3);
        int* s0 = xa.RowSum(t), s1 = xa.RowSum(t + 1), s2 = xa.RowSum(t + 2), s3 = xa.RowSum(t + 3);
        Vector256<float> f0 = default, f1 = default, f2 = default, f3 = default;
        for (int b = 0; b < nb; b++)
        {
            var i0 = Vector256.Create(-off * s0[b]);
            var i1 = Vector256.Create(-off * s1[b]);
            var i2 = Vector256.Create(-off * s2[b]);
            var i3 = Vector256.Create(-off * s3[b]);
            byte* wb = wp + b * 256;
            int kb = b * 32;
            for (int g = 0; g < 8; g++)
            {
                var wv = Vector256.Load(wb + g * 32);
                i0 = AvxVnni.MultiplyWideningAndAdd(i0, wv, Vector256.Create(*(int*)(q0 + kb + 4 * g)).AsSByte());
                i1 = AvxVnni.MultiplyWideningAndAdd(i1, wv, Vector256.Create(*(int*)(q1 + kb + 4 * g)).AsSByte());
                i2 = AvxVnni.MultiplyWideningAndAdd(i2, wv, Vector256.Create(*(int*)(q2 + kb + 4 * g)).AsSByte());
                i3 = AvxVnni.MultiplyWideningAndAdd(i3, wv, Vector256.Create(*(int*)(q3 + kb + 4 * g)).AsSByte());
            }
            var dw = Vector256.Load(ds + b * 8);
            f0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), dw * Vector256.Create(d0[b]), f0);
            f1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1), dw * Vector256.Create(d1[b]), f1);
            f2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2), dw * Vector256.Create(d2[b]), f2);
            f3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3), dw * Vector256.Create(d3[b]), f3);
        }
        epi.WriteRow(t, r0, nr, f0);
        epi.WriteRow(t + 1, r0, nr, f1);
        epi.WriteRow(t + 2, r0, nr, f2);
        epi.WriteRow(t + 3, r0, nr, f3);
    }

    private static void Int8Micro1(byte* wp, float* ds, int nb, QuantAct xa, int t, int off, int r0, int nr, in Epilogue2D epi)
    {
        sbyte* q0 = xa.RowQ(t);
        float* d0 = xa.RowD(t);
        int* s0 = xa.RowSum(t);
        Vector256<float> f0 = default;
        for (int b = 0; b < nb; b++)
        {
            var i0 = Vector256.Create(-off * s0[b]);
            byte* wb = wp + b * 256;
            for (int g = 0; g < 8; g++)
                i0 = AvxVnni.MultiplyWideningAndAdd(i0, Vector256.Load(wb + g * 32), Vector256.Create(*(int*)(q0 + b * 32 + 4 * g)).AsSByte());
            f0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), Vector256.Load(ds + b * 8) * Vector256.Create(d0[b]), f0);
        }
        epi.WriteRow(t, r0, nr, f0);
    }
}

/// <summary>Where projection results go: D[t·ldd + r] = (accumulate ? D : 0) + (dot + bias[r]).</summary>
public readonly unsafe struct Epilogue2D
{
    public Epilogue2D(float* dst, long ldd, float* bias, bool accumulate) { Dst = dst; Ldd = ldd; Bias = bias; Accumulate = accumulate; }
    public float* Dst { get; }
    public long Ldd { get; }
    public float* Bias { get; }
    public bool Accumulate { get; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write(int t, int r, float dot)
    {
        float v = Bias != null ? dot + Bias[r] : dot;
        float* d = Dst + t * Ldd + r;
        *d = Accumulate ? *d + v : v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteRow(int t, int r0, int nr, Vector256<float> v)
    {
        if (nr == 8)
        {
            float* d = Dst + t * Ldd + r0;
            if (Bias != null) v += Vector256.Load(Bias + r0);
            if (Accumulate) v += Vector256.Load(d);
            v.Store(d);
        }
        else
            for (int j = 0; j < nr; j++) Write(t, r0 + j, v.GetElement(j));
    }
}
