using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using XlstmRun.Formats;

namespace XlstmRun.Backends.Cpu.Kernels;

/// <summary>
/// Activations quantized to 8 bits for integer dot products with Q8_0/Q4_0 weights (as llama.cpp's Q8_0 activations, but
/// with a float scale): per block of 32, d = max|x|/127, q = round-to-nearest-even(x/d). Per block we also keep Σq and
/// the vector [−8·Σq, 0, …, 0], which seeds the 8-lane integer accumulator of a Q4_0 block so that unsigned nibbles can be
/// multiplied directly (Σ(n−8)·q = Σn·q − 8·Σq).
/// Layout for <see cref="Rows"/> rows of <see cref="Cols"/> values: Q [row][col] sbyte, D/Sum [row][block], Init [row][block][8].
/// </summary>
public sealed unsafe class QuantAct : IDisposable
{
    public sbyte* Q { get; private set; }
    public float* D { get; private set; }
    /// <summary>D · 2^112 (so a half scale's raw bits, moved into float position, times DS is the product of the two scales).</summary>
    public float* DS { get; private set; }
    /// <summary>Per row: 1 if some D · 2^112 overflowed (|x| above ~8·10^6); kernels then take an exact slower path.</summary>
    public byte* Huge { get; private set; }
    public int* Sum { get; private set; }
    public int* Init4 { get; private set; }
    /// <summary>Per row and block, side by side: DS (float) and −8·Σq (int, the Q4_0 nibble offset): one pointer for both in the prefill kernels.</summary>
    public float* Aux { get; private set; }
    public int Rows { get; private set; }
    public int Cols { get; private set; }
    public int Blocks => Cols / 32;
    private long _capQ, _capB, _capR;

    /// <summary>Size the buffers for rows × cols (cols a multiple of 32); grows only (no allocation once warm).</summary>
    public void Ensure(int rows, int cols)
    {
        if (cols % 32 != 0) throw new ArgumentException($"{cols} columns are not a multiple of 32");
        long nq = (long)rows * cols, nb = nq / 32;
        if (nq > _capQ)
        {
            Free(Q); Q = (sbyte*)NativeMemory.AlignedAlloc((nuint)nq + 64, 64); _capQ = nq;
        }
        if (rows > _capR)
        {
            Free(Huge); Huge = (byte*)NativeMemory.AlignedAlloc((nuint)rows + 64, 64); _capR = rows;
        }
        if (nb > _capB)
        {
            Free(D); Free(DS); Free(Sum); Free(Init4); Free(Aux);
            D = (float*)NativeMemory.AlignedAlloc((nuint)(nb * 4 + 64), 64);
            DS = (float*)NativeMemory.AlignedAlloc((nuint)(nb * 4 + 64), 64);
            Sum = (int*)NativeMemory.AlignedAlloc((nuint)(nb * 4 + 64), 64);
            Init4 = (int*)NativeMemory.AlignedAlloc((nuint)(nb * 32 + 64), 64);
            Aux = (float*)NativeMemory.AlignedAlloc((nuint)(nb * 8 + 64), 64);
            _capB = nb;
        }
        Rows = rows;
        Cols = cols;
    }

    public sbyte* RowQ(int r) => Q + (long)r * Cols;
    public float* RowD(int r) => D + (long)r * Blocks;
    public float* RowDS(int r) => DS + (long)r * Blocks;
    public int* RowSum(int r) => Sum + (long)r * Blocks;
    public int* RowInit4(int r) => Init4 + (long)r * Blocks * 8;
    public float* RowAux(int r) => Aux + (long)r * Blocks * 2;

    /// <summary>Quantize row <paramref name="r"/> from <paramref name="x"/> (Cols floats).</summary>
    public void QuantizeRow(int r, float* x)
    {
        QuantizeRow(x, Cols, RowQ(r), RowD(r), RowSum(r), RowInit4(r), CpuCaps.Best >= SimdLevel.V256);
        float* d = RowD(r), ds = RowDS(r), aux = RowAux(r);
        int* sum = RowSum(r);
        bool huge = false;
        for (int b = 0; b < Blocks; b++)
        {
            ds[b] = d[b] * HalfBits.Scale;
            huge |= float.IsInfinity(ds[b]);
            aux[2 * b] = ds[b];
            ((int*)aux)[2 * b + 1] = -8 * sum[b];
        }
        Huge[r] = (byte)(huge ? 1 : 0);
    }

