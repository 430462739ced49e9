using System.Runtime.InteropServices;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;

namespace XlstmRun.Backends.Vulkan;

/// <summary>Float32 activations [Rows, Cols] in a device buffer, row stride a multiple of 4 floats (16-byte aligned rows).
/// Offset and Stride are in floats.</summary>
public sealed class VkTensor : ITensor
{
    public VkTensor(VkBuf buf, long offset, int rows, int cols, int stride) { Buf = buf; Offset = offset; Rows = rows; Cols = cols; Stride = stride; }
    public VkBuf Buf { get; }
    public long Offset { get; }
    public int Rows { get; }
    public int Cols { get; }
    public int Stride { get; }
    public static int StrideFor(int cols) => (cols + 3) & ~3;
}

/// <summary>Rows [RowStart, RowStart + RowCount) of a weight, in one buffer (see shaders/weights.glsl for the layout).</summary>
public sealed class WeightPart
{
    public required VkBuf Buf { get; init; }
    public required int RowStart { get; init; }
    public required int RowCount { get; init; }
    /// <summary>uvec4 units per row (F32/F16/BF16) or blocks per row (Q8_0/Q4_0).</summary>
    public required uint WStride { get; init; }
    /// <summary>Index (in halves) of the first scale (Q8_0/Q4_0).</summary>
    public required uint ScaleBase { get; init; }
}

public sealed class VkWeight : IWeight
{
    public required string Name { get; init; }
    public required GgmlType Type { get; init; }
    /// <summary>Type of the device copy: vectors (Rows = 1) are decoded to F32, matrices keep their type.</summary>
    public required GgmlType DevType { get; init; }
    public required int Rows { get; init; }
    public required int Cols { get; init; }
    public required WeightPart[] Parts { get; init; }
    /// <summary>Shader spec constant WTYPE.</summary>
    public uint WType => WeightLayout.WType(DevType);
    /// <summary>Every value survives rounding to f16 (|v| within f16's range, no non-zero value below its smallest
    /// subnormal): the tensor-core GEMM may take this weight (docs/precision.md).</summary>
    public bool F16Safe { get; init; } = true;
}

public sealed class VkTokens : ITokenBuffer
{
    public VkTokens(VkBuf buf, int capacity) { Buf = buf; Capacity = capacity; }
    public VkBuf Buf { get; }
    public int Capacity { get; }
}

public sealed class VkIndices : IIndexBuffer
{
    public VkIndices(VkBuf buf, int capacity) { Buf = buf; Capacity = capacity; }
    public VkBuf Buf { get; }
    public int Capacity { get; }
}

/// <summary>The recurrent state: per block the flat layout C, n, m (as in state files), blocks at a 256-byte aligned stride
/// so that each block can be bound on its own. A multi-sequence state holds <see cref="Slots"/> such states, slot after
/// slot, in as many buffers as the allocation limit needs (<see cref="Groups"/>); a one-sequence state (or a slot's view)
/// is the range [<see cref="Base"/>, Base + SlotStride) of <see cref="Buf"/>.</summary>
public sealed class VkState : IStateBuffer
{
    public VkState(ModelConfig c, ulong blockStride, (VkBuf Buf, int First, int Count)[] groups, int slots)
    {
        Config = c;
        BlockStride = blockStride;
        Groups = groups;
        Slots = slots;
        Buf = groups[0].Buf;
    }

    private VkState(VkState all, VkBuf buf, ulong bas, int slot)
    {
        Config = all.Config;
        BlockStride = all.BlockStride;
        Slots = 1;
        Buf = buf;
        Base = bas;
        Groups = [(buf, slot, 1)];
    }

    public ModelConfig Config { get; }
    public int Slots { get; }
    public ulong BlockStride { get; }
    public ulong SlotStride => BlockStride * (ulong)Config.Blocks;
    public ulong BlockBytes => (ulong)Config.StateFloatsPerBlock * 4;
    /// <summary>Buffers holding the slots: slots First .. First + Count − 1 of each, from offset 0.</summary>
    public (VkBuf Buf, int First, int Count)[] Groups { get; }
    /// <summary>One sequence (Slots = 1): its buffer and byte offset.</summary>
    public VkBuf Buf { get; }
    public ulong Base { get; }

    public static ulong StrideFor(ModelConfig c) => ((ulong)c.StateFloatsPerBlock * 4 + 255) & ~255UL;

    public VkState Slot(int slot)
    {
        if ((uint)slot >= (uint)Slots) throw new ArgumentOutOfRangeException(nameof(slot));
        if (Slots == 1) return this;
        foreach (var g in Groups)
            if (slot >= g.First && slot < g.First + g.Count) return new VkState(this, g.Buf, (ulong)(slot - g.First) * SlotStride, slot);
        throw new ArgumentOutOfRangeException(nameof(slot));
    }
}

/// <summary>Device layouts of weights and the host-side repacking into them.</summary>
public static unsafe class WeightLayout
{
    /// <summary>The WTYPE specialisation constant: the type's index in the weight-type table (= WT_* in shaders/weights.glsl).</summary>
    public static uint WType(GgmlType t) => (uint)GgmlTypes.Info(t).Index;

    /// <summary>Bytes of the quantized values of one block (the scale is stored apart on the device).</summary>
    public static int QuantBytes(GgmlType t) => GgmlTypes.Info(t).QuantBytes;
    public static int Pad8(int cols) => (cols + 7) & ~7;

    /// <summary>Bytes of the main (element or quant) region per row.</summary>
    public static long MainRowBytes(GgmlType t, int cols)
    {
        var info = GgmlTypes.Info(t);
        return info.Quantized ? cols / info.BlockSize * (long)info.QuantBytes : Pad8(cols) * (long)info.ElementBytes;
    }

