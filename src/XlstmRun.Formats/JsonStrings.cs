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

    private static BadInputException Bad(string source) =>
        new($"{source}: a JSON string holds an invalid \\u escape (a lone UTF-16 surrogate)");
}
