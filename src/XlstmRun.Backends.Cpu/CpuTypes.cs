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
        string role = view.Name.StartsWith("blk.", StringComparison.Ordinal) && view.Name.IndexOf('.', 4) is int dot and > 0 ? view.Name[(dot + 1)..] : view.Name;
        if (role.EndsWith(".weight", StringComparison.Ordinal)) role = role[..^7];
        ProfileMatVec = $"matvec {role} {GgmlTypes.Name(view.Type)}";
        ProfileMatMul = $"matmul {role} {GgmlTypes.Name(view.Type)}";
        // Vectors (norm weights, biases) are decoded once to float; matrices are read in place or from a packed copy.
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

    /// <summary>Matrix products read this copy (8-row interleaved, <see cref="PackedRef"/>) instead of the mapped rows, when set.</summary>
    public PackedRef Packed { get; private set; }
    public bool IsPacked { get; private set; }
    private byte* _packedMem;
    private long _packedBytes;

    /// <summary>Profile classes of this weight's products, e.g. "matvec ffn_down q4_0" (one token) and "matmul ffn_down q4_0".</summary>
    public string ProfileMatVec { get; } = "";
    public string ProfileMatMul { get; } = "";

    internal void SetPacked(byte* mem, long bytes)
    {
        _packedMem = mem;
        _packedBytes = bytes;
        Packed = new PackedRef(mem, Type, Rows, Cols);
        IsPacked = true;
    }

    internal void FreePacked()
    {
        if (!IsPacked) return;
        IsPacked = false;
        Packed = default;
        NativePages.Free(_packedMem, _packedBytes);
        _packedMem = null;
    }
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

/// <summary>
/// The recurrent state in native memory on 2 MB pages where the kernel allows (the decode step reads and writes all of
/// it every token: 128 MiB for 7B). Freed by <see cref="Dispose"/> (the backend disposes the states it made).
/// </summary>
public sealed unsafe class CpuState : IStateBuffer, IDisposable
{
    private readonly CpuState? _owner;
    private readonly long _bytes;
    private float* _ptr;

    /// <summary>The state of <paramref name="slots"/> sequences (zeros), one after the other.</summary>
    public CpuState(ModelConfig c, int slots = 1)
    {
        if (slots < 1) throw new ArgumentOutOfRangeException(nameof(slots));
        Config = c;
        Slots = slots;
        Offset = 0;
        Length = checked((int)(c.StateFloats * slots));
        _bytes = (long)Length * 4;
        _ptr = (float*)NativePages.AllocHuge(_bytes);
        Span.Clear();
    }

    private CpuState(CpuState all, int slot)
    {
        _owner = all;
        Config = all.Config;
        Slots = 1;
        Offset = checked((int)(slot * all.Config.StateFloats));
        Length = checked((int)all.Config.StateFloats);
    }

    /// <summary>Slot <paramref name="slot"/> as a one-sequence state (same storage, valid while this state is).</summary>
    public CpuState Slot(int slot)
    {
        if ((uint)slot >= (uint)Slots) throw new ArgumentOutOfRangeException(nameof(slot));
        return Slots == 1 ? this : new CpuState(this, slot);
    }

    public ModelConfig Config { get; }
    public int Slots { get; }
    /// <summary>Offset of this state in its owner's storage, in floats (a slot view's; 0 for the owner).</summary>
    public int Offset { get; }
    public int Length { get; }

    public float* Ptr
    {
        get
        {
            float* p = _owner != null ? _owner._ptr : _ptr;
            return p == null ? throw new ObjectDisposedException(nameof(CpuState)) : p + Offset;
        }
    }

    public Span<float> Span => new(Ptr, Length);

    /// <summary>Free the storage (the owner's; a slot view owns nothing).</summary>
    public void Dispose()
    {
        if (_owner != null || _ptr == null) return;
        NativePages.Free((byte*)_ptr, _bytes);
        _ptr = null;
    }
}
