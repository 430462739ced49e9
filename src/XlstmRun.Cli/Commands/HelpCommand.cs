using System.CommandLine;
using System.Reflection;
using XlstmRun.Formats;

namespace XlstmRun.Cli.Commands;

/// <summary>`help [COMMAND]` (the same as `COMMAND --help`) and `version`.</summary>
internal static class HelpCommand
{
    public static Command Create(RootCommand root)
    {
        var name = new Argument<string[]>("COMMAND") { Description = "The command to explain (none: the overview)", Arity = ArgumentArity.ZeroOrMore };
        var cmd = new Command("help", "Show the help of xlstm-run or of a command (the same as COMMAND --help).") { name };
        cmd.SetAction(pr => Program.Run(() =>
        {
            var words = pr.GetValue(name) ?? [];
            if (words.Length > 1) throw new BadInputException("help takes one command name");
            if (words.Length == 0) return root.Parse(["--help"]).Invoke(Program.Invocation);
            var target = CommandWords.Find(root, words[0]);
            if (target == null)
            {
                string? hint = CommandWords.Suggest(root, words[0]);
                throw new BadInputException($"unknown command '{words[0]}'" + (hint != null ? $": did you mean '{hint}'?" : " (xlstm-run help lists them)"));
            }
            return root.Parse([target.Name, "--help"]).Invoke(Program.Invocation);
        }));
        return cmd;
    }

    public static Command CreateVersion()
    {
        var cmd = new Command("version", "Print the version of xlstm-run.");
        cmd.SetAction(pr =>
        {
            Console.Out.WriteLine($"xlstm-run {Text}");
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>The version, with the commit it was built from when known (what --version prints).</summary>
    public static string Text
    {
        get
        {
            var asm = typeof(HelpCommand).Assembly;
            return asm.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
                   ?? asm.GetName().Version?.ToString(3) ?? "unknown";
        }
    }
}
