using System.Runtime.InteropServices;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Formats.Quant;

namespace XlstmRun.Tests.Support;

/// <summary>Float values encoded as a GGUF weight type in native memory (as if mapped from a file), viewed as GGUF
/// tensors; the memory lives until <see cref="Dispose"/>.</summary>
public sealed unsafe class EncodedWeights : IDisposable
{
    private readonly List<nint> _native = new();

    /// <summary>A [rows, cols] weight (a vector of cols when <paramref name="vector"/>) holding <paramref name="values"/>
    /// encoded as <paramref name="type"/>; named w1, w2, ... in order.</summary>
    public TensorView Encode(GgmlType type, int rows, int cols, float[] values, bool vector = false)
    {
        long rowBytes = GgmlTypes.RowBytes(type, cols);
        long bytes = rowBytes * rows;
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 64), 64);
        _native.Add((nint)p);
        for (int r = 0; r < rows; r++) Quantizer.EncodeRow(type, values.AsSpan(r * cols, cols), new Span<byte>(p + r * rowBytes, (int)rowBytes));
        long[] ne = vector ? [cols] : [cols, rows];
        return new TensorView($"w{_native.Count}", type, ne, p, bytes);
    }

    public void Dispose()
    {
        foreach (var p in _native) NativeMemory.AlignedFree((void*)p);
        _native.Clear();
    }
}
