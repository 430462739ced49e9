using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using XlstmRun.Cli.Terminal;
using XlstmRun.Formats;
using XlstmRun.Text.Sampling;

namespace XlstmRun.Cli.Commands;

/// <summary>
/// `generate`, also the root command: text prompt (-p, -f, words, stdin) → tokens → streamed text; or, with --ids,
/// the machine-facing token-id form (no BOS, greedy unless --temp, prints ids).
/// </summary>
internal static class GenerateCommand
{
    /// <summary>The options of the root command, `generate` and `chat`.</summary>
    public sealed class Options
    {
        public readonly ModelOptions Model = new();
        public readonly SamplingOptions Sampling = new(idsMode: true);
        public readonly Option<string?> Prompt = new("--prompt", "-p") { Description = "Prompt text", HelpName = "TEXT" };
        public readonly Option<string?> File = new("--file", "-f") { Description = "Read the prompt from a file (- = stdin); one trailing newline is dropped", HelpName = "FILE" };
        public readonly Argument<string[]> Words = new("PROMPT") { Description = "Prompt words after -- (or one quoted prompt with spaces), instead of -p", Arity = ArgumentArity.ZeroOrMore };
        public readonly Option<string?> Ids = new("--ids") { Description = "Prompt as token ids, comma separated: no BOS is added, greedy unless --temp is given, prints the generated ids", HelpName = "IDS" };
        public readonly Option<bool> Json = new("--json") { Description = "Print one JSON object at the end instead of streaming: {\"text\", \"ids\", \"prompt_tokens\", \"finish_reason\": \"stop|length|eos|cancelled\"} ({\"ids\"} with --ids)" };
        public readonly Option<bool> Verbose = new("--verbose", "-v") { Description = "Print model, backend, seed and sampler details to stderr" };
        public readonly Option<bool> Quiet = new("--quiet", "-q") { Description = "Nothing on stderr but errors (no timings, no notes)" };
        public readonly Option<bool> NoPerf = new("--no-perf") { Description = "No timings on stderr at the end" };
        public readonly Option<bool> Interactive = new("--interactive", "-i") { Description = "Interactive session, the same as the 'chat' command (see xlstm-run chat --help)" };
        public readonly Option<string?> InPrefix = new("--in-prefix") { Description = "Chat: text put before each of your inputs (\\n = newline), e.g. \"User: \"", HelpName = "TEXT" };
        public readonly Option<string?> InSuffix = new("--in-suffix") { Description = "Chat: text put after each of your inputs (\\n = newline), e.g. \"\\nAssistant:\"", HelpName = "TEXT" };
        public readonly Option<bool> Color = new("--color", "--colour", "-co") { Description = "Colour the prompt and your input apart from the generated text (only when stdout is a terminal)" };
        public readonly Option<int?> CtxSize = new("--ctx-size", "-c") { Description = "Accepted for llama.cpp habits and ignored: a recurrent model has no context limit", HelpName = "N" };

        public Options(bool chat = false)
        {
            if (chat)
            {
                Prompt.Description = "Text fed once before your first input (a preamble, e.g. the start of a dialog); the model does not answer it";
                File.Description = "Read that preamble from a file";
            }
        }

        public void AddTo(Command c, bool chat = false)
        {
            c.Options.Add(Prompt);
            c.Options.Add(File);
            Model.AddTo(c);
            Sampling.AddTo(c);
            if (!chat)
            {
                c.Options.Add(Ids);
                c.Options.Add(Json);
                c.Options.Add(Interactive);
            }
            c.Options.Add(InPrefix);
            c.Options.Add(InSuffix);
            c.Options.Add(Color);
            c.Options.Add(CtxSize);
            c.Options.Add(Quiet);
            c.Options.Add(NoPerf);
            c.Options.Add(Verbose);
            if (!chat) c.Arguments.Add(Words);
        }

        /// <summary>-q and -v exclude each other; -c gets its one note.</summary>
        public (bool Quiet, bool Verbose, bool Perf) Output(ParseResult pr)
        {
            bool q = pr.GetValue(Quiet), v = pr.GetValue(Verbose);
            if (q && v) throw new BadInputException("give -q (quiet) or -v (verbose), not both");
            if (pr.GetValue(CtxSize) is int c)
            {
                if (c < 0) throw new BadInputException($"-c must be 0 or more (got {c})");
                if (!q) Console.Error.WriteLine("note: -c/--ctx-size has no effect: xLSTM is recurrent, with no context limit and the same memory at any length");
            }
            return (q, v, !q && !pr.GetValue(NoPerf));
        }
    }

