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

/// <summary>
/// The facts about one weight type, in the spirit of ggml's type traits. Every place that needs to know something
/// about a type asks <see cref="GgmlTypes"/> for its row; adding a type starts with one row there
/// (docs/adding-a-weight-type.md).
/// </summary>
/// <param name="Type">The ggml type (its numeric value is the id stored in GGUF tensor records).</param>
/// <param name="Name">Lower-case name used on the command line and in messages (f32, q8_0, …).</param>
/// <param name="Index">Dense number 0..N-1 in table order: array index for per-type tables in backends and the
/// <c>WT_*</c> value of shaders/weights.glsl (the WTYPE specialisation constant of the Vulkan kernels).</param>
/// <param name="BlockSize">Elements per block (1 for plain float types).</param>
/// <param name="BlockBytes">Bytes per block, scale included.</param>
/// <param name="FileType">GGUF <c>general.file_type</c> of a model whose matrices are of this type (llama.cpp's numbering).</param>
/// <param name="ScaleBytes">Bytes of the f16 scale at the start of each block (0 for plain float types).</param>
/// <param name="QuantMax">Largest magnitude of a quantized value before scaling (0 for plain float types): a block
/// decodes to values of at most scale × QuantMax.</param>
public sealed record WeightTypeInfo(GgmlType Type, string Name, int Index, int BlockSize, int BlockBytes, uint FileType,
    int ScaleBytes = 0, float QuantMax = 0)
{
    /// <summary>Block-quantized (a scale per block and small integers), as opposed to a plain float encoding.</summary>
    public bool Quantized => ScaleBytes > 0;
    /// <summary>Bytes of the quantized values of a block (block bytes without the scale).</summary>
    public int QuantBytes => BlockBytes - ScaleBytes;
    /// <summary>Bytes per element of a plain float type (0 for quantized types).</summary>
    public int ElementBytes => Quantized ? 0 : BlockBytes;
}

/// <summary>The weight-type table and the questions the rest of the code asks it.</summary>
public static class GgmlTypes
{
    /// <summary>Every supported weight type, in <see cref="WeightTypeInfo.Index"/> order.</summary>
    public static readonly IReadOnlyList<WeightTypeInfo> All =
    [
        new(GgmlType.F32, "f32", 0, BlockSize: 1, BlockBytes: 4, FileType: 0),
        new(GgmlType.F16, "f16", 1, BlockSize: 1, BlockBytes: 2, FileType: 1),
        new(GgmlType.BF16, "bf16", 2, BlockSize: 1, BlockBytes: 2, FileType: 32),
        new(GgmlType.Q8_0, "q8_0", 3, BlockSize: 32, BlockBytes: 34, FileType: 7, ScaleBytes: 2, QuantMax: 128),
        new(GgmlType.Q4_0, "q4_0", 4, BlockSize: 32, BlockBytes: 18, FileType: 2, ScaleBytes: 2, QuantMax: 8),
    ];

    /// <summary>The block-quantized types, in table order.</summary>
    public static readonly IReadOnlyList<GgmlType> QuantizedTypes = All.Where(i => i.Quantized).Select(i => i.Type).ToArray();

    /// <summary>"f32, f16, bf16, q8_0 or q4_0": the names for help texts and messages.</summary>
    public static string NameList(string lastJoin = "or") =>
        string.Join(", ", All.Take(All.Count - 1).Select(i => i.Name)) + $" {lastJoin} " + All[^1].Name;

    // rows by ggml type id, for constant-time lookups on hot paths
    private static readonly WeightTypeInfo?[] ById = BuildIndex();

    private static WeightTypeInfo?[] BuildIndex()
    {
        var byId = new WeightTypeInfo?[All.Max(i => (int)i.Type) + 1];
        for (int k = 0; k < All.Count; k++)
        {
            if (All[k].Index != k) throw new InvalidOperationException($"weight-type table: {All[k].Name} has index {All[k].Index}, not {k}");
            byId[(int)All[k].Type] = All[k];
        }
        return byId;
    }

    /// <summary>The row of a type; a type outside the table is an error naming it.</summary>
    public static WeightTypeInfo Info(GgmlType t) =>
        (uint)t < (uint)ById.Length && ById[(int)t] is { } i ? i : throw new ArgumentOutOfRangeException(nameof(t), t, "unknown tensor type");

    /// <summary>Whether a GGUF tensor type id is in the table.</summary>
    public static bool IsKnown(uint t) => t < (uint)ById.Length && ById[t] != null;

    public static bool IsQuantized(GgmlType t) => Info(t).Quantized;

    /// <summary>Elements per block (1 for plain float types).</summary>
    public static int BlockSize(GgmlType t) => Info(t).BlockSize;

    /// <summary>Bytes per block.</summary>
    public static int BlockBytes(GgmlType t) => Info(t).BlockBytes;

    /// <summary>Bytes of one row of <paramref name="n"/> elements; n must be a multiple of the block size.</summary>
    public static long RowBytes(GgmlType t, long n)
    {
        int bs = BlockSize(t);
        if (n % bs != 0) throw new ArgumentException($"row of {n} elements is not a multiple of the {Name(t)} block size {bs}");
        return n / bs * BlockBytes(t);
    }

    public static string Name(GgmlType t) => IsKnown((uint)t) ? Info(t).Name : t.ToString();

    /// <summary>A type by name (any case); an unknown name is a bad-input error listing the known ones.</summary>
    public static GgmlType Parse(string s) =>
        All.FirstOrDefault(i => string.Equals(i.Name, s, StringComparison.OrdinalIgnoreCase))?.Type
        ?? throw new BadInputException($"unknown weight type '{s}' (expected {NameList()})");

    /// <summary>
    /// The type actually used for a row of <paramref name="rowLength"/> elements when <paramref name="wanted"/> is asked for:
    /// block-quantized types need whole blocks per row; otherwise fall back to F16 (same spirit as llama.cpp's fallbacks).
    /// </summary>
    public static GgmlType FitRow(GgmlType wanted, long rowLength) =>
        rowLength % BlockSize(wanted) == 0 ? wanted : GgmlType.F16;
}
