namespace XlstmRun.Formats;

/// <summary>Tensor element types, numbered as in ggml (so generic GGUF tools can read our files).</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q8_0 = 8,
    BF16 = 30,
}

public static class GgmlTypes
{
    public static bool IsKnown(uint t) => t is 0 or 1 or 2 or 8 or 30;

    /// <summary>Elements per block (1 for plain float types).</summary>
    public static int BlockSize(GgmlType t) => t switch
    {
        GgmlType.Q4_0 or GgmlType.Q8_0 => 32,
        _ => 1,
    };

    /// <summary>Bytes per block.</summary>
    public static int BlockBytes(GgmlType t) => t switch
    {
        GgmlType.F32 => 4,
        GgmlType.F16 or GgmlType.BF16 => 2,
        GgmlType.Q8_0 => 34,
        GgmlType.Q4_0 => 18,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown tensor type"),
    };

    /// <summary>Bytes of one row of <paramref name="n"/> elements; n must be a multiple of the block size.</summary>
    public static long RowBytes(GgmlType t, long n)
    {
        int bs = BlockSize(t);
        if (n % bs != 0) throw new ArgumentException($"row of {n} elements is not a multiple of the {t} block size {bs}");
        return n / bs * BlockBytes(t);
    }

    public static string Name(GgmlType t) => t switch
    {
        GgmlType.F32 => "f32",
        GgmlType.F16 => "f16",
        GgmlType.BF16 => "bf16",
        GgmlType.Q8_0 => "q8_0",
        GgmlType.Q4_0 => "q4_0",
        _ => t.ToString(),
    };

    public static GgmlType Parse(string s) => s.ToLowerInvariant() switch
    {
        "f32" => GgmlType.F32,
        "f16" => GgmlType.F16,
        "bf16" => GgmlType.BF16,
        "q8_0" => GgmlType.Q8_0,
        "q4_0" => GgmlType.Q4_0,
        _ => throw new BadInputException($"unknown weight type '{s}' (expected f32, f16, bf16, q8_0 or q4_0)"),
    };

    /// <summary>
    /// The type actually used for a row of <paramref name="rowLength"/> elements when <paramref name="wanted"/> is asked for:
    /// block-quantized types need whole blocks per row; otherwise fall back to F16 (same spirit as llama.cpp's fallbacks).
    /// </summary>
    public static GgmlType FitRow(GgmlType wanted, long rowLength) =>
        rowLength % BlockSize(wanted) == 0 ? wanted : GgmlType.F16;
}
