using System.CommandLine;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Formats.IO;
using XlstmRun.Model;
using XlstmRun.Text;
using XlstmRun.Text.Sampling;
using XlstmRun.Text.Tokenization;

namespace XlstmRun.Cli;

/// <summary>An opened model: file, config, backend, runner and (if stored) tokenizer.</summary>
internal sealed class ModelSession : IDisposable
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

    private static bool _warnedThreads;

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
            int threads = pr.GetValue(o.Threads);
            if (threads < 0) throw new BadInputException("-t must be at least 0 (0 = all cores)");
            if (threads > Environment.ProcessorCount && !_warnedThreads)
            {
                // more threads than cores make the workers wait for each other's time slices (decode can drop 50×)
                _warnedThreads = true;
                Console.Error.WriteLine($"warning: -t {threads} is more than the {Environment.ProcessorCount} cores of this machine; CPU decode will be much slower than with -t {Environment.ProcessorCount} or -t 0");
            }
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
            Console.Error.Write(Backend switch
            {
                IProfilingBackend pb => pb.ProfileReport(),
                XlstmRun.Backends.Cpu.CpuBackend cb => cb.ProfileReport(),
                _ => $"profile: the {Backend.Name} backend has no per-op timing (--profile works with --backend vulkan and cpu)\n",
            });
        Runner.Dispose();
        Backend.Dispose();
        File.Dispose();
    }
}

/// <summary>Feeds a <see cref="ModelRunner"/> for the generation loop.</summary>
internal sealed class RunnerGenerationModel(ModelRunner runner) : IGenerationModel
{
    public int LogitsSize => runner.Config.Vocab;

    /// <summary>With logits, all but the last id go in as a prompt feed and the last as a step (as ForwardGreedy does, and
    /// as the batched engine does: BatchRunner.Prefill, then Step), so a line's logits do not depend on --parallel.</summary>
    public void Feed(ReadOnlySpan<int> ids, Span<float> lastLogits)
    {
        if (lastLogits.IsEmpty || ids.Length < 2)
        {
            runner.Forward(ids, lastLogits.IsEmpty ? LogitsMode.None : LogitsMode.Last, lastLogits);
            return;
        }
        runner.Forward(ids[..^1], LogitsMode.None, default);
        runner.Forward(ids[^1..], LogitsMode.Last, lastLogits);
    }

    public int FeedGreedy(ReadOnlySpan<int> ids, int validVocab) => runner.ForwardGreedy(ids, validVocab);
}
