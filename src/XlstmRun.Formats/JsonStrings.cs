using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace XlstmRun.Formats;

/// <summary>
/// Strings of untrusted JSON: System.Text.Json throws InvalidOperationException for an escape it cannot turn into a
/// string (a lone UTF-16 surrogate such as "\ud800"); these accessors make that one line of bad input instead.
/// </summary>
public static class JsonStrings
{
    public static string Value(JsonElement e, string source)
    {
        try { return e.GetString() ?? ""; }
        catch (InvalidOperationException) { throw Bad(source); }
    }

    public static string Name(JsonProperty p, string source)
    {
        try { return p.Name; }
        catch (InvalidOperationException) { throw Bad(source); }
    }

    /// <summary>How every JSON output of the program is written: Utf8JsonWriter with control characters, quotes and
    /// backslashes escaped, other text (non-ASCII, &lt;, &gt;, &amp;) kept readable.</summary>
    public static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The JSON string literal of <paramref name="s"/>, quotes included (for messages that quote text).</summary>
    public static string Quote(string s)
    {
        var buffer = new ArrayBufferWriter<byte>(s.Length + 16);
        using (var w = new Utf8JsonWriter(buffer, WriterOptions)) w.WriteStringValue(s);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static BadInputException Bad(string source) =>
        new($"{source}: a JSON string holds an invalid \\u escape (a lone UTF-16 surrogate)");
}
