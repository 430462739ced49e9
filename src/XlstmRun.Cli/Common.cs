using System.CommandLine;
using System.Text;
using System.Text.RegularExpressions;
using XlstmRun.Backends;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Formats.IO;
using XlstmRun.Model;
using XlstmRun.Text;
using XlstmRun.Text.Sampling;
using XlstmRun.Text.Tokenization;

namespace XlstmRun.Cli;

/// <summary>Options shared by the commands that run a model.</summary>
public sealed class ModelOptions
{
    public Option<string?> Model { get; } = new("--model", "-m") { Description = "GGUF model file (default: $XLSTM_MODEL, then the installed default model)", HelpName = "FILE" };
    public Option<string> Backend { get; } = new("--backend") { Description = $"Compute backend: {string.Join(", ", BackendProviders.Names)} (see 'xlstm-run info --devices')", DefaultValueFactory = _ => "auto" };
    public Option<int> Device { get; } = new("--device") { Description = "GPU device index (see 'xlstm-run info --devices'); -1 = automatic", DefaultValueFactory = _ => -1, HelpName = "N" };
    public Option<int> Threads { get; } = new("--threads", "-t") { Description = "CPU threads (0 = all cores)", DefaultValueFactory = _ => 0, HelpName = "N" };
    public Option<string?> LoadState { get; } = new("--load-state") { Description = "Start from a saved recurrent state instead of a fresh one (continues a conversation: no BOS, no re-reading)", HelpName = "FILE" };
    public Option<string?> SaveState { get; } = new("--save-state") { Description = "Save the recurrent state at the end (after the prompt and everything generated, EOS excluded); may name the --load-state file to update it in place", HelpName = "FILE" };
    public Option<bool> Force { get; } = new("--force") { Description = "Overwrite existing output files (inputs such as the model are never overwritten)" };

    public Option<int?> GpuLayers { get; } = new("--n-gpu-layers", "-ngl", "--gpu-layers")
    {
        Description = "llama.cpp's GPU offload: 0 = the CPU backend, any other number = the Vulkan GPU backend (the whole model; it is not split)",
        HelpName = "N",
    };

    public Option<bool> Profile { get; } = new("--profile") { Description = "Print the GPU time of each op (Vulkan timestamp queries) and wall-clock figures on stderr at the end" };
    public Option<string> Precision { get; } = new("--precision") { Description = "Activations inside matrix products: auto (F32 weights always exact; other weights may use f16 on tensor cores and 8-bit activations in quantized products, see docs/precision.md) or f32 (float32 everywhere)", DefaultValueFactory = _ => "auto" };

    public ModelOptions()
    {
        Backend.AcceptOnlyFromAmong([.. BackendProviders.Names]);
        Precision.AcceptOnlyFromAmong("auto", "f32");
    }

    /// <summary>The backend name: --backend, or what -ngl asks for (0: cpu, else vulkan); both given must agree.</summary>
    public string ResolveBackend(ParseResult pr)
    {
        string backend = pr.GetValue(Backend) ?? "auto";
        if (pr.GetValue(GpuLayers) is not int ngl) return backend;
        if (ngl < 0) throw new BadInputException($"-ngl must be 0 (CPU) or more (GPU), got {ngl}");
        string wanted = ngl == 0 ? "cpu" : "vulkan";
        bool explicitBackend = pr.GetResult(Backend) is { Implicit: false };
        if (explicitBackend && backend != wanted)
            throw new BadInputException($"-ngl {ngl} asks for the {(ngl == 0 ? "CPU" : "GPU")} but --backend is {backend}: give one of them");
        return wanted;
    }

    /// <summary>The backend settings of the command line, parsed once (each backend adds its own environment settings).</summary>
    public BackendSettings Settings(ParseResult pr, bool? profile = null) =>
        new(pr.GetValue(Device), pr.GetValue(Threads), profile ?? pr.GetValue(Profile), Float32: pr.GetValue(Precision) == "f32", Log: BackendLog());

    /// <summary>Creates the backend the command line asks for (<see cref="BackendProviders.Create"/>).</summary>
    public IBackend CreateBackend(ParseResult pr, bool? profile = null) => BackendProviders.Create(ResolveBackend(pr), Settings(pr, profile));

    /// <summary>Backend diagnostics (why auto fell back to the CPU, fallbacks inside a backend, XLSTM_VK_STATS) go to stderr
    /// under XLSTM_DEBUG=1 or XLSTM_VK_STATS=1; otherwise nowhere.</summary>
    private static Action<string>? BackendLog() =>
        Environment.GetEnvironmentVariable("XLSTM_DEBUG") == "1" || Environment.GetEnvironmentVariable("XLSTM_VK_STATS") == "1"
            ? line => Console.Error.WriteLine(line)
            : null;

