using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using XlstmRun.Cli.Terminal;
using XlstmRun.Formats;
using XlstmRun.Model;
using XlstmRun.Text.Sampling;

namespace XlstmRun.Cli.Commands;

/// <summary>
/// `chat` (and `-i`): an interactive session that keeps the model's recurrent state between turns. Each turn feeds
/// only the new text (prefix + input + suffix) and generates a reply; the history is never re-read.
/// </summary>
internal static class ChatCommand
{
    public const string Notes =
        "Each turn feeds only your new text (--in-prefix + input + --in-suffix) into the model's recurrent state, never the\n" +
        "  history: every turn takes the same time and memory however long the conversation (the state is a fixed size:\n" +
        "  xlstm-run info shows it). A fresh session starts with BOS, then the -p/-f preamble if given.\n" +
        "Base models have no chat template: shape the dialog with a preamble, --in-prefix/--in-suffix (\\n = newline) and\n" +
        "  stop strings, e.g.  xlstm-run chat -p \"A dialog.\" -r \"User:\" --in-prefix \" \" --in-suffix \"\\nAssistant:\"\n" +
        "  A reply ends at <|endoftext|>, at a -r text (kept in the state, shown before your next input), after -n tokens\n" +
        "  (default 256 per reply), or at Ctrl-C.\n" +
        "Keys (on a terminal): Enter sends; a line ending in \\ continues on the next line; Ctrl-J or Alt-Enter adds a\n" +
        "  newline, a paste keeps its newlines; Up/Down walk the history; Left/Right, Home/End, Ctrl-A/E/K/U/W edit.\n" +
        "  Ctrl-C stops the reply (the state keeps what was generated); Ctrl-C again, or Ctrl-D on an empty line, exits.\n" +
        "Commands: /save FILE (the state; /save! FILE overwrites), /load FILE, /reset, /help, /exit. Text that starts\n" +
        "  with / is sent with //.\n" +
        "Without a terminal (stdin a pipe or a file) every line is a turn and stdout gets only the replies, each ending\n" +
        "  with a newline.";

    public static Command Create()
    {
        var o = new GenerateCommand.Options(chat: true);
        var cmd = new Command("chat", "Interactive session that keeps the recurrent state between turns (llama.cpp's -i).");
        o.AddTo(cmd, chat: true);
        HelpNotes.Add(cmd, Notes);
        cmd.SetAction(pr => Program.Run(() => Execute(pr, o)));
        return cmd;
    }

    public static int Execute(ParseResult pr, GenerateCommand.Options o)
    {
        var (quiet, verbose, perf) = o.Output(pr);
        var so = o.Sampling;
        int maxTokens = so.Tokens(pr, idsMode: false);
        long seed = so.ResolveSeed(pr);
        var sampling = so.Build(pr, 0.8f, seed);
        string[] stops = so.StopStrings(pr);
        string prefix = Unescape(pr.GetValue(o.InPrefix) ?? ""), suffix = Unescape(pr.GetValue(o.InSuffix) ?? "");
        string? promptOpt = pr.GetValue(o.Prompt), fileOpt = pr.GetValue(o.File);
        if (promptOpt != null && fileOpt != null) throw new BadInputException("give the preamble one way: -p TEXT or -f FILE");
        if (fileOpt is "-" or "/dev/stdin") throw new BadInputException("chat reads your turns from stdin: give the preamble with -p or a file");
        string? preamble = fileOpt != null ? TextIO.StripOneNewline(TextIO.ReadFile(fileOpt)) : promptOpt;
        string? savePath = pr.GetValue(o.Model.SaveState);
        if (!string.IsNullOrEmpty(savePath)) OutputPath.Check(savePath, force: true);

        var saveOut = o.Model.CheckSaveState(pr, stdoutTaken: false);
        var load = Stopwatch.StartNew();
        using var s = ModelSession.Open(pr, o.Model, needTokenizer: true);
        double loadMs = load.Elapsed.TotalMilliseconds;
        bool ignoreEos = pr.GetValue(so.IgnoreEos);
        if (maxTokens == -1 && ignoreEos && stops.Length == 0)
            throw new BadInputException("-n -1 with --ignore-eos and no -r would never end a reply: give a token count");

        var chat = new Session(s, sampling, maxTokens, ignoreEos ? null : s.Tokenizer!.EosId, stops, prefix, suffix, preamble,
            !pr.GetValue(so.NoBos), Ansi.For(pr.GetValue(o.Color)), quiet);
        if (verbose)
        {
            var c = s.Config;
            Console.Error.WriteLine($"model: {s.File.Path}: hidden {c.Hidden}, blocks {c.Blocks}, heads {c.Heads}, vocab {c.Vocab}, loaded in {loadMs:F0} ms");
            Console.Error.WriteLine($"backend: {s.Backend.Name} ({s.Backend.Device})");
            Console.Error.WriteLine($"state: {Units.Bytes(c.StateFloats * 4L)}, position {s.Runner.Position}");
            Console.Error.WriteLine($"sampling: {sampling.Describe()}; up to {(maxTokens < 0 ? "any number of" : maxTokens.ToString(CultureInfo.InvariantCulture))} tokens per reply");
        }
        int rc = chat.Run();
        s.SaveStateIfAsked(saveOut);
        if (perf && rc != ExitCodes.BrokenPipe) chat.PrintStats(loadMs);
        return rc;
    }

