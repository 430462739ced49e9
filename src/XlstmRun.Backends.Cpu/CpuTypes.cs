using XlstmRun.Backends.Cpu.Kernels;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;

namespace XlstmRun.Backends.Cpu;

/// <summary>Activation storage: a window of rows of a shared float array (pinned, so kernels take its address once).</summary>
public sealed unsafe class CpuTensor : ITensor
{
    public CpuTensor(float[] data, int offset, int rows, int cols)
    {
        Data = data; Offset = offset; Rows = rows; Cols = cols;
        // Arrays from CpuBackend.Alloc live on the pinned object heap; the address is stable.
        Ptr = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(data)) + offset;
    }
    public float[] Data { get; }
    public int Offset { get; }
    public int Rows { get; }
    public int Cols { get; }
    /// <summary>Address of element [0, 0] of this view.</summary>
    public float* Ptr { get; }
    public float* RowPtr(int r) => Ptr + (long)r * Cols;
    public Span<float> Row(int r) => Data.AsSpan(Offset + r * Cols, Cols);
    public Span<float> Span => Data.AsSpan(Offset, Rows * Cols);
}

/// <summary>A weight read in place from the mapped GGUF file.</summary>
public sealed unsafe class CpuWeight : IWeight
{
    public CpuWeight(TensorView view)
    {
        View = view;
        Rows = checked((int)(view.Elements / view.Cols));
        Cols = (int)view.Cols;
        RowBytes = (int)view.RowBytes;
        Ref = new WeightRef(view.Data, view.Type, Rows, Cols);
        // Vectors (norm weights, biases) are decoded once to float; matrices are only ever read in place.
        if (Rows == 1)
        {
            Floats = GC.AllocateArray<float>(Cols, pinned: true);
            view.DecodeRow(0, Floats);
            FloatPtr = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref Floats[0]);
        }
    }

    public TensorView View { get; }
    public WeightRef Ref { get; }
    public string Name => View.Name;
    public GgmlType Type => View.Type;
    public int Rows { get; }
    public int Cols { get; }
    public int RowBytes { get; }
    public byte* Data => View.Data;
    /// <summary>Vectors as floats (pinned); null for matrices.</summary>
    public float[]? Floats { get; }
    public float* FloatPtr { get; }
    public long Bytes => (long)RowBytes * Rows;
    public ReadOnlySpan<byte> RowSpan(int r) => new(View.Data + (long)r * RowBytes, RowBytes);
}

public sealed class CpuTokens : ITokenBuffer
{
    public CpuTokens(int n) { Ids = new int[n]; }
    public int[] Ids { get; }
    public int Count { get; set; }
    public int Capacity => Ids.Length;
}

public sealed class CpuIndices : IIndexBuffer
{
    public CpuIndices(int n) { Values = new int[n]; }
    public int[] Values { get; }
    public int Capacity => Values.Length;
}

public sealed unsafe class CpuState : IStateBuffer
{
    /// <summary>The state of <paramref name="slots"/> sequences (zeros), one after the other.</summary>
    public CpuState(ModelConfig c, int slots = 1)
    {
        Config = c;
        Slots = slots;
        Data = GC.AllocateArray<float>(checked((int)(c.StateFloats * slots)), pinned: true);
        Offset = 0;
        Length = Data.Length;
    }

    private CpuState(CpuState all, int slot)
    {
        Config = all.Config;
        Slots = 1;
        Data = all.Data;
        Offset = checked((int)(slot * all.Config.StateFloats));
        Length = checked((int)all.Config.StateFloats);
    }

    /// <summary>Slot <paramref name="slot"/> as a one-sequence state (same storage).</summary>
    public CpuState Slot(int slot)
    {
        if ((uint)slot >= (uint)Slots) throw new ArgumentOutOfRangeException(nameof(slot));
        return Slots == 1 ? this : new CpuState(this, slot);
    }

    public ModelConfig Config { get; }
    public int Slots { get; }
    /// <summary>The storage (shared with the other slots' views); this state is <see cref="Span"/> of it.</summary>
    public float[] Data { get; }
    public int Offset { get; }
    public int Length { get; }
    public Span<float> Span => Data.AsSpan(Offset, Length);
    public float* Ptr => (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref Data[Offset]);
}
