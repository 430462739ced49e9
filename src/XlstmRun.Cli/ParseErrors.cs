using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.RegularExpressions;

namespace XlstmRun.Cli;

/// <summary>
/// System.CommandLine's parse errors in our words, one line: "-s: 'abc' is not an integer" rather than "Cannot parse
/// argument 'abc' for option '-s' as expected type 'System.Int64'". Only the first error is shown (the others usually
/// follow from it).
/// </summary>
internal static partial class ParseErrors
{
    [GeneratedRegex(@"^Unrecognized command or argument '(?<v>.*)'\.$", RegexOptions.Singleline)]
    private static partial Regex Unrecognized();
    [GeneratedRegex(@"^Required argument missing for option: '(?<o>.*)'\.$", RegexOptions.Singleline)]
    private static partial Regex MissingValue();
    [GeneratedRegex(@"^Option '(?<o>.*)' is required\.$", RegexOptions.Singleline)]
    private static partial Regex RequiredOption();
    [GeneratedRegex(@"^Required argument '(?<a>.*)' missing for command: '(?<c>.*)'\.$", RegexOptions.Singleline)]
    private static partial Regex RequiredArgument();
    [GeneratedRegex(@"^Cannot parse argument '(?<v>.*)' for (option|command) '(?<o>.*)' as expected type '(?<t>[^']*)'\.", RegexOptions.Singleline)]
    private static partial Regex CannotParse();
    [GeneratedRegex(@"^Cannot parse argument '(?<v>.*)' as expected type '(?<t>[^']*)'\.", RegexOptions.Singleline)]
    private static partial Regex CannotParsePlain();
    [GeneratedRegex(@"^Argument '(?<v>.*)' not recognized\. Must be one of:(?<list>.*)$", RegexOptions.Singleline)]
    private static partial Regex NotAmong();
    [GeneratedRegex(@"^Option '(?<o>.*)' expects a single argument but (?<n>\d+) were provided\.$", RegexOptions.Singleline)]
    private static partial Regex TooMany();
    [GeneratedRegex(@"'([^']*)'")]
    private static partial Regex Quoted();

    /// <summary>The first error of <paramref name="parse"/> as one line, without "error: ".</summary>
    public static string Describe(ParseResult parse)
    {
        var e = parse.Errors[0];
        string msg = e.Message;
        Match m;
        if ((m = Unrecognized().Match(msg)).Success)
        {
            string v = m.Groups["v"].Value;
            if (v.StartsWith('-') && v.Length > 1)
            {
                var cmd = parse.CommandResult.Command;
                string? hint = CommandWords.SuggestOption(cmd, v);
                return $"unknown option '{Short(v)}'" + (hint != null ? $": did you mean {hint}?" : "");
            }
            return $"unexpected argument '{Short(v)}'";
        }
        if ((m = MissingValue().Match(msg)).Success) return $"{m.Groups["o"].Value} needs a value";
        if ((m = RequiredOption().Match(msg)).Success) return $"missing {m.Groups["o"].Value} (required)";
        if ((m = RequiredArgument().Match(msg)).Success) return $"missing {m.Groups["a"].Value} (required)";
        if ((m = CannotParse().Match(msg)).Success) return $"{m.Groups["o"].Value}: '{Short(m.Groups["v"].Value)}' is not {Kind(m.Groups["t"].Value)}";
        if ((m = CannotParsePlain().Match(msg)).Success) return $"{SymbolName(e)}'{Short(m.Groups["v"].Value)}' is not {Kind(m.Groups["t"].Value)}";
        if ((m = NotAmong().Match(msg)).Success)
        {
            var allowed = Quoted().Matches(m.Groups["list"].Value).Select(x => x.Groups[1].Value);
            return $"{SymbolName(e)}'{Short(m.Groups["v"].Value)}' is not one of {string.Join(", ", allowed)}";
        }
        if ((m = TooMany().Match(msg)).Success) return $"{m.Groups["o"].Value} takes one value (got {m.Groups["n"].Value}; quote a value that has spaces)";
        return Flat(msg);
    }

    private static string SymbolName(ParseError e) => e.SymbolResult switch
    {
        ArgumentResult { Parent: OptionResult o } => o.Option.Name + ": ",
        OptionResult o => o.Option.Name + ": ",
        ArgumentResult a => a.Argument.Name + ": ",
        _ => "",
    };

    private static string Short(string v) => Flat(v.Length > 60 ? v[..60] + "..." : v);

    private static string Flat(string s) => string.Join(' ', s.Split(['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private static string Kind(string type) => type switch
    {
        "System.Int32" or "System.Int64" or "System.Int16" => "an integer",
        "System.UInt32" or "System.UInt64" or "System.UInt16" or "System.Byte" => "a whole number of 0 or more",
        "System.Single" or "System.Double" or "System.Decimal" => "a number",
        "System.Boolean" => "true or false",
        _ => "a valid value",
    };
}
