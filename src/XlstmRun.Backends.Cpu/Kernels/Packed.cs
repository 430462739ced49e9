using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using XlstmRun.Formats;

namespace XlstmRun.Backends.Cpu.Kernels;

/// <summary>
/// A Q8_0/Q4_0 matrix repacked eight rows at a time ("x8" layout), for AVX2 integer kernels without AVX-VNNI.
/// Rows are grouped by eight (the last group padded with zero rows); a group is stored block by block (32 columns); a
/// group block holds the eight rows' half scales (16 bytes, row order) and then their quants in column groups of four:
/// Q8_0: eight 32-byte vectors, vector i holding bytes [row j][4i … 4i+3] at offset 4j (272 bytes in all);
/// Q4_0: four 32-byte vectors, vector i holding the original quant bytes [row j][4i … 4i+3] at offset 4j, whose low
/// nibbles are columns 4i … 4i+3 and high nibbles columns 16+4i … 16+4i+3 (144 bytes in all).
/// So one vector load gives eight rows × four columns, which `vpmaddubsw` multiplies by four broadcast activations:
/// no horizontal sums, one sequential stream per eight rows, the eight scales converted in one vector operation.
/// Same bytes as the GGUF rows (18 or 34 per row block).
/// </summary>
public readonly unsafe struct PackedRef
{
    public PackedRef(byte* data, GgmlType type, int rows, int cols)
    {
        if (type is not (GgmlType.Q4_0 or GgmlType.Q8_0)) throw new ArgumentException($"no packed layout for {type}");
        Data = data; Type = type; Rows = rows; Cols = cols;
        Blocks = cols / 32;
        Groups = (rows + 7) / 8;
        BlockBytes = BlockBytesOf(type);
        GroupBytes = (long)Blocks * BlockBytes;
    }

    public static int BlockBytesOf(GgmlType type) => type == GgmlType.Q4_0 ? 16 + 128 : 16 + 256;
    public static long SizeOf(GgmlType type, int rows, int cols) => (long)(rows + 7) / 8 * (cols / 32) * BlockBytesOf(type);

    public byte* Data { get; }
    public GgmlType Type { get; }
    public int Rows { get; }
    public int Cols { get; }
    public int Blocks { get; }
    public int Groups { get; }
    public int BlockBytes { get; }
    public long GroupBytes { get; }
    public byte* Group(int g) => Data + g * GroupBytes;
}

/// <summary>Conversion between GGUF rows and the packed layout.</summary>
public static unsafe class Packing
{
    /// <summary>Pack row groups [g0, g1) of <paramref name="src"/> into <paramref name="dst"/> (same type and shape).</summary>
    public static void Pack(in WeightRef src, in PackedRef dst, int g0, int g1)
    {
        int nb = dst.Blocks, vecs = dst.Type == GgmlType.Q4_0 ? 4 : 8;
        long sb = GgmlTypes.RowBytes(src.Type, 32);
        for (int g = g0; g < g1; g++)
        {
            byte* o = dst.Group(g);
            for (int b = 0; b < nb; b++, o += dst.BlockBytes)
                for (int j = 0; j < 8; j++)
                {
                    int r = 8 * g + j;
                    if (r >= src.Rows)
                    {
                        ((ushort*)o)[j] = 0;
                        for (int i = 0; i < vecs; i++) *(uint*)(o + 16 + 32 * i + 4 * j) = 0;
                        continue;
                    }
                    byte* s = src.Row(r) + b * sb;
                    ((ushort*)o)[j] = *(ushort*)s;
                    for (int i = 0; i < vecs; i++) *(uint*)(o + 16 + 32 * i + 4 * j) = *(uint*)(s + 2 + 4 * i);
                }
        }
    }

