using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;

namespace XlstmRun.Cli;

/// <summary>
/// A "Notes:" section at the end of a command's --help, so that the command list stays one line per command while
/// `COMMAND --help` still explains the rules.
/// </summary>
internal static class HelpNotes
{
    private static readonly Dictionary<Command, string> Notes = new();

    public static void Add(Command c, string text) => Notes[c] = text;

    public static void Install(RootCommand root)
    {
        var option = root.Options.OfType<HelpOption>().FirstOrDefault();
        if (option?.Action is SynchronousCommandLineAction inner) option.Action = new WithNotes(inner);
    }

    private sealed class WithNotes(SynchronousCommandLineAction inner) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            int rc = inner.Invoke(parseResult);
            if (Notes.TryGetValue(parseResult.CommandResult.Command, out var text))
            {
                Console.Out.WriteLine("Notes:");
                foreach (var line in text.Split('\n')) Console.Out.WriteLine("  " + line);
                Console.Out.WriteLine();
            }
            return rc;
        }
    }
}
