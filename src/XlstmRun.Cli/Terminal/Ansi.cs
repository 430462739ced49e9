namespace XlstmRun.Cli.Terminal;

/// <summary>
/// Colours for --color: only when asked and stdout is a terminal that is not "dumb" (and NO_COLOR is not set), so a
/// pipe or a file never gets escape codes.
/// </summary>
internal sealed class Ansi
{
    public bool On { get; }

    private Ansi(bool on) { On = on; }

    public static Ansi For(bool requested) => new(requested && StdoutIsTerminal
        && Environment.GetEnvironmentVariable("TERM") is not "dumb"
        && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NO_COLOR")));

    public static readonly Ansi Off = new(false);

    public static bool StdinIsTerminal => Native.IsATty(0) == 1;
    public static bool StdoutIsTerminal => Native.IsATty(1) == 1;

    private string Wrap(string code, string s) => On && s.Length > 0 ? $"\e[{code}m{s}\e[0m" : s;

    /// <summary>The prompt as given (yellow, as llama.cpp shows it).</summary>
    public string Prompt(string s) => Wrap("33", s);
    /// <summary>The user's input in a chat (green).</summary>
    public string User(string s) => Wrap("32", s);
    /// <summary>Text the program adds around turns: prefix, suffix, stop strings (dim).</summary>
    public string Frame(string s) => Wrap("2", s);
    public string UserStart => On ? "\e[32m" : "";
    public string Reset => On ? "\e[0m" : "";
}