    /// <summary>How prompts, BOS, stopping and output work; shown by --help of the root command and of `generate`.</summary>
    public const string Notes =
        "Prompt: -p TEXT, -f FILE, words after -- (xlstm-run -m m.gguf -- Once upon a time), or one quoted prompt with spaces.\n" +
        "  A first word that is not a command is an error (xlstm-run tokenise -> did you mean 'tokenize'?).\n" +
        "  When stdin is a pipe or a file, its text comes first, then a newline, then the prompt\n" +
        "  (cat notes.txt | xlstm-run -m m.gguf -p \"Summarize:\"). One trailing newline of stdin or -f is dropped.\n" +
        "  To keep it from reading stdin (in a shell loop, say), use < /dev/null.\n" +
        "BOS: a fresh state gets <|endoftext|> (id 0) before the prompt unless --no-bos; --load-state continues without it.\n" +
        "Stops at <|endoftext|> (unless --ignore-eos), at a -r/--stop text (not printed), or after -n tokens.\n" +
        "Output: only the generated text goes to stdout, streamed; timings (llama.cpp's format) and notes go to stderr,\n" +
        "  on a line of their own (-q: none, --no-perf: no timings). No terminal escape codes unless --color on a terminal.\n" +
        "  When stdout is closed (xlstm-run ... | head -c 200) generation stops at once, quietly (exit code 141).\n" +
        "Ctrl-C ends generation after the current token (output, --save-state and timings as usual, exit code 130).\n" +
        "llama.cpp options: -c/--ctx-size is accepted and ignored (no context limit); -ngl 0 = CPU, -ngl N>0 = Vulkan GPU;\n" +
        "  -i/--interactive = the chat command.\n" +
        "Model: -m FILE, else $XLSTM_MODEL, else the default model (xlstm-run info shows which file).\n" +
        "Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad input, 130 interrupted, 141 stdout closed.";

    public static void AddTo(RootCommand root)
    {
        var rootOpts = new Options();
        rootOpts.Words.Hidden = true; // keeps "[<PROMPT>...]" out of every subcommand's usage line; the description shows it
        rootOpts.AddTo(root);
        HelpNotes.Add(root, Notes);
        root.SetAction(pr => Program.Run(() => Execute(pr, rootOpts)));

        var o = new Options();
        var cmd = new Command("generate", "Generate text from a prompt (what xlstm-run does without a command).");
        HelpNotes.Add(cmd, Notes);
        o.AddTo(cmd);
        cmd.SetAction(pr => Program.Run(() => Execute(pr, o)));
        root.Subcommands.Add(cmd);
    }

