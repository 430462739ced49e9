using System.Buffers.Binary;

namespace XlstmRun.Formats.Quant;

/// <summary>
/// Row encoders/decoders for every weight type, with ggml's exact block layouts:
/// Q8_0 = { f16 d; int8 q[32] } with x ≈ q·d; Q4_0 = { f16 d; u8 q[16] } with x ≈ (nibble − 8)·d,
/// low nibbles holding elements 0..15 and high nibbles 16..31 of the block.
/// </summary>
public static class Quantizer
{
    /// <summary>Encode one row of floats as <paramref name="type"/> into <paramref name="dst"/> (exactly RowBytes long).</summary>
    public static void EncodeRow(GgmlType type, ReadOnlySpan<float> src, Span<byte> dst)
    {
        long need = GgmlTypes.RowBytes(type, src.Length);
        if (dst.Length != need) throw new ArgumentException($"destination is {dst.Length} bytes, row needs {need}");
        switch (type)
        {
            case GgmlType.F32:
                for (int i = 0; i < src.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(dst[(4 * i)..], src[i]);
                break;
            case GgmlType.F16:
                for (int i = 0; i < src.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(dst[(2 * i)..], Numerics.F32ToF16(src[i]));
                break;
            case GgmlType.BF16:
                for (int i = 0; i < src.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(dst[(2 * i)..], Numerics.F32ToBf16(src[i]));
                break;
            case GgmlType.Q8_0:
                for (int b = 0; b < src.Length / 32; b++) EncodeQ8_0Block(src.Slice(32 * b, 32), dst.Slice(34 * b, 34));
                break;
            case GgmlType.Q4_0:
                for (int b = 0; b < src.Length / 32; b++) EncodeQ4_0Block(src.Slice(32 * b, 32), dst.Slice(18 * b, 18));
                break;
            default: throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    /// <summary>Q8_0: scale = max|x|/127, q = round(x/scale).</summary>
    public static void EncodeQ8_0Block(ReadOnlySpan<float> x, Span<byte> dst)
    {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = MathF.Max(amax, MathF.Abs(x[i]));
        float d = amax / 127f;
        float id = d != 0 ? 1f / d : 0f;
        BinaryPrimitives.WriteUInt16LittleEndian(dst, Numerics.F32ToF16(d));
        for (int i = 0; i < 32; i++) dst[2 + i] = (byte)(sbyte)MathF.Round(x[i] * id, MidpointRounding.AwayFromZero);
    }

    /// <summary>
    /// Q4_0: the element of largest magnitude (with its sign) maps to −8, scale d = that/−8, nibble = clamp(trunc(x/d + 8.5), 0, 15).
    /// </summary>
    public static void EncodeQ4_0Block(ReadOnlySpan<float> x, Span<byte> dst)
    {
        float amax = 0, max = 0;
        for (int i = 0; i < 32; i++)
        {
            float a = MathF.Abs(x[i]);
            if (a > amax) { amax = a; max = x[i]; }
        }
        float d = max / -8f;
        float id = d != 0 ? 1f / d : 0f;
        BinaryPrimitives.WriteUInt16LittleEndian(dst, Numerics.F32ToF16(d));
        for (int j = 0; j < 16; j++)
        {
            int lo = Math.Min(15, (int)(x[j] * id + 8.5f));
            int hi = Math.Min(15, (int)(x[j + 16] * id + 8.5f));
            dst[2 + j] = (byte)(lo | (hi << 4));
        }
    }

    /// <summary>Decode one row of <paramref name="dst"/>.Length elements of <paramref name="type"/> from <paramref name="src"/>.</summary>
    public static void DecodeRow(GgmlType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        int n = dst.Length;
        switch (type)
        {
            case GgmlType.F32:
                for (int i = 0; i < n; i++) dst[i] = BinaryPrimitives.ReadSingleLittleEndian(src[(4 * i)..]);
                break;
            case GgmlType.F16:
                for (int i = 0; i < n; i++) dst[i] = Numerics.F16ToF32(BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]));
                break;
            case GgmlType.BF16:
                for (int i = 0; i < n; i++) dst[i] = Numerics.Bf16ToF32(BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]));
                break;
            case GgmlType.Q8_0:
                for (int b = 0; b < n / 32; b++)
                {
                    var blk = src.Slice(34 * b, 34);
                    float d = Numerics.F16ToF32(BinaryPrimitives.ReadUInt16LittleEndian(blk));
                    for (int i = 0; i < 32; i++) dst[32 * b + i] = (sbyte)blk[2 + i] * d;
                }
                break;
            case GgmlType.Q4_0:
                for (int b = 0; b < n / 32; b++)
                {
                    var blk = src.Slice(18 * b, 18);
                    float d = Numerics.F16ToF32(BinaryPrimitives.ReadUInt16LittleEndian(blk));
                    for (int j = 0; j < 16; j++)
                    {
                        dst[32 * b + j] = ((blk[2 + j] & 0xF) - 8) * d;
                        dst[32 * b + j + 16] = ((blk[2 + j] >> 4) - 8) * d;
                    }
                }
                break;
            default: throw new ArgumentOutOfRangeException(nameof(type));
        }
    }
}
