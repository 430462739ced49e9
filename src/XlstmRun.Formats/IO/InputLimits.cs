namespace XlstmRun.Formats.IO;

/// <summary>The kinds of input the program reads; each has one size limit in <see cref="InputLimits"/>.</summary>
public enum InputKind
{
    /// <summary>A GGUF file's header: metadata and tensor infos (the tensor data is mapped, never read into memory).</summary>
    GgufHeader,
    /// <summary>The JSON header of a safetensors file.</summary>
    SafetensorsHeader,
    /// <summary>A checkpoint's config.json.</summary>
    ConfigJson,
    /// <summary>model.safetensors.index.json of a sharded checkpoint.</summary>
    SafetensorsIndex,
    /// <summary>A Hugging Face tokenizer.json.</summary>
    TokenizerJson,
    /// <summary>Prompt text: -f FILE or standard input.</summary>
    PromptText,
    /// <summary>--ids-file, or ids piped to detokenize.</summary>
    IdsFile,
    /// <summary>A text scored by perplexity.</summary>
    PerplexityText,
    /// <summary>A batch JSONL input file, read line by line.</summary>
    BatchFile,
    /// <summary>One line of a batch JSONL input.</summary>
    BatchLine,
}

/// <summary>
/// The one table of input limits. Every input is read with a bound: the reader stops at the limit and reports it,
/// so no input (a huge file, /dev/zero, an endless pipe) can make the program read or allocate without end.
/// The limits are far above any real file of the kind (figures in the comments) and far below the machine's memory.
/// Model tensors are memory-mapped, not read, and state files must have the exact size their model implies; both are
/// bounded by the checks in their readers, not here.
/// </summary>
public static class InputLimits
{
    public const long MiB = 1L << 20;

    public static long MaxBytes(InputKind kind) => kind switch
    {
        InputKind.GgufHeader => 64 * MiB,         // xLSTM 7B with its tokenizer: 2 MB; a 256k-token vocabulary: ~10 MB
        InputKind.SafetensorsHeader => 64 * MiB,  // xLSTM 7B: ~60 KB per shard (the format's own tools cap it at 100 MB)
        InputKind.ConfigJson => 16 * MiB,         // ~2 KB
        InputKind.SafetensorsIndex => 64 * MiB,   // ~40 KB
        InputKind.TokenizerJson => 64 * MiB,      // GPT-NeoX: 2 MB; Gemma 3: ~33 MB
        InputKind.PromptText => 64 * MiB,         // ~16 M tokens
        InputKind.IdsFile => 64 * MiB,            // ~10 M ids
        InputKind.PerplexityText => 256 * MiB,    // wikitext-2 test: 1.3 MB
        InputKind.BatchFile => 4096 * MiB,        // read line by line, so only the line limit matters for memory
        InputKind.BatchLine => 16 * MiB,          // one request: a long prompt
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>Most items of one GGUF metadata array (a 256k-token vocabulary has 256k; its merges ~500k).</summary>
    public const long MaxGgufArrayItems = 16L << 20;

    /// <summary>Most tensors in a GGUF file or safetensors header (xLSTM 7B: 291 in GGUF, ~580 in the checkpoint).</summary>
    public const long MaxTensors = 1 << 20;

    /// <summary>Most metadata key/value pairs in a GGUF file.</summary>
    public const long MaxGgufMetadata = 1 << 20;

    public static string Describe(long bytes) => bytes >= MiB ? $"{bytes / MiB} MiB" : $"{bytes} bytes";
}