    private static int Execute(ParseResult pr, Options o)
    {
        if (pr.GetValue(o.Interactive))
        {
            if (pr.GetValue(o.Ids) != null || pr.GetValue(o.Json)) throw new BadInputException("-i (chat) does not take --ids or --json");
            if ((pr.GetValue(o.Words) ?? []).Length > 0) throw new BadInputException("-i (chat) takes its preamble with -p or -f, not as words");
            return ChatCommand.Execute(pr, o);
        }
        if (pr.GetValue(o.InPrefix) != null || pr.GetValue(o.InSuffix) != null)
            throw new BadInputException("--in-prefix and --in-suffix are for interactive sessions: add -i, or use the chat command");
        var total = Stopwatch.StartNew();
        var so = o.Sampling;
        string? idsText = pr.GetValue(o.Ids);
        bool idsMode = idsText != null;
        var (_, verbose, perf) = o.Output(pr);
        bool json = pr.GetValue(o.Json);
        string? promptOpt = pr.GetValue(o.Prompt), fileOpt = pr.GetValue(o.File);
        string[] words = pr.GetValue(o.Words) ?? [];
        if (!Program.DoubleDash)
            foreach (var w in words)
                if (w.Length > 1 && w[0] == '-')
                    throw new BadInputException($"unknown option '{w}' (a prompt that starts with '-' goes in -p, or after --)");
        int sources = (promptOpt != null ? 1 : 0) + (fileOpt != null ? 1 : 0) + (words.Length > 0 ? 1 : 0);
        if (sources > 1) throw new BadInputException("give the prompt one way: -p TEXT, -f FILE or PROMPT words");
        if (idsMode && sources > 0) throw new BadInputException("--ids takes the place of a text prompt; do not combine it with -p, -f or PROMPT words");

        // Usage checks before any work.
        int maxTokens = so.Tokens(pr, idsMode);
        long seed = so.ResolveSeed(pr);
        var sampling = so.Build(pr, idsMode ? 0f : 0.8f, seed);
        string[] stops = so.StopStrings(pr);
        if (idsMode && stops.Length > 0) throw new BadInputException("--stop/-r needs a text prompt (it matches text, not ids)");
        string? savePath = pr.GetValue(o.Model.SaveState);
        var saveOut = o.Model.CheckSaveState(pr, stdoutTaken: true, new Formats.IO.InputRole(fileOpt, "prompt file"));

        int[]? idsPrompt = idsMode ? global::XlstmRun.Cli.Ids.Parse(idsText!, "--ids") : null;
        string? text = null;
        if (!idsMode)
        {
            text = ReadPrompt(promptOpt, fileOpt, words);
            if (text == null)
                throw new BadInputException("no prompt given: use -p TEXT, -f FILE, words after -- or pipe text to stdin (see --help)");
        }

        var load = Stopwatch.StartNew();
        using var s = ModelSession.Open(pr, o.Model, needTokenizer: !idsMode);
        double loadMs = load.Elapsed.TotalMilliseconds;
        var tok = s.Tokenizer;
        bool ignoreEos = pr.GetValue(so.IgnoreEos);
        int? eos = tok != null && !ignoreEos ? tok.EosId : null;
        if (maxTokens == -1 && eos == null)
            throw new BadInputException(tok == null
                ? "-n -1 needs an end-of-text token, and this model has no tokenizer: give a token count"
                : "-n -1 with --ignore-eos would never end: give a token count");

        int[] prompt;
        bool bos = false;
        if (idsMode)
        {
            prompt = idsPrompt!;
            Ids.CheckRange(prompt, s.Config.Vocab);
        }
        else
        {
            var body = tok!.Encode(text!);
            bos = s.Runner.Position == 0 && !pr.GetValue(so.NoBos);
            prompt = bos ? [tok.BosId, .. body] : body;
            if (prompt.Length == 0 && maxTokens != 0)
                throw new BadInputException(s.Runner.Position == 0
                    ? "the prompt is empty and --no-bos is set: there is nothing to continue from"
                    : "the prompt is empty: a loaded state needs at least one new token to continue from");
        }

        if (verbose)
        {
            var c = s.Config;
            Console.Error.WriteLine($"model: {s.File.Path}: hidden {c.Hidden}, blocks {c.Blocks}, heads {c.Heads}, vocab {c.Vocab} (valid {s.ValidVocab}), loaded in {loadMs:F0} ms");
            Console.Error.WriteLine($"backend: {s.Backend.Name} ({s.Backend.Device})");
            Console.Error.WriteLine($"state: position {s.Runner.Position}{(string.IsNullOrEmpty(pr.GetValue(o.Model.LoadState)) ? " (fresh)" : " (loaded)")}");
            Console.Error.WriteLine($"prompt: {prompt.Length} tokens{(bos ? " (BOS first)" : "")}");
            Console.Error.WriteLine($"sampling: {sampling.Describe()}");
            Console.Error.WriteLine($"generate: n_predict = {maxTokens}, eos = {(eos?.ToString(CultureInfo.InvariantCulture) ?? "none")}{(stops.Length > 0 ? ", stop = " + string.Join(", ", stops.Select(JsonStrings.Quote)) : "")}");
        }

        // First Ctrl-C: finish the current token, then print, save the state and report as usual; a second one kills.
        using var cancel = new CancellationTokenSource();
        using var ctrlC = new CtrlC(cancel);
        var stdout = TextIO.OpenStdout();
        bool stream = !idsMode && !json;
        bool endsWithNewline = true, closed = false;
        var colors = Ansi.For(pr.GetValue(o.Color));
        void Write(Action<StreamWriter> w)
        {
            if (closed) return;
            try
            {
                w(stdout);
                stdout.Flush();
            }
            catch (StdoutClosedException)
            {
                // the reader is gone (| head): stop at once, say nothing
                closed = true;
                cancel.Cancel();
            }
        }
        if (stream && colors.On) Write(w => w.Write(colors.Prompt(text!)));
        var req = new GenerationRequest
        {
            Prompt = prompt,
            Sampling = sampling,
            ValidVocab = s.ValidVocab,
            MaxTokens = maxTokens,
            EosId = eos,
            StopStrings = stops,
            Tokenizer = idsMode ? null : tok,
            FeedLastToken = !string.IsNullOrEmpty(savePath),
            Cancel = cancel.Token,
        };
        var result = Generator.Run(new RunnerGenerationModel(s.Runner), req, stream ? piece =>
        {
            Write(w => w.Write(piece));
            endsWithNewline = piece.EndsWith('\n');
        } : null);
        ctrlC.Current = null;

        if (idsMode && json)
            Write(w =>
            {
                w.Flush();
                WriteIdsJson(w.BaseStream, result.Ids);
                w.BaseStream.WriteByte((byte)'\n');
            });
        else if (idsMode) Write(w => w.WriteLine(string.Join(",", result.Ids)));
        else if (json)
            Write(w =>
            {
                w.Flush();
                WriteJson(w.BaseStream, result);
                w.BaseStream.WriteByte((byte)'\n');
            });
        else if (!endsWithNewline && !Console.IsOutputRedirected) Write(w => w.WriteLine());
        if (!closed) stdout.Dispose();
        s.SaveStateIfAsked(saveOut);
        if (closed) return ExitCodes.BrokenPipe;
        if (perf && (!idsMode || verbose)) PrintStats(loadMs, result, total.Elapsed.TotalMilliseconds);
        if (verbose && !sampling.IsGreedy)
            Console.Error.WriteLine(string.Format(CultureInfo.InvariantCulture, "  sampling time = {0,10:F2} ms / {1,5} runs   ({2,8:F2} ms per token)",
                result.SampleMs, result.Ids.Count, result.Ids.Count > 0 ? result.SampleMs / result.Ids.Count : 0));
        if (verbose) Console.Error.WriteLine($"finish: {result.FinishReasonText}, {result.Ids.Count} tokens generated, state position {s.Runner.Position}");
        return result.FinishReason == FinishReason.Cancelled ? ExitCodes.Interrupted : ExitCodes.Ok;
    }