    /// <summary>Decode elements [k0, k0+n) of row <paramref name="r"/> (k0, n multiples of 32).</summary>
    public static void DequantRow(in PackedRef w, int r, int k0, int n, float* dst)
    {
        int j = r & 7;
        byte* o = w.Group(r >> 3) + (long)(k0 / 32) * w.BlockBytes;
        for (int b = 0; b < n / 32; b++, o += w.BlockBytes)
        {
            float d = HalfBits.ToFloat(((ushort*)o)[j]);
            float* y = dst + 32 * b;
            if (w.Type == GgmlType.Q4_0)
                for (int i = 0; i < 4; i++)
                {
                    byte* c = o + 16 + 32 * i + 4 * j;
                    for (int kk = 0; kk < 4; kk++)
                    {
                        y[4 * i + kk] = ((c[kk] & 0xF) - 8) * d;
                        y[16 + 4 * i + kk] = ((c[kk] >> 4) - 8) * d;
                    }
                }
            else
                for (int i = 0; i < 8; i++)
                {
                    sbyte* c = (sbyte*)(o + 16 + 32 * i + 4 * j);
                    for (int kk = 0; kk < 4; kk++) y[4 * i + kk] = c[kk] * d;
                }
        }
    }

    /// <summary>The eight half scales of a group block as floats × 2^-112 (multiply by a DS activation scale for the product).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Scales(byte* blk) =>
        // sign-extended half bits << 13: exponent and mantissa land where a float has them, the sign at bit 31 (bits
        // 28–30 get copies of the sign and are masked off)
        (Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32((short*)blk), 13) & Vector256.Create(unchecked((int)0x8FFFE000))).AsSingle();
}

/// <summary>
/// Matrix-vector products over packed Q8_0/Q4_0 weights with 8-bit activations (AVX2): eight rows per group, one
/// accumulator per group, exact integer block sums (the same integers as every other 8-bit path), float per block.
/// </summary>
public static unsafe class PackedMatVec
{
    /// <summary>Prefetch distance in bytes along a group's stream.</summary>
    public const int PrefetchAhead = 3072;