    public void AddTo(Command c, bool state = true)
    {
        c.Options.Add(Model);
        c.Options.Add(Backend);
        c.Options.Add(Device);
        c.Options.Add(Threads);
        c.Options.Add(GpuLayers);
        c.Options.Add(Profile);
        c.Options.Add(Precision);
        if (state)
        {
            c.Options.Add(LoadState);
            c.Options.Add(SaveState);
            c.Options.Add(Force);
        }
    }

    /// <summary>Checks --save-state (if given) before any work: see <see cref="OutputFile"/> for the rules.</summary>
    public OutputFile? CheckSaveState(ParseResult pr, bool stdoutTaken, params InputRole[] otherInputs)
    {
        var ss = pr.GetValue(SaveState);
        if (string.IsNullOrEmpty(ss)) return null;
        string? ls = pr.GetValue(LoadState);
        var save = OutputFile.Check(ss, "--save-state", pr.GetValue(Force), [new(ModelSession.ResolveModelPath(pr.GetValue(Model)), "model"), new(ls, "state file"), .. otherInputs], allowStdout: !stdoutTaken, mayUpdate: ls);
        save.CheckBinaryStdout();
        return save;
    }
}

/// <summary>An opened model: file, config, backend, runner and (if stored) tokenizer.</summary>
public sealed class ModelSession : IDisposable
{
    public required GgufFile File { get; init; }
    public required ModelConfig Config { get; init; }
    public required IBackend Backend { get; init; }
    public required ModelRunner Runner { get; init; }
    public XlstmTokenizer? Tokenizer { get; init; }
    /// <summary>--profile: print the backend's per-op GPU times on stderr at dispose.</summary>
    public bool Profile { get; init; }

    /// <summary>Ids that may be produced: the tokenizer's vocabulary (padding rows of the model excluded), else the model's.</summary>
    public int ValidVocab => Tokenizer != null ? Math.Min(Tokenizer.VocabSize, Config.Vocab) : Config.Vocab;

    public static string ResolveModelPath(string? given)
    {
        if (!string.IsNullOrEmpty(given)) return given;
        var env = Environment.GetEnvironmentVariable("XLSTM_MODEL");
        if (!string.IsNullOrEmpty(env)) return env;
        var def = DefaultModel.Find();
        if (def != null) return def;
        throw new BadInputException("no model given: pass -m MODEL.gguf or set XLSTM_MODEL; no default model in " +
                                    string.Join(", ", DefaultModel.Candidates()) + " (make install puts one there, see README)");
    }

    public static ModelSession Open(ParseResult pr, ModelOptions o, bool needTokenizer = false, int? maxBatch = null)
    {
        string path = ResolveModelPath(pr.GetValue(o.Model));
        var file = GgufFile.Open(path);
        try
        {
            var cfg = ModelConfig.FromGguf(file);
            XlstmTokenizer? tok = null;
            if (TokenizerGguf.Has(file)) tok = TokenizerGguf.Build(TokenizerGguf.Read(file), path);
            else if (needTokenizer) throw new BadInputException($"{path}: the model has no tokenizer (convert it with a tokenizer.json beside the checkpoint or --tokenizer)");
            bool profile = pr.GetValue(o.Profile);
            var be = o.CreateBackend(pr);
            var runner = new ModelRunner(file, be, maxBatch, cfg);
            var s = new ModelSession { File = file, Config = cfg, Backend = be, Runner = runner, Tokenizer = tok, Profile = profile };
            var ls = pr.GetValue(o.LoadState);
            if (!string.IsNullOrEmpty(ls))
            {
                var st = StateFile.Load(ls, cfg, out long pos);
                runner.LoadState(st, pos);
            }
            return s;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Saves the state to the output checked by <see cref="ModelOptions.CheckSaveState"/> (nothing when null).</summary>
    public void SaveStateIfAsked(OutputFile? output)
    {
        if (output != null) StateFile.Save(output, Config, Runner.SaveState(), Runner.Position);
    }

    public void Dispose()
    {
        if (Profile)
            Console.Error.Write(Backend is IProfilingBackend pb
                ? pb.ProfileReport()
                : $"profile: the {Backend.Name} backend has no per-op GPU timing (--profile works with --backend vulkan)\n");
        Runner.Dispose();
        Backend.Dispose();
        File.Dispose();
    }
}

public static partial class Ids
{
    [GeneratedRegex(@"[\s,\[\]]+")]
    private static partial Regex Separators();

    /// <summary>Parse "1,2,3" (or whitespace/JSON-array separated) into ids.</summary>
    public static int[] Parse(string text, string what)
    {
        var parts = Separators().Split(text).Where(p => p.Length > 0).ToArray();
        var res = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], out res[i]) || res[i] < 0) throw new BadInputException($"{what}: '{parts[i]}' is not a token id");
        if (res.Length == 0) throw new BadInputException($"{what}: no token ids given");
        return res;
    }

    public static int[] FromOptions(string? ids, string? idsFile)
    {
        if (ids != null && idsFile != null) throw new BadInputException("give either --ids or --ids-file, not both");
        if (ids != null) return Parse(ids, "--ids");
        if (idsFile != null) return Parse(InputFiles.ReadAllText(idsFile, InputKind.IdsFile, "ids file"), idsFile);
        throw new BadInputException("no token ids given (use --ids 1,2,3 or --ids-file FILE)");
    }

    public static void CheckRange(int[] ids, int vocab)
    {
        foreach (var id in ids)
            if (id >= vocab) throw new BadInputException($"token id {id} is out of range (vocabulary size {vocab})");
    }
}