    /// <summary>The quantizer (vector and scalar forms give identical bytes).</summary>
    public static void QuantizeRow(float* x, int cols, sbyte* q, float* d, int* sum, int* init4, bool vector)
    {
        int nb = cols / 32;
        for (int b = 0; b < nb; b++)
        {
            float* xb = x + 32 * b;
            sbyte* qb = q + 32 * b;
            float amax;
            if (vector && Vector256.IsHardwareAccelerated)
            {
                var m = Vector256.Max(Vector256.Max(Vector256.Abs(Vector256.Load(xb)), Vector256.Abs(Vector256.Load(xb + 8))),
                                      Vector256.Max(Vector256.Abs(Vector256.Load(xb + 16)), Vector256.Abs(Vector256.Load(xb + 24))));
                var m4 = Vector128.Max(m.GetLower(), m.GetUpper());
                amax = MathF.Max(MathF.Max(m4[0], m4[1]), MathF.Max(m4[2], m4[3]));
            }
            else
            {
                amax = 0;
                for (int i = 0; i < 32; i++) amax = MathF.Max(amax, MathF.Abs(xb[i]));
            }
            float db = amax / 127f;
            float id = db != 0 ? 1f / db : 0f;
            int s = 0;
            if (vector && Vector256.IsHardwareAccelerated)
            {
                var vid = Vector256.Create(id);
                var i0 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(xb) * vid));
                var i1 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(xb + 8) * vid));
                var i2 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(xb + 16) * vid));
                var i3 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(xb + 24) * vid));
                s = Vector256.Sum(i0 + i1 + i2 + i3);
                var n = Vector256.Narrow(Vector256.Narrow(i0, i1), Vector256.Narrow(i2, i3));
                n.Store(qb);
            }
            else
            {
                for (int i = 0; i < 32; i++)
                {
                    int v = (int)MathF.Round(xb[i] * id);
                    qb[i] = (sbyte)v;
                    s += v;
                }
            }
            d[b] = db;
            sum[b] = s;
            int* ib = init4 + 8 * b;
            ib[0] = -8 * s;
            for (int i = 1; i < 8; i++) ib[i] = 0;
        }
    }

    private static void Free(void* p) { if (p != null) NativeMemory.AlignedFree(p); }

    public void Dispose()
    {
        Free(Q); Free(D); Free(DS); Free(Sum); Free(Init4); Free(Huge); Free(Aux);
        Q = null; D = null; DS = null; Sum = null; Init4 = null; Huge = null; Aux = null; _capQ = _capB = _capR = 0;
    }
}

/// <summary>Weight rows to float (vectorized where it pays; exact).</summary>
public static unsafe class Dequant
{
    /// <summary>Decode elements [k0, k0+n) of a row of <paramref name="type"/> to <paramref name="dst"/>. For Q types k0 and n are multiples of 32.</summary>
    public static void Row(GgmlType type, byte* row, int k0, int n, float* dst)
    {
        switch (type)
        {
            case GgmlType.F32:
                Buffer.MemoryCopy((float*)row + k0, dst, (long)n * 4, (long)n * 4);
                break;
            case GgmlType.F16:
            {
                ushort* p = (ushort*)row + k0;
                int i = 0;
                if (Vector256.IsHardwareAccelerated)
                    for (; i + 8 <= n; i += 8) V256.Store(dst + i, V256.LoadF16(p + i));
                for (; i < n; i++) dst[i] = HalfBits.ToFloat(p[i]);
                break;
            }
            case GgmlType.BF16:
            {
                ushort* p = (ushort*)row + k0;
                int i = 0;
                if (Vector256.IsHardwareAccelerated)
                    for (; i + 8 <= n; i += 8) V256.Store(dst + i, V256.LoadBf16(p + i));
                for (; i < n; i++) dst[i] = BitConverter.Int32BitsToSingle(p[i] << 16);
                break;
            }
            case GgmlType.Q8_0:
            {
                byte* p = row + (k0 / 32) * 34;
                for (int b = 0; b < n / 32; b++, p += 34)
                {
                    float d = HalfBits.ToFloat(*(ushort*)p);
                    sbyte* q = (sbyte*)(p + 2);
                    float* o = dst + 32 * b;
                    if (Vector256.IsHardwareAccelerated)
                    {
                        var vd = Vector256.Create(d);
                        var w = Vector256.Load(q);
                        var lo = Vector256.WidenLower(w); var hi = Vector256.WidenUpper(w);
                        (Vector256.ConvertToSingle(Vector256.WidenLower(lo)) * vd).Store(o);
                        (Vector256.ConvertToSingle(Vector256.WidenUpper(lo)) * vd).Store(o + 8);
                        (Vector256.ConvertToSingle(Vector256.WidenLower(hi)) * vd).Store(o + 16);
                        (Vector256.ConvertToSingle(Vector256.WidenUpper(hi)) * vd).Store(o + 24);
                    }
                    else
                        for (int i = 0; i < 32; i++) o[i] = q[i] * d;
                }
                break;
            }
            case GgmlType.Q4_0:
            {
                byte* p = row + (k0 / 32) * 18;
                for (int b = 0; b < n / 32; b++, p += 18)
                {
                    float d = HalfBits.ToFloat(*(ushort*)p);
                    byte* q = p + 2;
                    float* o = dst + 32 * b;
                    for (int j = 0; j < 16; j++)
                    {
                        o[j] = ((q[j] & 0xF) - 8) * d;
                        o[j + 16] = ((q[j] >> 4) - 8) * d;
                    }
                }
                break;
            }
            default: throw new NotSupportedException($"weight type {type}");
        }
    }
}
