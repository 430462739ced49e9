using System.CommandLine;
using System.CommandLine.Parsing;
using XlstmRun.Cli.Commands;
using XlstmRun.Cli.Terminal;
using XlstmRun.Formats;

namespace XlstmRun.Cli;

internal static class Program
{
    public static int Main(string[] args)
    {
        StdStreams.Install();
        var root = CreateRoot();
        return Run(() => Dispatch(root, args));
    }

    /// <summary>The command tree: generation on the root, one subcommand per task.</summary>
    public static RootCommand CreateRoot()
    {
        var root = new RootCommand(
            "xlstm-run: run xLSTM language models (the NX-AI xLSTM 7B architecture) from one GGUF file.\n" +
            "Without a command it generates text with the options below (same as 'generate'):\n" +
            "  xlstm-run -m model.gguf -p \"Once upon a time\"\n" +
            "  xlstm-run -m model.gguf -f prompt.txt -n 100 --temp 0\n" +
            "  cat notes.txt | xlstm-run -m model.gguf -p \"Summarize:\"\n" +
            "  xlstm-run chat -m model.gguf                      (interactive; also -i)");
        GenerateCommand.AddTo(root);
        root.Subcommands.Add(ChatCommand.Create());
        root.Subcommands.Add(ConvertCommand.Create());
        root.Subcommands.Add(QuantizeCommand.Create());
        root.Subcommands.Add(InitCommand.Create());
        root.Subcommands.Add(LogitsCommand.Create());
        root.Subcommands.Add(InfoCommand.Create());
        root.Subcommands.Add(PerplexityCommand.Create());
        root.Subcommands.Add(TokenizeCommand.Create());
        root.Subcommands.Add(TokenizeCommand.CreateDetokenize());
        root.Subcommands.Add(BatchCommand.Create());
        root.Subcommands.Add(BatchMergeCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(CheckCommand.Create());
        root.Subcommands.Add(HelpCommand.Create(root));
        root.Subcommands.Add(HelpCommand.CreateVersion());
        HelpNotes.Install(root);
        return root;
    }

    private static int Dispatch(RootCommand root, string[] args)
    {
        var prep = CommandWords.Prepare(root, args);
        DoubleDash = prep.DoubleDash;
        var parse = root.Parse(prep.Args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (parse.Errors.Count > 0 && !WantsHelp(prep.Args))
        {
            // One line: the first error in our words, then where to look.
            var cmd = parse.CommandResult.Command;
            string help = cmd is RootCommand ? "xlstm-run --help" : $"xlstm-run {cmd.Name} --help";
            Console.Error.WriteLine($"error: {ParseErrors.Describe(parse)} (see '{help}')");
            return ExitCodes.BadInput;
        }
        return parse.Invoke(Invocation);
    }

    /// <summary>Exceptions reach <see cref="Run"/> (one-line errors, a closed stdout ends quietly) instead of System.CommandLine's printer.</summary>
    public static readonly InvocationConfiguration Invocation = new() { EnableDefaultExceptionHandler = false };

    /// <summary>Whether the command line had "--" (the words after it are a prompt, whatever they look like).</summary>
    public static bool DoubleDash { get; private set; }

    private static bool WantsHelp(string[] args) => args.Any(a => a is "-h" or "--help" or "-?");

    /// <summary>Runs a command body, turning exceptions into one-line errors and exit codes.</summary>
    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (StdoutClosedException)
        {
            // `| head` closed the pipe: stop quietly, as a Unix tool killed by SIGPIPE would
            return ExitCodes.BrokenPipe;
        }
        catch (BadInputException e)
        {
            Console.Error.WriteLine($"error: {OneLine(e.Message)}");
            return ExitCodes.BadInput;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("error: cancelled");
            return ExitCodes.Failure;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"error: {OneLine(e.Message)}");
            if (Environment.GetEnvironmentVariable("XLSTM_DEBUG") == "1") Console.Error.WriteLine(e);
            return ExitCodes.Failure;
        }
    }

    /// <summary>One line, with untrusted text (names from input files, file names) escaped for the terminal.</summary>
    private static string OneLine(string s) => Formats.IO.TerminalText.OneLine(s);
}

internal static class ExitCodes
{
    public const int Ok = 0, Failure = 1, BadInput = 2, Interrupted = 130, BrokenPipe = 141;
}
