using System.CommandLine;
using XlstmRun.Formats;
using XlstmRun.Formats.IO;
using XlstmRun.Formats.Safetensors;
using XlstmRun.Model;
using XlstmRun.Model.Conversion;
using XlstmRun.Text;

namespace XlstmRun.Cli.Commands;

internal static class ConvertCommand
{
    public static Command Create()
    {
        var dir = new Argument<string>("hf-dir") { Description = "Hugging Face checkpoint directory (config.json + model.safetensors or sharded safetensors with model.safetensors.index.json)" };
        var output = new Option<string>("--output", "-o") { Description = "Output GGUF file (- = stdout)", Required = true };
        var type = new Option<string>("--type") { Description = $"Weight type of the matrices: {GgmlTypes.NameList()} (norms and gates stay f32)", DefaultValueFactory = _ => "f16" };
        type.AcceptOnlyFromAmong([.. GgmlTypes.All.Select(t => t.Name)]);
        var force = new Option<bool>("--force") { Description = "Overwrite the output file if it exists" };
        var tok = new Option<string?>("--tokenizer") { Description = "tokenizer.json to store in the model (default: tokenizer.json beside the checkpoint, if present)" };
        var threads = new Option<int>("--threads", "-t") { Description = "Threads for quantization (0 = all cores)" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "No progress output" };
        var cmd = new Command("convert", "Convert a Hugging Face xLSTM checkpoint to GGUF. Tensors are streamed, so memory stays small whatever the model size.")
        {
            dir, output, type, force, tok, threads, quiet,
        };
        cmd.SetAction(pr => Program.Run(() =>
        {
            string src = pr.GetValue(dir)!, outPath = pr.GetValue(output)!;
            if (File.Exists(src) && QuantizeCommand.IsGguf(src))
                throw new BadInputException($"{src} is a GGUF model, not a checkpoint folder: to change its weight type use 'xlstm-run quantize {src} OUTPUT TYPE'");
            bool overwrite = pr.GetValue(force);
            string? tokPath = pr.GetValue(tok);
            if (tokPath == null && UnixFile.Stat(Path.Combine(src, "tokenizer.json")).Exists) tokPath = Path.Combine(src, "tokenizer.json");
            // Early check (a bad output path fails before any work), then again with every checkpoint file as an input.
            OutputFile.Check(outPath, "-o", overwrite, [new(tokPath, "tokenizer")]);
            var wanted = GgmlTypes.Parse(pr.GetValue(type)!);
            using var ck = new HfCheckpoint(src);
            var outFile = OutputFile.Check(outPath, "-o", overwrite, [new(tokPath, "tokenizer"), .. ck.Files.Select(f => new InputRole(f, "checkpoint file"))]);
            outFile.CheckBinaryStdout();
            var cfg = HfConverter.ReadConfig(ck, out var mode, out var tied);
            var sources = HfConverter.Sources(ck, cfg, mode, tied);
            var tokenizer = tokPath != null ? TokenizerGguf.LoadJson(tokPath) : null;
            if (tokenizer != null && tokenizer.Tokens.Count > cfg.Vocab)
                throw new BadInputException($"{tokPath}: tokenizer has {tokenizer.Tokens.Count} tokens but the model's vocabulary is {cfg.Vocab}");
            var progress = pr.GetValue(quiet) ? null : new ConsoleProgress("convert");
            ModelWriter.Write(outFile, cfg, wanted, sources, w =>
            {
                w.AddString("general.name", ModelName(ck.ConfigJson, src));
                if (tokenizer != null) TokenizerGguf.Write(w, tokenizer, padTo: cfg.Vocab);
            }, progress, pr.GetValue(threads));
            progress?.Done();
            Console.Error.WriteLine($"wrote {(outFile.IsStdout ? "standard output" : outPath)}: {cfg.Blocks} blocks, hidden {cfg.Hidden}, vocab {cfg.Vocab}, {GgmlTypes.Name(wanted)}{(tokenizer != null ? ", with tokenizer" : "")}" +
                (outFile.IsStdout ? "" : $", {new FileInfo(outPath).Length / 1048576.0:F1} MiB"));
            return 0;
        }));
        return cmd;
    }

    /// <summary>general.name: the last part of config.json's "_name_or_path" (e.g. NX-AI/xLSTM-7b → xLSTM-7b), else the folder's name.</summary>
    public static string ModelName(string configJson, string dir)
    {
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(configJson);
            if (doc.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object
                && doc.RootElement.TryGetProperty("_name_or_path", out var n) && n.ValueKind == System.Text.Json.JsonValueKind.String
                && n.GetString()!.Trim().TrimEnd('/', '\\') is { Length: > 0 } name)
                return name[(name.LastIndexOfAny(['/', '\\']) + 1)..];
        }
        catch (System.Text.Json.JsonException) { }
        return Path.GetFileName(Path.GetFullPath(dir).TrimEnd('/'));
    }
}

/// <summary>Progress on stderr: percentage and current tensor, redrawn at most a few times a second.</summary>
internal sealed class ConsoleProgress : IProgress<(long Done, long Total, string Tensor)>
{
    private readonly string _what;
    private readonly System.Diagnostics.Stopwatch _sw = System.Diagnostics.Stopwatch.StartNew();
    private long _lastMs = -1000;
    private readonly bool _tty = !Console.IsErrorRedirected;
    private int _lastPct = -1;

    public ConsoleProgress(string what) { _what = what; }

    public void Report((long Done, long Total, string Tensor) v)
    {
        int pct = (int)(100 * v.Done / Math.Max(1, v.Total));
        long ms = _sw.ElapsedMilliseconds;
        if (_tty ? ms - _lastMs < 200 && pct != 100 : pct / 10 == _lastPct / 10) return;
        _lastMs = ms;
        _lastPct = pct;
        string line = $"{_what}: {pct,3}% {v.Tensor} ({ms / 1000.0:F1} s)";
        if (_tty) Console.Error.Write("\r" + line.PadRight(78));
        else Console.Error.WriteLine(line);
    }

    public void Done()
    {
        if (_tty) Console.Error.WriteLine();
    }
}
