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
            "Without a subcommand it generates text: xlstm-run -m model.gguf -p \"Once upon a time\"");
        GenerateCommand.AddTo(root);
        root.Subcommands.Add(ConvertCommand.Create());
        root.Subcommands.Add(InitCommand.Create());
        root.Subcommands.Add(LogitsCommand.Create());
        root.Subcommands.Add(InfoCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());

        var parse = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (parse.Errors.Count > 0 && !WantsHelp(args))
        {
            foreach (var e in parse.Errors.Take(3)) Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine("Run 'xlstm-run --help' (or 'xlstm-run COMMAND --help') for usage.");
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

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}

public static class ExitCodes
{
    public const int Ok = 0, Failure = 1, BadInput = 2;
}