/// <summary>
/// Checks that an output path can be written before any work is done, so a bad path fails fast. Kept for commands not
/// yet moved to <see cref="OutputFile"/> (which also refuses inputs and non-regular files, and writes atomically).
/// </summary>
public static class OutputPath
{
    public static void Check(string path, bool force) => OutputFile.Check(path, "--output", force, [], allowStdout: false);
}

/// <summary>Feeds a <see cref="ModelRunner"/> for the generation loop.</summary>
public sealed class RunnerGenerationModel(ModelRunner runner) : IGenerationModel
{
    public int LogitsSize => runner.Config.Vocab;

    public void Feed(ReadOnlySpan<int> ids, Span<float> lastLogits) =>
        runner.Forward(ids, lastLogits.IsEmpty ? LogitsMode.None : LogitsMode.Last, lastLogits);

    public int FeedGreedy(ReadOnlySpan<int> ids, int validVocab) => runner.ForwardGreedy(ids, validVocab);
}

/// <summary>UTF-8 text in and out, whatever the locale says; one-line errors for unreadable input.</summary>
public static class TextIO
{
    public static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>A UTF-8 writer on stdout (no BOM); flush it yourself.</summary>
    public static StreamWriter OpenStdout() => new(Terminal.StdStreams.Stdout, Utf8, 1 << 16, leaveOpen: true) { AutoFlush = false };

    /// <summary>All of stdin as UTF-8 text, at most <paramref name="kind"/>'s limit (<see cref="InputLimits"/>).</summary>
    public static string ReadStdin(InputKind kind = InputKind.PromptText)
    {
        return InputFiles.ReadAllText(Terminal.StdStreams.Stdin, kind, "standard input", "input");
    }

    /// <summary>A whole text file ("-" = stdin): a regular file of at most <paramref name="kind"/>'s limit, with one-line errors.</summary>
    public static string ReadFile(string path, InputKind kind = InputKind.PromptText)
    {
        if (path == "-") return ReadStdin(kind);
        return InputFiles.ReadAllText(path, kind, kind == InputKind.PromptText ? "prompt file" : "text file");
    }

    /// <summary>Drops one trailing newline (\n or \r\n), as llama.cpp does for -f files; `echo` adds one.</summary>
    public static string StripOneNewline(string s) =>
        s.EndsWith("\r\n", StringComparison.Ordinal) ? s[..^2] : s.EndsWith('\n') ? s[..^1] : s;

    /// <summary>Whether stdin is a pipe or file (then it is read); "-" or /dev/stdin as a file name reads it instead.</summary>
    public static bool StdinIsData => Console.IsInputRedirected;
}

/// <summary>Loads only the tokenizer: from a model's GGUF metadata or from a tokenizer.json.</summary>
public static class TokenizerSource
{
    public static XlstmTokenizer Load(string? modelPath, string? tokenizerJson)
    {
        if (modelPath != null && tokenizerJson != null) throw new BadInputException("give either --model or --tokenizer, not both");
        if (tokenizerJson != null) return TokenizerGguf.Build(TokenizerGguf.LoadJson(tokenizerJson), tokenizerJson);
        string path = ModelSession.ResolveModelPath(modelPath);
        using var f = GgufFile.Open(path);
        if (!TokenizerGguf.Has(f)) throw new BadInputException($"{path}: the model has no tokenizer (convert it with a tokenizer.json beside the checkpoint or --tokenizer)");
        return TokenizerGguf.Build(TokenizerGguf.Read(f), path);
    }
}
