using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;

namespace XlstmRun.Backends.Cpu;

/// <summary>Activation storage: a window of rows of a shared float array.</summary>
public sealed class CpuTensor : ITensor
{
    public CpuTensor(float[] data, int offset, int rows, int cols) { Data = data; Offset = offset; Rows = rows; Cols = cols; }
    public float[] Data { get; }
    public int Offset { get; }
    public int Rows { get; }
    public int Cols { get; }
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
        // Small F32 vectors (norm weights, biases) are decoded once for convenience.
        if (Rows == 1 || view.Type == GgmlType.F32) Floats = view.Type == GgmlType.F32 ? new ReadOnlySpan<float>(view.Data, (int)view.Elements).ToArray() : view.ToFloatArray();
    }

    public TensorView View { get; }
    public string Name => View.Name;
    public GgmlType Type => View.Type;
    public int Rows { get; }
    public int Cols { get; }
    public int RowBytes { get; }
    public byte* Data => View.Data;
    /// <summary>Whole tensor as floats, for F32 tensors and vectors; null otherwise.</summary>
    public float[]? Floats { get; }
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

public sealed class CpuState : IStateBuffer
{
    public CpuState(ModelConfig c) { Config = c; Data = new float[c.StateFloats]; }
    public ModelConfig Config { get; }
    public float[] Data { get; }
}