    /// <summary>\n, \t, \r, \\, \" and \' in --in-prefix/--in-suffix, as llama.cpp reads them.</summary>
    public static string Unescape(string s)
    {
        if (!s.Contains('\\')) return s;
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] != '\\' || i + 1 == s.Length)
            {
                sb.Append(s[i]);
                continue;
            }
            char c = s[++i];
            switch (c)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\' or '"' or '\'': sb.Append(c); break;
                default: sb.Append('\\').Append(c); break; // unknown escape: kept as written
            }
        }
        return sb.ToString();
    }

    /// <summary>One interactive session: input, turns, commands, statistics.</summary>
    private sealed class Session(ModelSession s, SamplingParams sampling, int maxTokens, int? eos, string[] stops,
        string prefix, string suffix, string? preamble, bool bos, Ansi colors, bool quiet)
    {
        private readonly bool _tty = Ansi.StdinIsTerminal;
        private readonly bool _editor = Ansi.StdinIsTerminal && Ansi.StdoutIsTerminal;
        private readonly StreamWriter _out = TextIO.OpenStdout();
        private StreamReader? _lines;
        private LineEditor? _ed;
        private bool _needBos;
        private int _turns, _promptTokens, _genTokens, _evalRuns;
        private double _promptMs, _genMs;
        private string? _stopShown; // the stop string that ended the last reply, shown before the next input

        public int Run()
        {
            _needBos = s.Runner.Position == 0 && bos;
            FeedPreamble();
            _ed = _editor ? new LineEditor(colors) : null;
            if (_editor && !quiet)
                Console.Error.WriteLine($"chat: {Path.GetFileName(s.File.Path)} on {s.Backend.Name}. Enter sends, \\ at the end of a line continues it; " +
                                        "Ctrl-C stops a reply, Ctrl-D exits; /help lists commands.");
            using var ctrlC = new CtrlC { IgnoreWhenIdle = _editor };
            bool lastWasCtrlC = false;
            try
            {
                while (true)
                {
                    var (status, input) = ReadInput();
                    if (status == LineStatus.Eof) return ExitCodes.Ok;
                    if (status == LineStatus.Interrupt)
                    {
                        if (input.Length > 0) { lastWasCtrlC = false; continue; } // Ctrl-C drops the line being typed
                        if (lastWasCtrlC) return ExitCodes.Ok;
                        lastWasCtrlC = true;
                        Console.Error.WriteLine("(Ctrl-C again or Ctrl-D to exit)");
                        continue;
                    }
                    lastWasCtrlC = false;
                    _ed?.AddHistory(input);
                    if (input.StartsWith('/') && !input.StartsWith("//", StringComparison.Ordinal))
                    {
                        if (!Command(input)) return ExitCodes.Ok;
                        continue;
                    }
                    if (input.StartsWith("//", StringComparison.Ordinal)) input = input[1..];
                    var reason = Turn(input, ctrlC);
                    if (reason == FinishReason.Cancelled) lastWasCtrlC = true;
                }
            }
            catch (StdoutClosedException)
            {
                return ExitCodes.BrokenPipe;
            }
        }

        /// <summary>The next input, with lines ending in \ joined to the next by a newline.</summary>
        private (LineStatus, string) ReadInput()
        {
            var text = new StringBuilder();
            string prompt = _stopShown != null ? PromptAfterStop(_stopShown) : "> ";
            while (true)
            {
                LineResult r;
                if (_ed != null) r = _ed.Read(text.Length == 0 ? prompt : "... ");
                else
                {
                    if (_tty && !quiet) Console.Error.Write(text.Length == 0 ? prompt : "... ");
                    _lines ??= new StreamReader(StdStreams.Stdin, TextIO.Utf8, detectEncodingFromByteOrderMarks: true, bufferSize: 4096, leaveOpen: true);
                    string? line = _lines.ReadLine();
                    r = line == null ? new LineResult(LineStatus.Eof, "") : new LineResult(LineStatus.Line, line);
                }
                if (r.Status == LineStatus.Eof && text.Length > 0) return (LineStatus.Line, text.ToString());
                if (r.Status != LineStatus.Line) return (r.Status, text.Append(r.Text).ToString());
                if (r.Text.EndsWith('\\'))
                {
                    text.Append(r.Text, 0, r.Text.Length - 1).Append('\n');
                    continue;
                }
                _stopShown = null;
                return (LineStatus.Line, text.Append(r.Text).ToString());
            }
        }

        private static string PromptAfterStop(string stop)
        {
            string p = stop.TrimStart('\r', '\n');
            int nl = p.LastIndexOf('\n');
            if (nl >= 0) p = p[(nl + 1)..];
            if (p.Length == 0) return "> ";
            return p.EndsWith(' ') ? p : p + " ";
        }

        /// <summary>BOS and the preamble, in one prefill; without a preamble BOS waits for the first turn, so that turn is
        /// fed exactly as `generate -p` feeds its prompt.</summary>
        private void FeedPreamble()
        {
            if (preamble == null) return;
            var tok = s.Tokenizer!;
            int[] ids = tok.Encode(preamble);
            if (_needBos) ids = [tok.BosId, .. ids];
            if (ids.Length == 0) return;
            var t0 = Stopwatch.GetTimestamp();
            s.Runner.Forward(ids, LogitsMode.None, default);
            _promptMs += Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            _promptTokens += ids.Length;
            _needBos = false;
        }

        /// <summary>One turn: feed prefix + input + suffix, stream the reply.</summary>
        private FinishReason Turn(string input, CtrlC ctrlC)
        {
            var tok = s.Tokenizer!;
            int[] ids = tok.Encode(prefix + input + suffix);
            if (_needBos) ids = [tok.BosId, .. ids];
            if (ids.Length == 0) return FinishReason.Length;
            _needBos = false;
            if (_editor && suffix.Length > 0) Write(colors.Frame(suffix.TrimStart('\r', '\n')));
            using var cancel = new CancellationTokenSource();
            ctrlC.Current = cancel;
            bool endsWithNewline = true;
            GenerationResult r;
            try
            {
                r = Generator.Run(new RunnerGenerationModel(s.Runner), new GenerationRequest
                {
                    Prompt = ids,
                    Sampling = sampling,
                    ValidVocab = s.ValidVocab,
                    MaxTokens = maxTokens,
                    EosId = eos,
                    StopStrings = stops,
                    Tokenizer = tok,
                    FeedLastToken = true,
                    Cancel = cancel.Token,
                }, piece =>
                {
                    Write(piece);
                    endsWithNewline = piece.EndsWith('\n');
                });
            }
            finally
            {
                ctrlC.Current = null;
            }
            if (!endsWithNewline || (r.Text.Length == 0 && _editor)) Write("\n");
            _turns++;
            _promptTokens += r.PromptTokens;
            _genTokens += r.Ids.Count;
            _promptMs += r.PromptMs;
            _genMs += r.EvalMs;
            _evalRuns += r.EvalRuns;
            _stopShown = r.FinishReason == FinishReason.Stop && _editor ? MatchedStop(r) : null;
            return r.FinishReason;
        }

        /// <summary>The stop string that ended the reply (it is in the state, so it is shown before the next input).</summary>
        private string? MatchedStop(GenerationResult r)
        {
            string full = s.Tokenizer!.Decode(r.Ids.ToArray());
            if (!full.StartsWith(r.Text, StringComparison.Ordinal)) return null;
            string tail = full[r.Text.Length..];
            return stops.Where(x => tail.StartsWith(x, StringComparison.Ordinal)).OrderByDescending(x => x.Length).FirstOrDefault();
        }

        private void Write(string text)
        {
            _out.Write(text);
            _out.Flush();
        }

        /// <summary>Runs a /command; false = exit.</summary>
        private bool Command(string line)
        {
            string name = line.Split(' ', 2)[0];
            string arg = line.Length > name.Length ? line[(name.Length + 1)..].Trim() : "";
            try
            {
                switch (name)
                {
                    case "/exit" or "/quit" or "/bye":
                        return false;
                    case "/help" or "/?":
                        Console.Error.WriteLine("/save FILE    save the state (the whole conversation so far) to FILE; /save! FILE overwrites");
                        Console.Error.WriteLine("/load FILE    continue from a saved state");
                        Console.Error.WriteLine("/reset        forget everything: a fresh state (BOS and the preamble again)");
                        Console.Error.WriteLine("/exit         leave (also Ctrl-D on an empty line)");
                        Console.Error.WriteLine("//text        send text that starts with /");
                        return true;
                    case "/save" or "/save!":
                        if (arg.Length == 0) throw new BadInputException("/save needs a file name");
                        if (File.Exists(arg) && name != "/save!") throw new BadInputException($"{arg}: already exists (use /save! {arg} to overwrite)");
                        OutputPath.Check(arg, force: true);
                        StateFile.Save(arg, s.Config, s.Runner.SaveState(), s.Runner.Position);
                        if (!quiet) Console.Error.WriteLine($"saved the state to {arg} (position {s.Runner.Position})");
                        return true;
                    case "/load":
                        if (arg.Length == 0) throw new BadInputException("/load needs a file name");
                        var st = StateFile.Load(arg, s.Config, out long pos);
                        s.Runner.LoadState(st, pos);
                        _needBos = false;
                        _stopShown = null;
                        if (!quiet) Console.Error.WriteLine($"loaded the state from {arg} (position {pos})");
                        return true;
                    case "/reset":
                        s.Runner.ResetState();
                        _needBos = bos;
                        _stopShown = null;
                        FeedPreamble();
                        if (!quiet) Console.Error.WriteLine("the state is fresh again");
                        return true;
                    default:
                        throw new BadInputException($"unknown command {name} (/help lists them; send text that starts with / as //)");
                }
            }
            catch (BadInputException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return true;
            }
        }

        public void PrintStats(double loadMs)
        {
            var ci = CultureInfo.InvariantCulture;
            Console.Error.WriteLine(string.Format(ci, "chat: {0} turns; load {1:F0} ms; read {2} tokens in {3:F0} ms ({4:F1} t/s); generated {5} tokens in {6:F0} ms ({7:F1} t/s); state position {8}",
                _turns, loadMs, _promptTokens, _promptMs, _promptMs > 0 ? 1000 * _promptTokens / _promptMs : 0,
                _genTokens, _genMs, _genMs > 0 ? 1000 * _evalRuns / _genMs : 0, s.Runner.Position));
        }
    }
}