    /// <summary>
    /// dot(W_r, x) for the rows of groups [g0, g1), x row <paramref name="xr"/> of <paramref name="a"/>. Each group of
    /// four activations is broadcast from the compact row (`vpbroadcastd`) where it is used: the row stays in L1 (Cols
    /// bytes). A pre-broadcast copy (Cols · 8 bytes, the operand of `vpmaddubsw` straight from memory) filled or
    /// overflowed L1 next to the streamed weights and cost ~10 % of decode time (2-core dev box, 7B Q4_0).
    /// </summary>
    public static void Run(in PackedRef w, QuantAct a, int xr, int g0, int g1, in Epilogue epi)
    {
        if (a.Cols != w.Cols) throw new ArgumentException("activation width differs from the weight's");
        var x = new MatVec.QRow(a.RowQ(xr), a.RowD(xr), a.RowDS(xr), a.RowSum(xr), a.RowInit4(xr), w.Blocks);
        if (a.Huge[xr] != 0 || !CpuCaps.Avx2) Scalar(w, x, g0, g1, epi);
        else if (w.Type == GgmlType.Q4_0) Q4(w, x, g0, g1, epi);
        else Q8(w, x, g0, g1, epi);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> B4(sbyte* p) => Vector256.Create(*(int*)p).AsSByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void WriteGroup(in Epilogue epi, int r0, int rows, Vector256<float> v)
    {
        int n = Math.Min(8, rows - r0);
        for (int j = 0; j < n; j++) epi.Write(r0 + j, v.GetElement(j));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Mad(Vector256<byte> w, sbyte* q) => Avx2.MultiplyAddAdjacent(w, B4(q));

    private static void Q4(in PackedRef w, in MatVec.QRow x, int g0, int g1, in Epilogue epi)
    {
        var mask = Vector256.Create((byte)0x0F);
        var ones = Vector256.Create((short)1);
        int nb = w.Blocks;
        var ep = epi;
        for (int g = g0; g < g1; g++)
        {
            byte* p = w.Group(g), end = p + (long)nb * 144;
            sbyte* q = x.Q;
            float* ds = x.DS;
            int* init = x.Init4;
            Vector256<float> acc = default;
            for (; p < end; p += 144, q += 32, ds++, init += 8)
            {
                // two lines per 144-byte block (the hardware prefetcher fills the odd gap): a third prefetch, or two blocks
                // per iteration, cost more instructions than they saved (measured on the 2-core dev box)
                Sse.Prefetch0(p + PrefetchAhead);
                Sse.Prefetch0(p + PrefetchAhead + 96);
                var v0 = Vector256.Load(p + 16);
                var v1 = Vector256.Load(p + 48);
                var v2 = Vector256.Load(p + 80);
                var v3 = Vector256.Load(p + 112);
                // low nibbles: column groups 0–3 of the block; high nibbles: groups 4–7
                var s = Mad(v0 & mask, q) + Mad(Avx2.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & mask, q + 16);
                s += Mad(v1 & mask, q + 4) + Mad(Avx2.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & mask, q + 20);
                s += Mad(v2 & mask, q + 8) + Mad(Avx2.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & mask, q + 24);
                s += Mad(v3 & mask, q + 12) + Mad(Avx2.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & mask, q + 28);
                // each int16 lane sums 16 products of a nibble (≤ 15) and an activation (|q| ≤ 127): ≤ 30480, no overflow
                var isum = Avx2.MultiplyAddAdjacent(s, ones) + Vector256.Create(*init);   // − 8·Σq: nibbles are offset by 8
                acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(isum), Packing.Scales(p) * Vector256.Create(*ds), acc);
            }
            WriteGroup(ep, 8 * g, w.Rows, acc);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> D8(byte* p, sbyte* q, Vector256<short> ones)
    {
        var wv = Vector256.Load((sbyte*)p);
        // |w| · (q · sign w): u8 × s8 pairs ≤ 2·128·127 fit int16
        return Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(wv), Avx2.Sign(B4(q), wv)), ones);
    }

    private static void Q8(in PackedRef w, in MatVec.QRow x, int g0, int g1, in Epilogue epi)
    {
        var ones = Vector256.Create((short)1);
        int nb = w.Blocks;
        var ep = epi;
        for (int g = g0; g < g1; g++)
        {
            byte* p = w.Group(g), end = p + (long)nb * 272;
            sbyte* q = x.Q;
            float* ds = x.DS;
            Vector256<float> acc = default;
            for (; p < end; p += 272, q += 32, ds++)
            {
                Sse.Prefetch0(p + PrefetchAhead);
                Sse.Prefetch0(p + PrefetchAhead + 64);
                Sse.Prefetch0(p + PrefetchAhead + 128);
                Sse.Prefetch0(p + PrefetchAhead + 192);
                Sse.Prefetch0(p + PrefetchAhead + 256);
                // two chains of four column groups
                var e = D8(p + 16, q, ones) + D8(p + 48, q + 4, ones) + D8(p + 80, q + 8, ones) + D8(p + 112, q + 12, ones);
                var o = D8(p + 144, q + 16, ones) + D8(p + 176, q + 20, ones) + D8(p + 208, q + 24, ones) + D8(p + 240, q + 28, ones);
                acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(e + o), Packing.Scales(p) * Vector256.Create(*ds), acc);
            }
            WriteGroup(ep, 8 * g, w.Rows, acc);
        }
    }

    /// <summary>Scalar form (activations too large for the scaled-half trick, or no AVX2): exact integer block sums, float scales.</summary>
    public static void Scalar(in PackedRef w, in MatVec.QRow x, int g0, int g1, in Epilogue epi)
    {
        bool q4 = w.Type == GgmlType.Q4_0;
        for (int g = g0; g < g1; g++)
            for (int j = 0; j < 8 && 8 * g + j < w.Rows; j++)
            {
                float s = 0;
                byte* o = w.Group(g);
                for (int b = 0; b < w.Blocks; b++, o += w.BlockBytes)
                {
                    sbyte* a = x.Q + 32 * b;
                    int isum = 0;
                    if (q4)
                        for (int i = 0; i < 4; i++)
                        {
                            byte* c = o + 16 + 32 * i + 4 * j;
                            for (int kk = 0; kk < 4; kk++) isum += ((c[kk] & 0xF) - 8) * a[4 * i + kk] + ((c[kk] >> 4) - 8) * a[16 + 4 * i + kk];
                        }
                    else
                        for (int i = 0; i < 8; i++)
                        {
                            sbyte* c = (sbyte*)(o + 16 + 32 * i + 4 * j);
                            for (int kk = 0; kk < 4; kk++) isum += c[kk] * a[4 * i + kk];
                        }
                    s += isum * (HalfBits.ToFloat(((ushort*)o)[j]) * x.D[b]);
                }
                epi.Write(8 * g + j, s);
            }
    }
}

