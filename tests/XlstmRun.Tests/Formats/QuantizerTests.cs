using System.Buffers.Binary;
using XlstmRun.Formats;
using XlstmRun.Formats.Quant;
using Xunit;

namespace XlstmRun.Tests.Formats;

public class QuantizerTests
{
    private static float[] Ramp(int n, Func<int, float> f) => Enumerable.Range(0, n).Select(f).ToArray();

    [Fact]
    public void Q8_0LayoutMatchesHandComputedBlock()
    {
        // x_i = i - 16 for i = 0..31: max |x| = 16 → d = 16/127; q_i = round((i-16)·127/16)
        var x = Ramp(32, i => i - 16);
        var b = new byte[34];
        Quantizer.EncodeRow(GgmlType.Q8_0, x, b);
        Assert.Equal(BitConverter.HalfToUInt16Bits((Half)(16f / 127f)), BinaryPrimitives.ReadUInt16LittleEndian(b));
        Assert.Equal(-127, (sbyte)b[2]);            // x0 = -16
        Assert.Equal(0, (sbyte)b[2 + 16]);          // x16 = 0
        Assert.Equal(8, (sbyte)b[2 + 17]);          // 1·127/16 = 7.94 → 8
        Assert.Equal(119, (sbyte)b[2 + 31]);        // 15·127/16 = 119.06 → 119
    }

    [Fact]
    public void Q4_0LayoutMatchesHandComputedBlock()
    {
        // x_i = i - 8 for i = 0..31: largest magnitude is x31 = 23 → d = 23 / -8 = -2.875
        var x = Ramp(32, i => i - 8);
        var b = new byte[18];
        Quantizer.EncodeRow(GgmlType.Q4_0, x, b);
        Assert.Equal(BitConverter.HalfToUInt16Bits((Half)(-2.875f)), BinaryPrimitives.ReadUInt16LittleEndian(b));
        // nibble = min(15, trunc(x/d + 8.5)); element 0 (x=-8): -8/-2.875 + 8.5 = 11.28 → 11 (low nibble of byte 0)
        // element 16 (x=8): 8/-2.875 + 8.5 = 5.72 → 5 (high nibble of byte 0)
        Assert.Equal(11, b[2] & 0xF);
        Assert.Equal(5, b[2] >> 4);
        // element 15 (x=7): 7/-2.875+8.5 = 6.07 → 6; element 31 (x=23): -8+8.5 = 0.5 → 0
        Assert.Equal(6, b[2 + 15] & 0xF);
        Assert.Equal(0, b[2 + 15] >> 4);
    }

    [Fact]
    public void Bf16RoundsToNearestEven()
    {
        Assert.Equal(0x3F80, Numerics.F32ToBf16(1.0f));
        // 1 + 2^-8 is exactly halfway between bf16 1.0 (0x3F80) and 1.0078125 (0x3F81): ties go to even (0x3F80)
        Assert.Equal(0x3F80, Numerics.F32ToBf16(BitConverter.Int32BitsToSingle(0x3F808000)));
        // just above halfway rounds up
        Assert.Equal(0x3F81, Numerics.F32ToBf16(BitConverter.Int32BitsToSingle(0x3F808001)));
        // 0x3F818000 is halfway between 0x3F81 (odd) and 0x3F82: ties to even → 0x3F82
        Assert.Equal(0x3F82, Numerics.F32ToBf16(BitConverter.Int32BitsToSingle(0x3F818000)));
        Assert.True(float.IsNaN(Numerics.Bf16ToF32(Numerics.F32ToBf16(float.NaN))));
    }

    [Theory]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    public void RoundTripErrorStaysWithinTheTypesBound(GgmlType type)
    {
        var rng = new Random(7);
        const int n = 32 * 200;
        var x = Ramp(n, _ => (float)(rng.NextDouble() * 2 - 1) * (float)Math.Pow(10, rng.Next(-3, 3)));
        var bytes = new byte[GgmlTypes.RowBytes(type, n)];
        Quantizer.EncodeRow(type, x, bytes);
        var y = new float[n];
        Quantizer.DecodeRow(type, bytes, y);
        for (int blk = 0; blk < n / 32; blk++)
        {
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = MathF.Max(amax, MathF.Abs(x[blk * 32 + i]));
            for (int i = 0; i < 32; i++)
            {
                int k = blk * 32 + i;
                float err = MathF.Abs(y[k] - x[k]);
                float bound = type switch
                {
                    // half precision: 11-bit significand → relative 2^-11 (plus subnormal floor)
                    GgmlType.F16 => MathF.Abs(x[k]) * 4.9e-4f + 6e-8f,
                    GgmlType.BF16 => MathF.Abs(x[k]) * 3.91e-3f,
                    // half a quantization step (amax/127/2), plus the f16 rounding of the scale applied to up to 127 steps
                    GgmlType.Q8_0 => amax / 254f * 1.001f + amax * 4.9e-4f,
                    // steps of amax/8: at most half a step, except the clamp at +7 which can cost a full step
                    GgmlType.Q4_0 => amax / 8f * 1.001f + amax * 4.9e-4f,
                    _ => 0,
                };
                Assert.True(err <= bound, $"{type} block {blk} elem {i}: |{y[k]} - {x[k]}| = {err} > {bound}");
            }
        }
    }

    [Fact]
    public void ZeroBlocksEncodeToZero()
    {
        var x = new float[64];
        foreach (var t in new[] { GgmlType.Q8_0, GgmlType.Q4_0 })
        {
            var b = new byte[GgmlTypes.RowBytes(t, 64)];
            Quantizer.EncodeRow(t, x, b);
            var y = new float[64];
            Quantizer.DecodeRow(t, b, y);
            Assert.All(y, v => Assert.Equal(0f, v));
        }
    }

    [Fact]
    public void RowsThatAreNotWholeBlocksFallBackToF16()
    {
        Assert.Equal(GgmlType.Q4_0, GgmlTypes.FitRow(GgmlType.Q4_0, 4096));
        Assert.Equal(GgmlType.F16, GgmlTypes.FitRow(GgmlType.Q4_0, 100));
        Assert.Equal(GgmlType.F16, GgmlTypes.FitRow(GgmlType.Q8_0, 48));
        Assert.Equal(GgmlType.BF16, GgmlTypes.FitRow(GgmlType.BF16, 7));
        Assert.Throws<ArgumentException>(() => GgmlTypes.RowBytes(GgmlType.Q8_0, 33));
    }
}
