using XlstmRun.Formats;
using XlstmRun.Model;

namespace XlstmRun.Backends.OpenCL;

/// <summary>A window of rows of a float32 device buffer (offset in floats).</summary>
public sealed class ClTensor : ITensor
{
    internal ClTensor(nint buffer, int offset, int rows, int cols) { Buffer = buffer; Offset = offset; Rows = rows; Cols = cols; }
    internal nint Buffer { get; }
    public int Offset { get; }
    public int Rows { get; }
    public int Cols { get; }
}

/// <summary>One device buffer holding rows [Row0, Row0 + Rows) of a weight, in its GGUF encoding.</summary>
internal readonly record struct ClWeightPart(nint Buffer, int Row0, int Rows);

/// <summary>
/// A weight on the device: the raw GGUF rows split into parts no larger than the device's maximum allocation, and for
/// vectors (norm weights, biases) a float32 copy. <see cref="KernelType"/> is the encoding the kernels read.
/// </summary>
public sealed class ClWeight : IWeight
{
    internal ClWeight(string name, GgmlType type, GgmlType kernelType, int rows, int cols, long rowBytes, ClWeightPart[] parts, nint floats)
    {
        Name = name; Type = type; KernelType = kernelType; Rows = rows; Cols = cols; RowBytes = rowBytes; Parts = parts; Floats = floats;
    }
    public string Name { get; }
    public GgmlType Type { get; }
    public GgmlType KernelType { get; }
    public int Rows { get; }
    public int Cols { get; }
    public long RowBytes { get; }
    internal ClWeightPart[] Parts { get; }
    /// <summary>Float32 copy of a vector weight (Rows = 1), else 0.</summary>
    internal nint Floats { get; }
    /// <summary>Number of device buffers the rows were split into.</summary>
    public int PartCount => Parts.Length;
}

public sealed class ClTokens : ITokenBuffer
{
    internal ClTokens(nint buffer, int capacity) { Buffer = buffer; Capacity = capacity; }
    internal nint Buffer { get; }
    public int Capacity { get; }
    public int Count { get; internal set; }
}

public sealed class ClIndices : IIndexBuffer
{
    internal ClIndices(nint buffer, int capacity) { Buffer = buffer; Capacity = capacity; }
    internal nint Buffer { get; }
    public int Capacity { get; }
}

public sealed class ClState : IStateBuffer
{
    internal ClState(ModelConfig config, nint buffer) { Config = config; Buffer = buffer; }
    public ModelConfig Config { get; }
    internal nint Buffer { get; }
}
