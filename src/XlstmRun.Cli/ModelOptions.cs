using System.CommandLine;
using XlstmRun.Backends;
using XlstmRun.Formats;
using XlstmRun.Formats.IO;
using XlstmRun.Model;

namespace XlstmRun.Cli;

/// <summary>Options shared by the commands that run a model.</summary>
internal sealed class ModelOptions
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

    public Option<bool> Profile { get; } = new("--profile") { Description = "Print the time of each op on stderr at the end (Vulkan: GPU timestamp queries and wall-clock figures; CPU: wall time per op class and GB/s of the matrix products)" };
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
