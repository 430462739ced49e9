using System.Globalization;
using System.Text;

namespace XlstmRun.Formats.IO;

/// <summary>
/// Makes untrusted text (names and strings from input files, file names) safe to print on a terminal: control characters
/// (C0, DEL, C1, so ESC sequences too), line and paragraph separators, bidirectional overrides and lone surrogates are
/// shown as \xNN or \u{NNNN} escapes; everything else, other scripts included, is kept as it is.
/// </summary>
public static class TerminalText
{
    public static bool NeedsEscape(char c) =>
        c < 0x20 || c is >= '\u007f' and <= '\u009f' || c is '\u2028' or '\u2029' || c is >= '\u202a' and <= '\u202e'
        || c is >= '\u2066' and <= '\u2069' || c is '\u200e' or '\u200f' or '\u061c' || c == '\ufeff';

    /// <summary>The text with every unsafe character escaped (a backslash itself is kept).</summary>
    public static string Escape(string s)
    {
        bool clean = true;
        for (int i = 0; i < s.Length && clean; i++)
            clean = !NeedsEscape(s[i]) && !char.IsSurrogate(s[i]);
        if (clean) return s;
        var sb = new StringBuilder(s.Length + 16);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                sb.Append(c).Append(s[++i]);
            }
            else if (char.IsSurrogate(c) || NeedsEscape(c))
            {
                if (c < 0x100) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                else sb.Append("\\u{").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture)).Append('}');
            }
            else sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>Longest message printed: a name from a hostile file can be megabytes long.</summary>
    public const int MaxLine = 2000;

    /// <summary>
    /// A message on one line: line breaks and tabs become spaces (runs collapse), then <see cref="Escape"/>; a line
    /// longer than <see cref="MaxLine"/> keeps its start and end around "[… N characters …]".
    /// </summary>
    public static string OneLine(string s)
    {
        var line = Escape(string.Join(' ', s.Split(['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)));
        if (line.Length <= MaxLine) return line;
        int keep = MaxLine / 2 - 20;
        return string.Concat(line.AsSpan(0, keep), $" [… {line.Length - 2 * keep} characters …] ", line.AsSpan(line.Length - keep));
    }
}
