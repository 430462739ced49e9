using System.CommandLine;
using System.Runtime.InteropServices;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Model.Conversion;

namespace XlstmRun.Cli.Commands;

/// <summary>
/// `quantize IN.gguf OUT.gguf TYPE`, llama-quantize's shape: a GGUF model rewritten with its matrices at another
/// weight type. Each tensor is decoded to float32 rows and streamed through the same writer as `convert` (same type
/// rules, same quantizers), so quantizing the F32 file of a checkpoint gives the bytes `convert --type` gives.
/// </summary>
internal static class QuantizeCommand
{
    public static readonly string Notes =
        $"Types: {GgmlTypes.NameList()} (any case). Norms, gate weights and biases stay f32; a matrix whose rows are not\n" +
        "  whole 32-blocks falls back to f16, as convert does. Metadata (tokenizer, name) is copied; general.file_type is set.\n" +
        "From f32, f16 or bf16 weights any type can be made. Back up to f32 is always exact. From q8_0/q4_0 weights to\n" +
        "  another type (not f32) quantizes twice and loses more than quantizing the original: it needs --allow-requantize.\n" +
        "The result is bit for bit what 'convert --type' writes from the checkpoint the f32 file came from.\n" +
        "Memory stays small whatever the model size: rows are streamed (the input is read through a file mapping whose\n" +
        "  pages are released as they are read). The output is written to OUTPUT.tmp and renamed at the end.";

    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "GGUF model to read" };
        var output = new Argument<string>("output") { Description = "GGUF file to write" };
        var type = new Argument<string>("type") { Description = $"Weight type of the matrices: {GgmlTypes.NameList()}" };
        var force = new Option<bool>("--force") { Description = "Overwrite the output file if it exists" };
        var allow = new Option<bool>("--allow-requantize") { Description = "Allow quantizing q8_0/q4_0 weights to another type than f32 (loses quality twice)" };
        var threads = new Option<int>("--threads", "-t") { Description = "Threads for quantization (0 = all cores)", HelpName = "N" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "No progress output" };
        var cmd = new Command("quantize", $"Rewrite a GGUF model at another weight type ({GgmlTypes.NameList()}), like llama-quantize.")
        {
            input, output, type, force, allow, threads, quiet,
        };
        HelpNotes.Add(cmd, Notes);
        cmd.SetAction(pr => Program.Run(() =>
        {
            string inPath = pr.GetValue(input)!, outPath = pr.GetValue(output)!;
            var wanted = GgmlTypes.Parse(pr.GetValue(type)!);
            if (pr.GetValue(threads) < 0) throw new BadInputException("-t must be 0 (all cores) or more");
            if (outPath == "-") throw new BadInputException("quantize writes a file (the model is renamed into place at the end): give a file name");
            if (File.Exists(outPath) && Path.GetFullPath(outPath) == Path.GetFullPath(inPath))
                throw new BadInputException($"{outPath}: the output is the input; write to another file");
            using var src = GgufFile.Open(inPath);
            var cfg = ModelConfig.FromGguf(src);
            OutputPath.Check(outPath, pr.GetValue(force));
            var layout = TensorNames.All(cfg).ToList();
            var known = layout.Select(t => t.Name).ToHashSet();
            foreach (var n in src.TensorNames)
                if (!known.Contains(n)) throw new BadInputException($"{inPath}: tensor '{n}' is not part of the xlstm layout");
            CheckTypes(src, inPath, layout, wanted, pr.GetValue(allow));

            var progress = pr.GetValue(quiet) ? null : new ConsoleProgress("quantize");
            ModelWriter.Write(outPath, cfg, wanted, name => new GgufRows(src.Tensor(name)), w => CopyMetadata(src, w), progress, pr.GetValue(threads));
            progress?.Done();
            if (!pr.GetValue(quiet))
                Console.Error.WriteLine($"wrote {outPath}: {GgmlTypes.Name(wanted)}, {Units.Bytes(new FileInfo(outPath).Length)} (from {Units.Bytes(new FileInfo(inPath).Length)} {MainType(src, layout)})");
            return ExitCodes.Ok;
        }));
        return cmd;
    }

    /// <summary>Whether the file starts with the GGUF magic.</summary>
    public static bool IsGguf(string path)
    {
        try
        {
            using var f = File.OpenRead(path);
            Span<byte> magic = stackalloc byte[4];
            return f.ReadAtLeast(magic, 4, throwOnEndOfStream: false) == 4 && magic.SequenceEqual("GGUF"u8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Refuses what would lose quality twice (quantized weights to another type than f32) unless allowed, and no-ops.</summary>
    private static void CheckTypes(GgufFile src, string path, List<(string Name, long[] Shape, bool Quantizable)> layout, GgmlType wanted, bool allowRequantize)
    {
        bool changes = false;
        foreach (var (name, shape, quantizable) in layout)
        {
            var t = src.Tensor(name);
            var to = ModelWriter.TypeFor(wanted, quantizable, shape[^1]);
            if (to != t.Type) changes = true;
            bool quantized = GgmlTypes.IsQuantized(t.Type);
            if (quantized && to != t.Type && to != GgmlType.F32 && !allowRequantize)
                throw new BadInputException($"{path}: its weights are already {GgmlTypes.Name(t.Type)}; making {GgmlTypes.Name(to)} of them loses quality twice " +
                                            "(quantize the f32/f16/bf16 model instead, or pass --allow-requantize)");
        }
        if (!changes) throw new BadInputException($"{path}: already {MainType(src, layout)}: nothing to do");
    }

    /// <summary>The type of most matrix bytes (the embedding aside), as a name.</summary>
    private static string MainType(GgufFile f, List<(string Name, long[] Shape, bool Quantizable)> layout) =>
        GgmlTypes.Name(layout.Where(t => t.Quantizable && t.Name != TensorNames.TokenEmbd).Select(t => f.Tensor(t.Name))
            .GroupBy(t => t.Type).OrderByDescending(g => g.Sum(t => t.Bytes)).First().Key);

    /// <summary>Every key of the input the writer has not set itself, in the input's order (type, alignment and the
    /// architecture keys are the writer's).</summary>
    private static void CopyMetadata(GgufFile src, GgufWriter w)
    {
        foreach (var (key, value) in src.Metadata.Values)
        {
            if (key is "general.file_type" or "general.quantization_version" or "general.alignment" || w.Has(key)) continue;
            w.AddValue(key, value);
        }
    }

    /// <summary>A GGUF tensor as float32 rows; the mapped pages of the rows read so far are released as it goes.</summary>
    private sealed unsafe class GgufRows(TensorView t) : IRowSource
    {
        private const long Page = 4096;
        private long _released = (long)t.Data; // the address below which this tensor's whole pages are released

        public long Rows => t.Rows;
        public int Cols => (int)t.Cols;

        public void Read(long row, int count, Span<float> dst)
        {
            int cols = Cols;
            for (int i = 0; i < count; i++) t.DecodeRow(row + i, dst.Slice(i * cols, cols));
            Release((long)t.Data + (row + count) * t.RowBytes);
        }

        [DllImport("libc", EntryPoint = "madvise")]
        private static extern int Madvise(void* addr, nuint len, int advice);

        /// <summary>Drops the pages up to <paramref name="end"/> from this process (they stay in the page cache), so
        /// the resident memory stays at one batch of rows however large the tensor or the model.</summary>
        private void Release(long end)
        {
            if (!OperatingSystem.IsLinux()) return;
            long a = (_released + Page - 1) / Page * Page, b = end / Page * Page; // whole pages inside the tensor only
            if (b <= a) return;
            Madvise((void*)a, (nuint)(b - a), 4 /* MADV_DONTNEED */);
            _released = b;
        }
    }
}