/// <summary>
/// Prefill products over packed Q8_0/Q4_0 weights (AVX2, 8-bit activations): tiles of four tokens times groups of
/// eight rows; each block's quants are unpacked once per tile into registers and multiplied by every token's
/// broadcast activations (`vpmaddubsw`), int16 partial sums widened once per block.
/// </summary>
public static unsafe class PackedGemm
{
    /// <summary>Tokens per register tile.</summary>
    public const int Tile = 4;

    /// <summary>D[t, r] (+)= W_r · x_t for the rows of groups [g0, g1) and tokens 0 … T−1 (quantized in <paramref name="xa"/>).</summary>
    public static void Run(in PackedRef w, QuantAct xa, int T, int g0, int g1, in Epilogue2D epi)
    {
        if (xa.Cols != w.Cols) throw new ArgumentException("activation width differs from the weight's");
        bool huge = false;
        for (int u = 0; u < T; u++) huge |= xa.Huge[u] != 0;
        if (huge || !CpuCaps.Avx2)
        {
            // rare (|x| above ~8·10^6) or no AVX2: token by token through the exact scalar form
            for (int u = 0; u < T; u++)
            {
                var x = new MatVec.QRow(xa.RowQ(u), xa.RowD(u), xa.RowDS(u), xa.RowSum(u), xa.RowInit4(u), w.Blocks);
                PackedMatVec.Scalar(w, x, g0, g1, new Epilogue(epi.Dst + u * epi.Ldd, epi.Bias, epi.Accumulate));
            }
            return;
        }
        // Tokens outside, groups inside: a few groups' weights stay in L2 while the token tile's activations stay in L1.
        bool q4 = w.Type == GgmlType.Q4_0;
        int t = 0;
        for (; t + Tile <= T; t += Tile)
            for (int g = g0; g < g1; g++)
                if (q4) Q4Tile4(w, g, xa, t, epi); else Q8Tile4(w, g, xa, t, epi);
        for (; t < T; t++)
            for (int g = g0; g < g1; g++)
                if (q4) Q4Tile1(w, g, xa, t, epi); else Q8Tile1(w, g, xa, t, epi);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> B4(sbyte* p) => Vector256.Create(*(int*)p).AsSByte();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Dot4(Vector256<byte> w0, Vector256<byte> w1, Vector256<byte> w2, Vector256<byte> w3, sbyte* q) =>
        Avx2.MultiplyAddAdjacent(w0, B4(q)) + Avx2.MultiplyAddAdjacent(w1, B4(q + 4)) +
        Avx2.MultiplyAddAdjacent(w2, B4(q + 8)) + Avx2.MultiplyAddAdjacent(w3, B4(q + 12));

    private static void Q4Tile4(in PackedRef w, int g, QuantAct xa, int t, in Epilogue2D epi)
    {
        var mask = Vector256.Create((byte)0x0F);
        var ones = Vector256.Create((short)1);
        byte* p = w.Group(g), end = p + (long)w.Blocks * 144;
        // per token: quants (32 per block) and the block's {DS, −8·Σq} pair, walked block by block
        sbyte* q0 = xa.RowQ(t), q1 = xa.RowQ(t + 1), q2 = xa.RowQ(t + 2), q3 = xa.RowQ(t + 3);
        float* a0 = xa.RowAux(t), a1 = xa.RowAux(t + 1), a2 = xa.RowAux(t + 2), a3 = xa.RowAux(t + 3);
        Vector256<float> f0 = default, f1 = default, f2 = default, f3 = default;
        for (; p < end; p += 144, q0 += 32, q1 += 32, q2 += 32, q3 += 32, a0 += 2, a1 += 2, a2 += 2, a3 += 2)
        {
            var v0 = Vector256.Load(p + 16);
            var v1 = Vector256.Load(p + 48);
            var v2 = Vector256.Load(p + 80);
            var v3 = Vector256.Load(p + 112);
            // low nibbles: columns 0 … 15 of the block
            var w0 = v0 & mask; var w1 = v1 & mask; var w2 = v2 & mask; var w3 = v3 & mask;
            var s0 = Dot4(w0, w1, w2, w3, q0);
            var s1 = Dot4(w0, w1, w2, w3, q1);
            var s2 = Dot4(w0, w1, w2, w3, q2);
            var s3 = Dot4(w0, w1, w2, w3, q3);
            // high nibbles: columns 16 … 31
            w0 = Avx2.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & mask;
            w1 = Avx2.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & mask;
            w2 = Avx2.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & mask;
            w3 = Avx2.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & mask;
            s0 += Dot4(w0, w1, w2, w3, q0 + 16);
            s1 += Dot4(w0, w1, w2, w3, q1 + 16);
            s2 += Dot4(w0, w1, w2, w3, q2 + 16);
            s3 += Dot4(w0, w1, w2, w3, q3 + 16);
            var sc = Packing.Scales(p);
            f0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(s0, ones) + Vector256.Create(*(int*)(a0 + 1))), sc * Vector256.Create(*a0), f0);
            f1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(s1, ones) + Vector256.Create(*(int*)(a1 + 1))), sc * Vector256.Create(*a1), f1);
            f2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(s2, ones) + Vector256.Create(*(int*)(a2 + 1))), sc * Vector256.Create(*a2), f2);
            f3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(s3, ones) + Vector256.Create(*(int*)(a3 + 1))), sc * Vector256.Create(*a3), f3);
        }
        int nr = Math.Min(8, w.Rows - 8 * g);
        epi.WriteRow(t, 8 * g, nr, f0);
        epi.WriteRow(t + 1, 8 * g, nr, f1);
        epi.WriteRow(t + 2, 8 * g, nr, f2);
        epi.WriteRow(t + 3, 8 * g, nr, f3);
    }

    private static void Q4Tile1(in PackedRef w, int g, QuantAct xa, int t, in Epilogue2D epi)
    {
        var mask = Vector256.Create((byte)0x0F);
        var ones = Vector256.Create((short)1);
        byte* p = w.Group(g);
        sbyte* q0 = xa.RowQ(t);
        int* i0 = xa.RowInit4(t);
        float* d0 = xa.RowDS(t);
        Vector256<float> f0 = default;
        for (int b = 0, kb = 0; b < w.Blocks; b++, kb += 32, p += 144)
        {
            var v0 = Vector256.Load(p + 16);
            var v1 = Vector256.Load(p + 48);
            var v2 = Vector256.Load(p + 80);
            var v3 = Vector256.Load(p + 112);
            var s0 = Dot4(v0 & mask, v1 & mask, v2 & mask, v3 & mask, q0 + kb);
            s0 += Dot4(Avx2.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & mask, Avx2.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & mask,
                Avx2.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & mask, Avx2.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & mask, q0 + kb + 16);
            f0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(s0, ones) + Vector256.Create(i0[8 * b])),
                Packing.Scales(p) * Vector256.Create(d0[b]), f0);
        }
        epi.WriteRow(t, 8 * g, Math.Min(8, w.Rows - 8 * g), f0);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Dot8(Vector256<sbyte> wv, Vector256<byte> aw, sbyte* q, Vector256<short> ones) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, Avx2.Sign(B4(q), wv)), ones);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q8Group4(byte* pw, sbyte* a0, sbyte* a1, sbyte* a2, sbyte* a3, Vector256<short> ones,
        ref Vector256<int> s0, ref Vector256<int> s1, ref Vector256<int> s2, ref Vector256<int> s3)
    {
        var wv = Vector256.Load((sbyte*)pw);
        var aw = Avx2.Abs(wv);
        s0 += Dot8(wv, aw, a0, ones);
        s1 += Dot8(wv, aw, a1, ones);
        s2 += Dot8(wv, aw, a2, ones);
        s3 += Dot8(wv, aw, a3, ones);
    }

    private static void Q8Tile4(in PackedRef w, int g, QuantAct xa, int t, in Epilogue2D epi)
    {
        var ones = Vector256.Create((short)1);
        byte* p = w.Group(g), end = p + (long)w.Blocks * 272;
        sbyte* q0 = xa.RowQ(t), q1 = xa.RowQ(t + 1), q2 = xa.RowQ(t + 2), q3 = xa.RowQ(t + 3);
        float* d0 = xa.RowDS(t), d1 = xa.RowDS(t + 1), d2 = xa.RowDS(t + 2), d3 = xa.RowDS(t + 3);
        Vector256<float> f0 = default, f1 = default, f2 = default, f3 = default;
        for (; p < end; p += 272, q0 += 32, q1 += 32, q2 += 32, q3 += 32, d0++, d1++, d2++, d3++)
        {
            Vector256<int> s0 = default, s1 = default, s2 = default, s3 = default;
            // unrolled by hand (the JIT does not unroll): column groups 0–7 of the block
            Q8Group4(p + 16, q0, q1, q2, q3, ones, ref s0, ref s1, ref s2, ref s3);
            Q8Group4(p + 48, q0 + 4, q1 + 4, q2 + 4, q3 + 4, ones, ref s0, ref s1, ref s2, ref s3);
            Q8Group4(p + 80, q0 + 8, q1 + 8, q2 + 8, q3 + 8, ones, ref s0, ref s1, ref s2, ref s3);
            Q8Group4(p + 112, q0 + 12, q1 + 12, q2 + 12, q3 + 12, ones, ref s0, ref s1, ref s2, ref s3);
            Q8Group4(p + 144, q0 + 16, q1 + 16, q2 + 16, q3 + 16, ones, ref s0, ref s1, ref s2, ref s3);
            Q8Group4(p + 176, q0 + 20, q1 + 20, q2 + 20, q3 + 20, ones, ref s0, ref s1, ref s2, ref s3);
            Q8Group4(p + 208, q0 + 24, q1 + 24, q2 + 24, q3 + 24, ones, ref s0, ref s1, ref s2, ref s3);
            Q8Group4(p + 240, q0 + 28, q1 + 28, q2 + 28, q3 + 28, ones, ref s0, ref s1, ref s2, ref s3);
            var sc = Packing.Scales(p);
            f0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s0), sc * Vector256.Create(*d0), f0);
            f1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s1), sc * Vector256.Create(*d1), f1);
            f2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s2), sc * Vector256.Create(*d2), f2);
            f3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s3), sc * Vector256.Create(*d3), f3);
        }
        int nr = Math.Min(8, w.Rows - 8 * g);
        epi.WriteRow(t, 8 * g, nr, f0);
        epi.WriteRow(t + 1, 8 * g, nr, f1);
        epi.WriteRow(t + 2, 8 * g, nr, f2);
        epi.WriteRow(t + 3, 8 * g, nr, f3);
    }

    private static void Q8Tile1(in PackedRef w, int g, QuantAct xa, int t, in Epilogue2D epi)
    {
        var ones = Vector256.Create((short)1);
        byte* p = w.Group(g);
        sbyte* q0 = xa.RowQ(t);
        float* d0 = xa.RowDS(t);
        Vector256<float> f0 = default;
        for (int b = 0, kb = 0; b < w.Blocks; b++, kb += 32, p += 272)
        {
            Vector256<int> s0 = default;
            for (int i = 0; i < 8; i++)
            {
                var wv = Vector256.Load((sbyte*)(p + 16 + 32 * i));
                s0 += Dot8(wv, Avx2.Abs(wv), q0 + kb + 4 * i, ones);
            }
            f0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s0), Packing.Scales(p) * Vector256.Create(d0[b]), f0);
        }
        epi.WriteRow(t, 8 * g, Math.Min(8, w.Rows - 8 * g), f0);
    }
}
