using System.Runtime.InteropServices;
using XlstmRun.Backends.Cpu.Kernels;
using XlstmRun.Formats;
using XlstmRun.Formats.Quant;

namespace XlstmRun.Tests.Cpu;

/// <summary>A random weight matrix encoded in one of the GGUF types, in unmanaged memory (as if mapped), plus its exact float values.</summary>
public sealed unsafe class TestMatrix : IDisposable
{
    public TestMatrix(GgmlType type, int rows, int cols, int seed, float scale = 1f)
    {
        Type = type; Rows = rows; Cols = cols;
        var rng = new Random(seed);
        long rb = GgmlTypes.RowBytes(type, cols);
        // one spare 64-byte line at the end, so an overrun by a kernel would read garbage into a wrong result, not crash silently elsewhere
        Data = (byte*)NativeMemory.AlignedAlloc((nuint)(rb * rows + 64), 64);
        new Span<byte>(Data + rb * rows, 64).Fill(0x55);
        Values = new float[(long)rows * cols];
        var src = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            for (int k = 0; k < cols; k++) src[k] = (float)(rng.NextDouble() * 2 - 1) * scale;
            var bytes = new Span<byte>(Data + r * rb, (int)rb);
            Quantizer.EncodeRow(type, src, bytes);
            Quantizer.DecodeRow(type, bytes, Values.AsSpan(r * cols, cols));
        }
        Ref = new WeightRef(Data, type, rows, cols);
    }

    public GgmlType Type { get; }
    public int Rows { get; }
    public int Cols { get; }
    public byte* Data { get; }
    /// <summary>The decoded (exact) weights, row-major.</summary>
    public float[] Values { get; }
    public WeightRef Ref { get; }

    /// <summary>Σ_k W[r,k]·x[k] in double, and Σ|W[r,k]·x[k]| (the scale that float rounding errors are measured against).</summary>
    public (double Dot, double Abs) Exact(int r, ReadOnlySpan<float> x)
    {
        double s = 0, a = 0;
        for (int k = 0; k < Cols; k++) { double p = (double)Values[(long)r * Cols + k] * x[k]; s += p; a += Math.Abs(p); }
        return (s, a);
    }

    public void Dispose() => NativeMemory.AlignedFree(Data);
}

/// <summary>Pinned float buffers for kernel arguments.</summary>
public static class Buf
{
    public static float[] Random(int n, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var a = GC.AllocateArray<float>(Math.Max(1, n), pinned: true);
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    public static float[] Zeros(int n) => GC.AllocateArray<float>(Math.Max(1, n), pinned: true);

    public static unsafe float* Ptr(float[] a) => (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(a));
}

public static class Levels
{
    /// <summary>Every float SIMD level this machine can run (always includes Scalar).</summary>
    public static IEnumerable<SimdLevel> Float => Enum.GetValues<SimdLevel>().Where(CpuCaps.Supports);

    /// <summary>Every 8-bit kernel path this machine can run (always includes Scalar).</summary>
    public static IEnumerable<Int8Path> Int8 => Enum.GetValues<Int8Path>().Where(CpuCaps.Supports);
}