    /// <summary>stdin (when redirected and not named by -f) + "\n" + the prompt; null when there is no prompt at all.</summary>
    private static string? ReadPrompt(string? promptOpt, string? fileOpt, string[] words)
    {
        string? main = promptOpt;
        bool fileIsStdin = fileOpt is "-" or "/dev/stdin";
        if (fileOpt != null) main = TextIO.StripOneNewline(fileIsStdin ? TextIO.ReadStdin() : TextIO.ReadFile(fileOpt));
        else if (words.Length > 0) main = string.Join(' ', words);
        if (!fileIsStdin && TextIO.StdinIsData)
        {
            string piped = TextIO.StripOneNewline(TextIO.ReadStdin());
            if (piped.Length > 0) return main == null ? piped : piped + "\n" + main;
        }
        return main;
    }

    /// <summary>--json in token-id mode: {"ids": [...]}.</summary>
    private static void WriteIdsJson(Stream output, IEnumerable<int> ids)
    {
        using var w = new Utf8JsonWriter(output, JsonStrings.WriterOptions);
        w.WriteStartObject();
        w.WriteStartArray("ids");
        foreach (var id in ids) w.WriteNumberValue(id);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    public static void WriteJson(Stream output, GenerationResult r)
    {
        using var w = new Utf8JsonWriter(output, JsonStrings.WriterOptions);
        w.WriteStartObject();
        w.WriteString("text", r.Text);
        w.WriteStartArray("ids");
        foreach (var id in r.Ids) w.WriteNumberValue(id);
        w.WriteEndArray();
        w.WriteNumber("prompt_tokens", r.PromptTokens);
        w.WriteString("finish_reason", r.FinishReasonText);
        w.WriteEndObject();
        w.Flush();
    }

    /// <summary>llama.cpp's timing lines (llama_perf_context_print), on stderr.</summary>
    public static void PrintStats(double loadMs, GenerationResult r, double totalMs)
    {
        var ci = CultureInfo.InvariantCulture;
        static (double, double) Rates(double ms, int n) => n > 0 && ms > 0 ? (ms / n, 1000.0 * n / ms) : (0, 0);
        var (pt, ps) = Rates(r.PromptMs, r.PromptTokens);
        var (et, es) = Rates(r.EvalMs, r.EvalRuns);
        var e = Console.Error;
        e.WriteLine(string.Format(ci, "       load time = {0,10:F2} ms", loadMs));
        e.WriteLine(string.Format(ci, "prompt eval time = {0,10:F2} ms / {1,5} tokens ({2,8:F2} ms per token, {3,8:F2} tokens per second)", r.PromptMs, r.PromptTokens, pt, ps));
        e.WriteLine(string.Format(ci, "       eval time = {0,10:F2} ms / {1,5} runs   ({2,8:F2} ms per token, {3,8:F2} tokens per second)", r.EvalMs, r.EvalRuns, et, es));
        e.WriteLine(string.Format(ci, "      total time = {0,10:F2} ms / {1,5} tokens", totalMs, r.PromptTokens + r.Ids.Count));
    }
}