    /// <summary>Bytes of the scale region per row (quant types).</summary>
    public static long ScaleRowBytes(GgmlType t, int cols)
    {
        var info = GgmlTypes.Info(t);
        return cols / info.BlockSize * (long)info.ScaleBytes;
    }

    public static ulong PartBytes(GgmlType t, int cols, int rows) =>
        (ulong)(MainRowBytes(t, cols) * rows) + (((ulong)(ScaleRowBytes(t, cols) * rows) + 15) & ~15UL);

    public static uint WStride(GgmlType t, int cols) =>
        GgmlTypes.IsQuantized(t) ? (uint)(cols / GgmlTypes.BlockSize(t)) : (uint)(MainRowBytes(t, cols) / 16);

    /// <summary>Rows per part so that no part's buffer exceeds <paramref name="maxBytes"/>.</summary>
    public static int RowsPerPart(GgmlType t, int cols, int rows, ulong maxBytes)
    {
        ulong perRow = (ulong)(MainRowBytes(t, cols) + ScaleRowBytes(t, cols));
        ulong fit = (maxBytes - 16) / perRow;
        if (fit == 0) throw new InvalidOperationException($"one row of {cols} {t} elements exceeds the device's storage-buffer range");
        return (int)Math.Min((ulong)rows, fit);
    }

    /// <summary>Write the main region of rows [r0, r1) (tensor rows) to dst. src is the GGUF tensor data (or decoded F32 for vectors).</summary>
    public static void FillMain(GgmlType t, byte* src, long srcRowBytes, int cols, int r0, int r1, byte* dst)
    {
        long mrb = MainRowBytes(t, cols);
        var info = GgmlTypes.Info(t);
        int nb = cols / info.BlockSize, bb = info.BlockBytes, sb = info.ScaleBytes, qb = info.QuantBytes;
        Parallel.For(r0, r1, new ParallelOptions { MaxDegreeOfParallelism = (r1 - r0) >= 64 ? Environment.ProcessorCount : 1 }, r =>
        {
            byte* s = src + r * srcRowBytes;
            byte* d = dst + (r - r0) * mrb;
            if (!info.Quantized)
            {
                System.Buffer.MemoryCopy(s, d, mrb, srcRowBytes);
                new Span<byte>(d + srcRowBytes, (int)(mrb - srcRowBytes)).Clear();
            }
            else
            {
                // the quantized values of each block, without its scale (FillScales writes those)
                for (int b = 0; b < nb; b++) System.Buffer.MemoryCopy(s + (long)bb * b + sb, d + (long)qb * b, qb, qb);
            }
        });
    }

    /// <summary>
    /// Whether every value of the weight survives rounding to f16 in the GEMM's operand tiles: finite, |v| ≤ 65504, and
    /// no non-zero |v| below f16's smallest subnormal (2^-24), which would become 0. F16 weights always fit; BF16 (and
    /// F32, not used by that GEMM) are scanned; Q8_0/Q4_0 values are d·q with |q| ≤ 127 (or 8): the scales decide.
    /// </summary>
    public static bool FitsF16(GgmlType t, byte* src, long srcRowBytes, int cols, int rows)
    {
        const float Max = 65504f, Min = 5.9604645e-8f;
        static bool Ok(float a) => a == 0f || a >= Min && a <= Max;   // a = |v|; NaN fails
        int bad = 0;
        switch (t)
        {
            case GgmlType.F16:
                return true;
            case GgmlType.BF16:
            case GgmlType.F32:
                Parallel.For(0, rows, (r, st) =>
                {
                    byte* s = src + r * srcRowBytes;
                    for (int i = 0; i < cols; i++)
                    {
                        float v = t == GgmlType.F32 ? ((float*)s)[i] : BitConverter.Int32BitsToSingle(((ushort*)s)[i] << 16);
                        if (!Ok(MathF.Abs(v))) { Interlocked.Exchange(ref bad, 1); st.Stop(); return; }
                    }
                });
                return bad == 0;
            case var _ when GgmlTypes.IsQuantized(t):
            {
                var info = GgmlTypes.Info(t);
                int nb = cols / info.BlockSize, bb = info.BlockBytes;
                float qmax = info.QuantMax;
                Parallel.For(0, rows, (r, st) =>
                {
                    byte* s = src + r * srcRowBytes;
                    for (int b = 0; b < nb; b++)
                    {
                        float d = MathF.Abs((float)BitConverter.UInt16BitsToHalf(*(ushort*)(s + bb * b)));
                        if (!float.IsFinite(d) || d * qmax > Max) { Interlocked.Exchange(ref bad, 1); st.Stop(); return; }
                    }
                });
                return bad == 0;
            }
            default:
                return true;
        }
    }

    /// <summary>Write the f16 scales of rows [r0, r1) to dst (quant types).</summary>
    public static void FillScales(GgmlType t, byte* src, long srcRowBytes, int cols, int r0, int r1, byte* dst)
    {
        int nb = cols / GgmlTypes.BlockSize(t), bb = GgmlTypes.BlockBytes(t);
        Parallel.For(r0, r1, new ParallelOptions { MaxDegreeOfParallelism = (r1 - r0) >= 256 ? Environment.ProcessorCount : 1 }, r =>
        {
            byte* s = src + r * srcRowBytes;
            ushort* d = (ushort*)(dst + (long)(r - r0) * nb * 2);
            for (int b = 0; b < nb; b++) d[b] = *(ushort*)(s + bb * b);
        });
    }
}
