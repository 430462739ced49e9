using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using XlstmRun.Formats;

namespace XlstmRun.Backends.Cpu.Kernels;

/// <summary>A weight matrix in place in memory (the mapped file): Rows × Cols of Type, rows RowBytes apart.</summary>
public readonly unsafe struct WeightRef
{
    public WeightRef(byte* data, GgmlType type, int rows, int cols)
    {
        Data = data; Type = type; Rows = rows; Cols = cols;
        RowBytes = GgmlTypes.RowBytes(type, cols);
    }
    public byte* Data { get; }
    public GgmlType Type { get; }
    public int Rows { get; }
    public int Cols { get; }
    public long RowBytes { get; }
    public byte* Row(int r) => Data + r * RowBytes;
    public bool IsQuant => GgmlTypes.IsQuantized(Type);
}

/// <summary>Where a result row value goes: dst[r] = (accumulate ? dst[r] : 0) + (dot + bias[r]).</summary>
public readonly unsafe struct Epilogue
{
    public Epilogue(float* dst, float* bias, bool accumulate) { Dst = dst; Bias = bias; Accumulate = accumulate; }
    public float* Dst { get; }
    public float* Bias { get; }
    public bool Accumulate { get; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write(int r, float dot)
    {
        float v = Bias != null ? dot + Bias[r] : dot;
        Dst[r] = Accumulate ? Dst[r] + v : v;
    }
}

/// <summary>
/// Matrix-vector products for one token (decode), over a range of weight rows. Float weights (F32/F16/BF16) use float
/// kernels at any vector width; Q8_0/Q4_0 weights use 8-bit activations (<see cref="QuantAct"/>) and integer dot products
/// (AVX-VNNI vpdpbusd, AVX2 vpmaddubsw, or 128-bit widening), or the float path over dequantized rows.
/// Every kernel reads each weight byte once.
/// </summary>
public static unsafe class MatVec
{
    // ---- float weights -------------------------------------------------------------------------------------------------

    /// <summary>dot(W_r, x) for r in [r0, r1) with float activations; any weight type (Q types are dequantized block by block).</summary>
    public static void Float(SimdLevel level, in WeightRef w, float* x, int r0, int r1, in Epilogue epi, float* scratch)
    {
        switch (w.Type)
        {
            case GgmlType.F32: Dispatch<F32W>(level, w, x, r0, r1, epi); break;
            case GgmlType.F16: Dispatch<F16W>(level, w, x, r0, r1, epi); break;
            case GgmlType.BF16: Dispatch<Bf16W>(level, w, x, r0, r1, epi); break;
            default:
                // Quantized weights with float activations: dequantize one row at a time into scratch (Cols floats).
                for (int r = r0; r < r1; r++)
                {
                    Dequant.Row(w.Type, w.Row(r), 0, w.Cols, scratch);
                    epi.Write(r, DotF32(level, scratch, x, w.Cols));
                }
                break;
        }
    }

    /// <summary>Largest |x| for which x · 2^112 stays finite with room to spare (the F16 kernels' pre-scaled activations).</summary>
    public const float ScaledF16Limit = 65504f;

    /// <summary>
    /// F16 weights with activations pre-scaled by 2^112 (<paramref name="xScaled"/> = x · <see cref="HalfBits.Scale"/>, all
    /// |x| ≤ <see cref="ScaledF16Limit"/>): each weight vector is then one widening, shift and mask, and
    /// (w · 2^-112)·(x · 2^112) = w·x exactly (power-of-two scaling), so the results equal <see cref="Float"/>'s.
    /// </summary>
    public static void F16Scaled(SimdLevel level, in WeightRef w, float* xScaled, int r0, int r1, in Epilogue epi)
    {
        if (w.Type != GgmlType.F16) throw new ArgumentException($"F16Scaled needs F16 weights, not {w.Type}");
        if (level == SimdLevel.V256 && CpuCaps.Avx2) F16ScaledAvx2(w, xScaled, r0, r1, epi);
        else Dispatch<F16U>(level, w, xScaled, r0, r1, epi);
    }

    /// <summary>Prefetch distance (bytes) along each row of the F16 kernel.</summary>
    public const int F16PrefetchAhead = 768;

    /// <summary>
    /// F16 (pre-scaled activations), AVX2: four rows × 32 columns per iteration with two accumulators per row, one
    /// prefetch per row and 64 bytes a fixed distance ahead (the rows are contiguous, so near a row's end this runs into
    /// the next rows' starts).
    /// </summary>
    private static void F16ScaledAvx2(in WeightRef w, float* x, int r0, int r1, in Epilogue epi)
    {
        int n = w.Cols, n32 = n / 32 * 32;
        long rb = w.RowBytes;
        var mask = Vector256.Create(unchecked((int)0x8FFFE000));
        var ep = epi;
        int r = r0;
        for (; r + 4 <= r1; r += 4)
        {
            short* p0 = (short*)w.Row(r), p1 = (short*)((byte*)p0 + rb), p2 = (short*)((byte*)p1 + rb), p3 = (short*)((byte*)p2 + rb);
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
            for (int k = 0; k < n32; k += 32)
            {
                Sse.Prefetch0((byte*)(p0 + k) + F16PrefetchAhead);
                Sse.Prefetch0((byte*)(p1 + k) + F16PrefetchAhead);
                Sse.Prefetch0((byte*)(p2 + k) + F16PrefetchAhead);
                Sse.Prefetch0((byte*)(p3 + k) + F16PrefetchAhead);
                for (int u = 0; u < 32; u += 16)
                {
                    var x0 = Vector256.Load(x + k + u);
                    var x1 = Vector256.Load(x + k + u + 8);
                    a0 = Fma.MultiplyAdd(H(p0 + k + u, mask), x0, a0); b0 = Fma.MultiplyAdd(H(p0 + k + u + 8, mask), x1, b0);
                    a1 = Fma.MultiplyAdd(H(p1 + k + u, mask), x0, a1); b1 = Fma.MultiplyAdd(H(p1 + k + u + 8, mask), x1, b1);
                    a2 = Fma.MultiplyAdd(H(p2 + k + u, mask), x0, a2); b2 = Fma.MultiplyAdd(H(p2 + k + u + 8, mask), x1, b2);
                    a3 = Fma.MultiplyAdd(H(p3 + k + u, mask), x0, a3); b3 = Fma.MultiplyAdd(H(p3 + k + u + 8, mask), x1, b3);
                }
            }
            float s0 = Vector256.Sum(a0 + b0), s1 = Vector256.Sum(a1 + b1), s2 = Vector256.Sum(a2 + b2), s3 = Vector256.Sum(a3 + b3);
            for (int k = n32; k < n; k++)
            {
                float xk = x[k];
                s0 += HalfBits.ToFloatUnscaled((ushort)p0[k]) * xk; s1 += HalfBits.ToFloatUnscaled((ushort)p1[k]) * xk;
                s2 += HalfBits.ToFloatUnscaled((ushort)p2[k]) * xk; s3 += HalfBits.ToFloatUnscaled((ushort)p3[k]) * xk;
            }
            ep.Write(r, s0); ep.Write(r + 1, s1); ep.Write(r + 2, s2); ep.Write(r + 3, s3);
        }
        if (r < r1) Rows<F16U, V256>(w, x, r, r1, epi);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> H(short* p, Vector256<int> mask) => (Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(p), 13) & mask).AsSingle();

    public static float DotF32(SimdLevel level, float* a, float* b, int n) => level switch
    {
        SimdLevel.V512 => Dot<V512>(a, b, n),
        SimdLevel.V256 => Dot<V256>(a, b, n),
        SimdLevel.V128 => Dot<V128>(a, b, n),
        _ => Dot<V1>(a, b, n),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot<TV>(float* a, float* b, int n) where TV : struct, IVec<TV>
    {
        int N = TV.Count, k = 0;
        TV s0 = TV.Zero, s1 = TV.Zero;
        for (; k + 2 * N <= n; k += 2 * N)
        {
            s0 = TV.Fma(TV.Load(a + k), TV.Load(b + k), s0);
            s1 = TV.Fma(TV.Load(a + k + N), TV.Load(b + k + N), s1);
        }
        for (; k + N <= n; k += N) s0 = TV.Fma(TV.Load(a + k), TV.Load(b + k), s0);
        float s = TV.Sum(TV.Add(s0, s1));
        for (; k < n; k++) s += a[k] * b[k];
        return s;
    }

    private static void Dispatch<TW>(SimdLevel level, in WeightRef w, float* x, int r0, int r1, in Epilogue epi) where TW : struct, IWeightLoad
    {
        switch (level)
        {
            case SimdLevel.V512: Rows<TW, V512>(w, x, r0, r1, epi); break;
            case SimdLevel.V256: Rows<TW, V256>(w, x, r0, r1, epi); break;
            case SimdLevel.V128: Rows<TW, V128>(w, x, r0, r1, epi); break;
            default: Rows<TW, V1>(w, x, r0, r1, epi); break;
        }
    }

    /// <summary>Four rows at a time (four independent accumulators sharing each activation load), then single rows.</summary>
    private static void Rows<TW, TV>(in WeightRef w, float* x, int r0, int r1, in Epilogue epi)
        where TW : struct, IWeightLoad where TV : struct, IVec<TV>
    {
        int n = w.Cols, N = TV.Count, nv = n / N * N;
        long rb = w.RowBytes;
        long pstep = nv > 0 ? PrefetchStep(rb, nv / N) : 64;
        int r = r0;
        var ep = epi;
        for (; r + 4 <= r1; r += 4)
        {
            byte* p0 = w.Row(r), p1 = p0 + rb, p2 = p1 + rb, p3 = p2 + rb;
            byte* pf = p0 + 4 * rb;
            TV a0 = TV.Zero, a1 = TV.Zero, a2 = TV.Zero, a3 = TV.Zero;
            for (int k = 0; k < nv; k += N)
            {
                if (TV.Count > 1) { Prefetch(pf, pstep); pf += pstep; }
                var xv = TV.Load(x + k);
                a0 = TV.Fma(TW.Load<TV>(p0, k), xv, a0);
                a1 = TV.Fma(TW.Load<TV>(p1, k), xv, a1);
                a2 = TV.Fma(TW.Load<TV>(p2, k), xv, a2);
                a3 = TV.Fma(TW.Load<TV>(p3, k), xv, a3);
            }
            float s0 = TV.Sum(a0), s1 = TV.Sum(a1), s2 = TV.Sum(a2), s3 = TV.Sum(a3);
            for (int k = nv; k < n; k++)
            {
                float xk = x[k];
                s0 += TW.Scalar(p0, k) * xk; s1 += TW.Scalar(p1, k) * xk; s2 += TW.Scalar(p2, k) * xk; s3 += TW.Scalar(p3, k) * xk;
            }
            ep.Write(r, s0); ep.Write(r + 1, s1); ep.Write(r + 2, s2); ep.Write(r + 3, s3);
        }
        for (; r < r1; r++)
        {
            byte* p = w.Row(r);
            TV a0 = TV.Zero, a1 = TV.Zero;
            int k = 0;
            for (; k + 2 * N <= nv; k += 2 * N)
            {
                a0 = TV.Fma(TW.Load<TV>(p, k), TV.Load(x + k), a0);
                a1 = TV.Fma(TW.Load<TV>(p, k + N), TV.Load(x + k + N), a1);
            }
            for (; k < nv; k += N) a0 = TV.Fma(TW.Load<TV>(p, k), TV.Load(x + k), a0);
            float s = TV.Sum(TV.Add(a0, a1));
            for (; k < n; k++) s += TW.Scalar(p, k) * x[k];
            epi.Write(r, s);
        }
    }

    // ---- quantized weights × 8-bit activations --------------------------------------------------------------------------

    /// <summary>dot(W_r, x) for r in [r0, r1), Q8_0/Q4_0 weights, x quantized (row <paramref name="xr"/> of <paramref name="a"/>).</summary>
    public static void Int8(Int8Path path, in WeightRef w, QuantAct a, int xr, int r0, int r1, in Epilogue epi)
    {
        var x = new QRow(a.RowQ(xr), a.RowD(xr), a.RowDS(xr), a.RowSum(xr), a.RowInit4(xr), w.Cols / 32);
        bool q4 = w.Type == GgmlType.Q4_0;
        if (!q4 && w.Type != GgmlType.Q8_0) throw new ArgumentException($"8-bit kernels need Q8_0/Q4_0 weights, not {w.Type}");
        // Activations so large that d·2^112 overflows (|x| > ~8·10^6) take the exact 128-bit path.
        if (a.Huge[xr] != 0 && path > Int8Path.V128) path = Vector128.IsHardwareAccelerated ? Int8Path.V128 : Int8Path.Scalar;
        switch (path)
        {
            case Int8Path.AvxVnni:
                if (q4) BlocksAvx<Vnni, Q4Block>(w, x, r0, r1, epi); else BlocksAvx<Vnni, Q8Block>(w, x, r0, r1, epi);
                break;
            case Int8Path.Avx2:
                if (q4) Q4Avx2(w, x, r0, r1, epi); else Q8Avx2(w, x, r0, r1, epi);
                break;
            case Int8Path.V128:
                for (int r = r0; r < r1; r++) epi.Write(r, q4 ? Q4RowV128(w.Row(r), x) : Q8RowV128(w.Row(r), x));
                break;
            default:
                for (int r = r0; r < r1; r++) epi.Write(r, q4 ? Q4RowScalar(w.Row(r), x) : Q8RowScalar(w.Row(r), x));
                break;
        }
    }

    /// <summary>One quantized activation row.</summary>
    public readonly struct QRow
    {
        public QRow(sbyte* q, float* d, float* ds, int* sum, int* init4, int blocks) { Q = q; D = d; DS = ds; Sum = sum; Init4 = init4; Blocks = blocks; }
        public readonly sbyte* Q;
        public readonly float* D;
        public readonly float* DS;
        public readonly int* Sum;
        public readonly int* Init4;
        public readonly int Blocks;
    }

    /// <summary>acc + Σ over groups of 4 of u8·s8 products, per 32-bit lane.</summary>
    private interface IDotU8S8
    {
        static abstract Vector256<int> Dot(Vector256<int> acc, Vector256<byte> u, Vector256<sbyte> s);
    }

    private struct Vnni : IDotU8S8
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(Vector256<int> acc, Vector256<byte> u, Vector256<sbyte> s) => AvxVnni.MultiplyWideningAndAdd(acc, u, s);
    }

    private struct MaddUbs : IDotU8S8
    {
        // |u·s| ≤ 255·128 per pair would saturate int16, but our operands are ≤ 128 (|w|) or ≤ 15 (nibbles) times ≤ 127.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(Vector256<int> acc, Vector256<byte> u, Vector256<sbyte> s) =>
            Avx2.Add(acc, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, s), Vector256.Create((short)1)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Nibbles(byte* qs, Vector256<uint> shifts, Vector256<byte> mask) =>
        Avx2.ShiftRightLogicalVariable(Avx2.BroadcastVector128ToVector256(qs).AsUInt32(), shifts).AsByte() & mask;

    /// <summary>Raw half bits of a block scale moved into float position (value · 2^-112); times DS (= d · 2^112) gives the exact product.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> BlockScale(byte* blk, float ds) => Vector256.Create(HalfBits.ToFloatUnscaled(*(ushort*)blk) * ds);

    /// <summary>
    /// Bytes to prefetch per block so that, while four rows are processed, the next four rows are fetched completely
    /// (the hardware prefetchers alone reach only about half the bandwidth on these interleaved streams).
    /// </summary>
    private static long PrefetchStep(long rowBytes, int steps) => (4 * rowBytes / steps + 63) / 64 * 64;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(byte* p, long step)
    {
        Sse.Prefetch0(p);
        if (step > 64) Sse.Prefetch0(p + 64);
        if (step > 128) Sse.Prefetch0(p + 128);
        if (step > 192) Sse.Prefetch0(p + 192);
    }

    /// <summary>One 32-element weight block (half scale, then the quants) times the 8-bit activations of the same block:
    /// per 32-bit lane, the integer sums of four products.</summary>
    private interface IBlockDot
    {
        static abstract int Bytes { get; }
        /// <param name="init4">Q4_0: the block's −8·Σq start values (the nibble offset folded in); unused for Q8_0.</param>
        static abstract Vector256<int> Dot<TD>(byte* block, Vector256<sbyte> xv, int* init4) where TD : struct, IDotU8S8;
    }

    private struct Q4Block : IBlockDot
    {
        public static int Bytes => 18;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot<TD>(byte* block, Vector256<sbyte> xv, int* init4) where TD : struct, IDotU8S8 =>
            TD.Dot(Vector256.Load(init4), Nibbles(block + 2, Vector256.Create(0u, 0, 0, 0, 4, 4, 4, 4), Vector256.Create((byte)0x0F)), xv);
    }

    private struct Q8Block : IBlockDot
    {
        public static int Bytes => 34;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot<TD>(byte* block, Vector256<sbyte> xv, int* init4) where TD : struct, IDotU8S8
        {
            var wv = Vector256.Load((sbyte*)(block + 2));
            return TD.Dot(default, Avx2.Abs(wv), Avx2.Sign(xv, wv));
        }
    }

    /// <summary>Q4_0/Q8_0 rows (<typeparamref name="TB"/>) times 8-bit activations: four rows per pass sharing each
    /// activation load, the next four rows prefetched while these are read.</summary>
    private static void BlocksAvx<TD, TB>(in WeightRef w, in QRow x, int r0, int r1, in Epilogue epi)
        where TD : struct, IDotU8S8 where TB : struct, IBlockDot
    {
        int nb = x.Blocks, bytes = TB.Bytes, r = r0;
        long rb = w.RowBytes, pstep = PrefetchStep(rb, nb);
        sbyte* xq = x.Q; float* xs = x.DS; int* xi = x.Init4;
        var ep = epi;
        for (; r + 4 <= r1; r += 4)
        {
            byte* p0 = w.Data + r * rb, p1 = p0 + rb, p2 = p1 + rb, p3 = p2 + rb, pf = p0 + 4 * rb;
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int b = 0; b < nb; b++)
            {
                Prefetch(pf, pstep);
                pf += pstep;
                var xv = Vector256.Load(xq + 32 * b);
                int* init = xi + 8 * b;
                float ds = xs[b];
                var i0 = TB.Dot<TD>(p0, xv, init);
                var i1 = TB.Dot<TD>(p1, xv, init);
                var i2 = TB.Dot<TD>(p2, xv, init);
                var i3 = TB.Dot<TD>(p3, xv, init);
                a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), BlockScale(p0, ds), a0);
                a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1), BlockScale(p1, ds), a1);
                a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2), BlockScale(p2, ds), a2);
                a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3), BlockScale(p3, ds), a3);
                p0 += bytes; p1 += bytes; p2 += bytes; p3 += bytes;
            }
            ep.Write(r, Vector256.Sum(a0)); ep.Write(r + 1, Vector256.Sum(a1));
            ep.Write(r + 2, Vector256.Sum(a2)); ep.Write(r + 3, Vector256.Sum(a3));
        }
        for (; r < r1; r++)
        {
            byte* p = w.Data + r * rb;
            Vector256<float> a0 = default;
            for (int b = 0; b < nb; b++, p += bytes)
            {
                var i0 = TB.Dot<TD>(p, Vector256.Load(xq + 32 * b), xi + 8 * b);
                a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), BlockScale(p, xs[b]), a0);
            }
            ep.Write(r, Vector256.Sum(a0));
        }
    }

    /// <summary>The four rows' half scales (sign-extended bits) as floats × 2^-112, twice: [d0 d1 d2 d3 | d0 d1 d2 d3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Scales4(byte* p0, byte* p1, byte* p2, byte* p3)
    {
        var h = Vector128.Create((int)*(short*)p0, *(short*)p1, *(short*)p2, *(short*)p3);
        var f = (Vector128.ShiftLeft(h, 13) & Vector128.Create(unchecked((int)0x8FFFE000))).AsSingle();
        return Vector256.Create(f, f);
    }

    /// <summary>
    /// Q4_0 × 8-bit activations with AVX2 only (no VNNI), four rows at a time: per row one `vpmaddubsw` of the block's
    /// nibbles by its activations; the four rows' int16 sums are folded together with `vphaddw` (16 products of a
    /// nibble ≤ 15 and |q| ≤ 127 stay below 2^15) and widened once, giving [r0 r1 r2 r3] for each half of the block; one
    /// conversion and one multiply-add per block for all four rows.
    /// </summary>
    private static void Q4Avx2(in WeightRef w, in QRow x, int r0, int r1, in Epilogue epi)
    {
        var mask = Vector256.Create((byte)0x0F);
        var sh = Vector256.Create(0u, 0, 0, 0, 4, 4, 4, 4);
        var ones = Vector256.Create((short)1);
        int nb = x.Blocks;
        long rb = w.RowBytes;
        byte* wd = w.Data;
        sbyte* xq = x.Q;
        float* xs = x.DS;
        int* sum = x.Sum;
        var ep = epi;
        long pstep = PrefetchStep(rb, nb);
        int r = r0;
        for (; r + 4 <= r1; r += 4)
        {
            byte* p0 = wd + r * rb, p1 = p0 + rb, p2 = p1 + rb, p3 = p2 + rb;
            byte* pf = p0 + 4 * rb;
            Vector256<float> acc = default;
            for (int b = 0; b < nb; b++)
            {
                Sse.Prefetch0(pf);
                Sse.Prefetch0(pf + 64);
                pf += pstep;
                var xv = Vector256.Load(xq + 32 * b);
                var m0 = Avx2.MultiplyAddAdjacent(Nibbles(p0 + 2, sh, mask), xv);
                var m1 = Avx2.MultiplyAddAdjacent(Nibbles(p1 + 2, sh, mask), xv);
                var m2 = Avx2.MultiplyAddAdjacent(Nibbles(p2 + 2, sh, mask), xv);
                var m3 = Avx2.MultiplyAddAdjacent(Nibbles(p3 + 2, sh, mask), xv);
                var hs = Avx2.HorizontalAdd(Avx2.HorizontalAdd(m0, m1), Avx2.HorizontalAdd(m2, m3));
                // each half of the block carries half of the −8·Σq offset
                var isum = Avx2.MultiplyAddAdjacent(hs, ones) + Vector256.Create(-4 * sum[b]);
                acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(isum), Scales4(p0, p1, p2, p3) * Vector256.Create(xs[b]), acc);
                p0 += 18; p1 += 18; p2 += 18; p3 += 18;
            }
            var s4 = acc.GetLower() + acc.GetUpper();
            ep.Write(r, s4.GetElement(0)); ep.Write(r + 1, s4.GetElement(1));
            ep.Write(r + 2, s4.GetElement(2)); ep.Write(r + 3, s4.GetElement(3));
        }
        if (r < r1) BlocksAvx<MaddUbs, Q4Block>(w, x, r, r1, epi);
    }

    /// <summary>Q8_0 × 8-bit activations with AVX2 only, four rows at a time, the rows' int32 sums folded with `vphaddd`.</summary>
    private static void Q8Avx2(in WeightRef w, in QRow x, int r0, int r1, in Epilogue epi)
    {
        var ones = Vector256.Create((short)1);
        int nb = x.Blocks, r = r0;
        long rb = w.RowBytes, pstep = PrefetchStep(rb, nb);
        sbyte* xq = x.Q; float* xs = x.DS;
        var ep = epi;
        for (; r + 4 <= r1; r += 4)
        {
            byte* p0 = w.Data + r * rb, p1 = p0 + rb, p2 = p1 + rb, p3 = p2 + rb, pf = p0 + 4 * rb;
            Vector256<float> acc = default;
            for (int b = 0; b < nb; b++)
            {
                Prefetch(pf, pstep);
                pf += pstep;
                var xv = Vector256.Load(xq + 32 * b);
                var w0 = Vector256.Load((sbyte*)(p0 + 2));
                var w1 = Vector256.Load((sbyte*)(p1 + 2));
                var w2 = Vector256.Load((sbyte*)(p2 + 2));
                var w3 = Vector256.Load((sbyte*)(p3 + 2));
                var i0 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w0), Avx2.Sign(xv, w0)), ones);
                var i1 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w1), Avx2.Sign(xv, w1)), ones);
                var i2 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w2), Avx2.Sign(xv, w2)), ones);
                var i3 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w3), Avx2.Sign(xv, w3)), ones);
                var isum = Avx2.HorizontalAdd(Avx2.HorizontalAdd(i0, i1), Avx2.HorizontalAdd(i2, i3));
                acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(isum), Scales4(p0, p1, p2, p3) * Vector256.Create(xs[b]), acc);
                p0 += 34; p1 += 34; p2 += 34; p3 += 34;
            }
            var s4 = acc.GetLower() + acc.GetUpper();
            ep.Write(r, s4.GetElement(0)); ep.Write(r + 1, s4.GetElement(1));
            ep.Write(r + 2, s4.GetElement(2)); ep.Write(r + 3, s4.GetElement(3));
        }
        if (r < r1) BlocksAvx<MaddUbs, Q8Block>(w, x, r, r1, epi);
    }

    /// <summary>128-bit path for CPUs without AVX2: widen to 16 bits, multiply, widen-add to 32 bits.</summary>
    private static float Q8RowV128(byte* p, in QRow x)
    {
        var acc = Vector128<float>.Zero;
        for (int b = 0; b < x.Blocks; b++, p += 34)
        {
            var isum = DotI8V128(Vector128.Load((sbyte*)(p + 2)), Vector128.Load(x.Q + 32 * b))
                     + DotI8V128(Vector128.Load((sbyte*)(p + 18)), Vector128.Load(x.Q + 32 * b + 16));
            acc += Vector128.ConvertToSingle(isum) * Vector128.Create(HalfBits.ToFloat(*(ushort*)p) * x.D[b]);
        }
        return Vector128.Sum(acc);
    }

    private static float Q4RowV128(byte* p, in QRow x)
    {
        var acc = Vector128<float>.Zero;
        var m = Vector128.Create((byte)0x0F);
        var eight = Vector128.Create((sbyte)8);
        for (int b = 0; b < x.Blocks; b++, p += 18)
        {
            var v = Vector128.Load(p + 2);
            var lo = (v & m).AsSByte() - eight;
            var hi = Vector128.ShiftRightLogical(v, 4).AsSByte() - eight;
            var isum = DotI8V128(lo, Vector128.Load(x.Q + 32 * b)) + DotI8V128(hi, Vector128.Load(x.Q + 32 * b + 16));
            acc += Vector128.ConvertToSingle(isum) * Vector128.Create(HalfBits.ToFloat(*(ushort*)p) * x.D[b]);
        }
        return Vector128.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> DotI8V128(Vector128<sbyte> a, Vector128<sbyte> b)
    {
        // products of two int8 fit in int16 (|p| ≤ 16384)
        var lo = Vector128.WidenLower(a) * Vector128.WidenLower(b);
        var hi = Vector128.WidenUpper(a) * Vector128.WidenUpper(b);
        return Vector128.WidenLower(lo) + Vector128.WidenUpper(lo) + Vector128.WidenLower(hi) + Vector128.WidenUpper(hi);
    }

    /// <summary>Scalar forms (also the reference the vector kernels are tested against).</summary>
    public static float Q8RowScalar(byte* p, in QRow x)
    {
        float s = 0;
        for (int b = 0; b < x.Blocks; b++, p += 34)
        {
            int isum = 0;
            sbyte* q = (sbyte*)(p + 2);
            sbyte* a = x.Q + 32 * b;
            for (int i = 0; i < 32; i++) isum += q[i] * a[i];
            s += isum * (HalfBits.ToFloat(*(ushort*)p) * x.D[b]);
        }
        return s;
    }

    public static float Q4RowScalar(byte* p, in QRow x)
    {
        float s = 0;
        for (int b = 0; b < x.Blocks; b++, p += 18)
        {
            int isum = 0;
            byte* q = p + 2;
            sbyte* a = x.Q + 32 * b;
            for (int j = 0; j < 16; j++) isum += ((q[j] & 0xF) - 8) * a[j] + ((q[j] >> 4) - 8) * a[j + 16];
            s += isum * (HalfBits.ToFloat(*(ushort*)p) * x.D[b]);
        }
        return s;
    }
}

