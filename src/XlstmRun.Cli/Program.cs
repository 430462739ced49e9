using System.CommandLine;
using System.CommandLine.Parsing;
using XlstmRun.Cli.Commands;
using XlstmRun.Formats;

namespace XlstmRun.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand(
            "xlstm-run: run xLSTM language models (the NX-AI xLSTM 7B architecture) from one GGUF file.\n" +
            "Without a command it generates text with the options below (same as 'generate'):\n" +
            "  xlstm-run -m model.gguf -p \"Once upon a time\"\n" +
            "  xlstm-run -m model.gguf Once upon a time          (prompt words)\n" +
            "  xlstm-run -m model.gguf -f prompt.txt -n 100 --temp 0\n" +
            "  cat notes.txt | xlstm-run -m model.gguf \"Summarize:\"");
        GenerateCommand.AddTo(root);
        root.Subcommands.Add(ConvertCommand.Create());
        root.Subcommands.Add(InitCommand.Create());
        root.Subcommands.Add(LogitsCommand.Create());
        root.Subcommands.Add(InfoCommand.Create());
        root.Subcommands.Add(PerplexityCommand.Create());
        root.Subcommands.Add(TokenizeCommand.Create());
        root.Subcommands.Add(TokenizeCommand.CreateDetokenize());
        root.Subcommands.Add(BatchCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        HelpNotes.Install(root);

        var parse = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (parse.Errors.Count > 0 && !WantsHelp(args))
        {
            // One line: the first errors, then where to look.
            var cmd = parse.CommandResult.Command;
            string help = cmd is RootCommand ? "xlstm-run --help" : $"xlstm-run {cmd.Name} --help";
            Console.Error.WriteLine($"error: {string.Join("; ", parse.Errors.Take(3).Select(e => OneLine(e.Message)))} (see '{help}')");
            return ExitCodes.BadInput;
        }
        return Run(() => parse.Invoke());
    }

    private static bool WantsHelp(string[] args) => args.Any(a => a is "-h" or "--help" or "-?");

    /// <summary>Runs a command body, turning exceptions into one-line errors and exit codes.</summary>
    public static int Run(Func<int> body)
    {
        try
        {
            return body();
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

public static class ExitCodes
{
    public const int Ok = 0, Failure = 1, BadInput = 2, Interrupted = 130;
}
