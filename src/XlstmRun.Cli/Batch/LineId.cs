using System.Globalization;
using System.Text;
using System.Text.Json;
using XlstmRun.Formats;

namespace XlstmRun.Cli.Batch;

/// <summary>
/// The id of a prompt line: the <c>"id"</c> the line gives (a string or an integer), else its line number. Ids are
/// unique in a file (a later line repeating one gets an error record); records are keyed by line number all the same.
/// </summary>
internal readonly record struct LineId(string? Text, long Number)
{
    public static LineId OfLine(int line) => new(null, line);

    public void WriteTo(Utf8JsonWriter w)
    {
        if (Text != null) w.WriteString("id", Text);
        else w.WriteNumber("id", Number);
    }

    /// <summary>The id as JSON, escaped and shortened for a terminal.</summary>
    public string Display => Text != null ? Shown.Quote(Text) : Number.ToString(CultureInfo.InvariantCulture);

    /// <summary>Reads a record's or a line's <c>"id"</c> value; null if it is not a string or a 64-bit integer (or not text).</summary>
    public static LineId? From(JsonElement e)
    {
        if (e.ValueKind == JsonValueKind.Number) return e.TryGetInt64(out long n) ? new LineId(null, n) : null;
        if (e.ValueKind != JsonValueKind.String) return null;
        try
        {
            return new LineId(e.GetString()!, 0);
        }
        catch (InvalidOperationException)
        {
            return null; // a lone UTF-16 surrogate escape
        }
    }
}

/// <summary>Untrusted strings made safe to print: JSON-quoted (control characters escaped) and shortened.</summary>
internal static class Shown
{
    public static string Quote(string s, int max = 60)
    {
        if (s.Length > max)
        {
            int cut = max;
            if (char.IsHighSurrogate(s[cut - 1])) cut--;
            s = s[..cut] + "…";
        }
        return JsonStrings.Quote(s);
    }

    /// <summary>A message that may quote input, with control characters (terminal escapes) written as \uXXXX.</summary>
    public static string Clean(string s)
    {
        if (!s.Any(IsControl)) return s;
        var b = new StringBuilder(s.Length + 16);
        foreach (char c in s)
            if (IsControl(c)) b.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
            else b.Append(c);
        return b.ToString();
    }

    private static bool IsControl(char c) => c < 0x20 || (c >= 0x7f && c <= 0x9f);

    /// <summary>Replaces lone UTF-16 surrogates by U+FFFD, so that the text can be written as JSON.</summary>
    public static string ValidText(string s)
    {
        int i = 0;
        for (; i < s.Length; i++)
        {
            if (!char.IsSurrogate(s[i])) continue;
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
            break;
        }
        if (i >= s.Length) return s;
        var b = new StringBuilder(s.Length);
        for (int j = 0; j < s.Length; j++)
        {
            char c = s[j];
            if (char.IsHighSurrogate(c) && j + 1 < s.Length && char.IsLowSurrogate(s[j + 1])) { b.Append(c).Append(s[++j]); }
            else b.Append(char.IsSurrogate(c) ? '\uFFFD' : c);
        }
        return b.ToString();
    }
}