/// <summary>Loads float vectors from a weight row of some element type (generic so each kernel is specialised).</summary>
public unsafe interface IWeightLoad
{
    static abstract TV Load<TV>(byte* row, int k) where TV : struct, IVec<TV>;
    static abstract float Scalar(byte* row, int k);
}

public unsafe struct F32W : IWeightLoad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static TV Load<TV>(byte* row, int k) where TV : struct, IVec<TV> => TV.Load((float*)row + k);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Scalar(byte* row, int k) => ((float*)row)[k];
}

public unsafe struct F16W : IWeightLoad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static TV Load<TV>(byte* row, int k) where TV : struct, IVec<TV> => TV.LoadF16((ushort*)row + k);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Scalar(byte* row, int k) => HalfBits.ToFloat(((ushort*)row)[k]);
}

/// <summary>F16 weights as floats × 2^-112, for activations pre-scaled by 2^112.</summary>
public unsafe struct F16U : IWeightLoad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static TV Load<TV>(byte* row, int k) where TV : struct, IVec<TV> => TV.LoadF16Unscaled((ushort*)row + k);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Scalar(byte* row, int k) => HalfBits.ToFloatUnscaled(((ushort*)row)[k]);
}

public unsafe struct Bf16W : IWeightLoad
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static TV Load<TV>(byte* row, int k) where TV : struct, IVec<TV> => TV.LoadBf16((ushort*)row + k);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Scalar(byte* row, int k) => BitConverter.Int32BitsToSingle(((ushort*)row)[k] << 16);
}
