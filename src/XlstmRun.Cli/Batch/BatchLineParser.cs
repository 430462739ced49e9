using System.Text.Json;
using System.Text.Unicode;
using XlstmRun.Formats;
using XlstmRun.Text.Sampling;

namespace XlstmRun.Cli.Batch;

/// <summary>What a line does not set: the command line's generation options.</summary>
internal sealed class BatchDefaults
{
    /// <summary>Sampling for lines that set nothing; its <c>Seed</c> is the base seed.</summary>
    public required SamplingParams Sampling { get; init; }
    public required int MaxTokens { get; init; }
    public required string[] Stop { get; init; }
    public bool NoBos { get; init; }
    public bool IgnoreEos { get; init; }

    /// <summary>A line without "seed" gets the base seed plus its line number, so that identical prompts give
    /// different samples and a line's result does not depend on the lines run before it.</summary>
    public ulong SeedFor(int line) => unchecked(Sampling.Seed + (ulong)line);
}

/// <summary>One line's generation settings, every default resolved.</summary>
internal sealed class BatchRequest
{
    public required string Prompt { get; init; }
    public required int MaxTokens { get; init; }
    public required SamplingParams Sampling { get; init; }
    public required string[] Stop { get; init; }
}

/// <summary>The outcome of parsing one line: a request, or an error (with the line's id when it could be read).</summary>
internal sealed class ParsedLine
{
    /// <summary>The id the line gives, when it has a valid one.</summary>
    public LineId? Id { get; set; }
    public BatchRequest? Request { get; set; }
    public string? Error { get; set; }
    /// <summary>The line is not a JSON object at all (not JSON, not UTF-8, an array...).</summary>
    public bool NotObject { get; set; }
}

/// <summary>
/// Parses one JSONL prompt line. Every way a line can be wrong (not UTF-8, not JSON, not an object, unknown or repeated
/// keys, wrong types, values out of range, text that is not valid Unicode) gives an error, never an exception.
/// </summary>
internal static class BatchLineParser
{
    public const string KeyList = "id, prompt, n_predict or max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, " +
        "repeat_last_n, presence_penalty, frequency_penalty, seed, stop";

    private static readonly HashSet<string> Keys = new(StringComparer.Ordinal)
    {
        "id", "prompt", "n_predict", "max_tokens", "temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n",
        "presence_penalty", "frequency_penalty", "seed", "stop",
    };

    private static readonly JsonDocumentOptions DocOptions = new() { MaxDepth = 16 };

    public static ParsedLine Parse(ReadOnlyMemory<byte> utf8, int line, BatchDefaults d)
    {
        var res = new ParsedLine();
        if (!Utf8.IsValid(utf8.Span))
        {
            res.Error = "not UTF-8 text";
            res.NotObject = true;
            return res;
        }
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(utf8, DocOptions);
        }
        catch (JsonException e)
        {
            res.Error = "invalid JSON: " + JsonMessage(e.Message);
            res.NotObject = true;
            return res;
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                res.Error = $"not a JSON object but a JSON {root.ValueKind.ToString().ToLowerInvariant()}";
                res.NotObject = true;
                return res;
            }
            res.Request = ParseObject(root, line, d, res);
        }
        return res;
    }

    // Errors are returned, not thrown: a file of millions of malformed lines is indexed at parsing speed.
    private static BatchRequest? ParseObject(JsonElement root, int line, BatchDefaults d, ParsedLine res)
    {
        BatchRequest? Fail(string message)
        {
            res.Error = message;
            return null;
        }
        var f = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        string? structural = null;
        foreach (var p in root.EnumerateObject())
        {
            string name;
            try
            {
                name = p.Name;
            }
            catch (InvalidOperationException)
            {
                structural ??= "a key is not valid Unicode text (it has a lone UTF-16 surrogate escape such as \\ud800)";
                continue;
            }
            if (!Keys.Contains(name)) structural ??= $"unknown key {Shown.Quote(name, 40)} (known keys: {KeyList})";
            else if (!f.TryAdd(name, p.Value)) structural ??= $"key \"{name}\" appears twice";
        }
        // The id first, so that the error record of a line with other faults still carries it.
        if (Present(f, "id", out var idv))
        {
            res.Id = LineId.From(idv);
            if (res.Id == null)
                return Fail(idv.ValueKind == JsonValueKind.String ? NotUnicode("id") : "\"id\" must be a string or an integer");
        }
        if (structural != null) return Fail(structural);

        if (!Present(f, "prompt", out var pv)) return Fail("missing \"prompt\"");
        if (pv.ValueKind != JsonValueKind.String)
            return Fail("\"prompt\" must be a string" + (pv.ValueKind == JsonValueKind.Array ? " (lists of prompts and token-id prompts are not supported)" : ""));
        if (Text(pv) is not string prompt) return Fail(NotUnicode("prompt"));

        string? err = null;
        int? Int(string name)
        {
            if (!Present(f, name, out var v)) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int x)) return x;
            err ??= $"\"{name}\" must be an integer";
            return null;
        }
        float? Float(string name)
        {
            if (!Present(f, name, out var v)) return null;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double x)) return (float)x;
            err ??= $"\"{name}\" must be a number";
            return null;
        }

        int? nPredict = Int("n_predict"), maxTokens = Int("max_tokens");
        if (err != null) return Fail(err);
        if (nPredict != null && maxTokens != null) return Fail("give \"n_predict\" or \"max_tokens\", not both");
        string nName = nPredict != null ? "n_predict" : "max_tokens";
        int n = nPredict ?? maxTokens ?? d.MaxTokens;
        if (n < -1) return Fail($"\"{nName}\" must be -1 (no limit), 0 or more");

        ulong seed = d.SeedFor(line);
        if (Present(f, "seed", out var sv) && (sv.ValueKind != JsonValueKind.Number || !sv.TryGetUInt64(out seed)))
            return Fail("\"seed\" must be an integer, 0 or more");
        var def = d.Sampling;
        var sampling = def with
        {
            Temperature = Float("temperature") ?? def.Temperature,
            TopK = Int("top_k") ?? def.TopK,
            TopP = Float("top_p") ?? def.TopP,
            MinP = Float("min_p") ?? def.MinP,
            RepeatPenalty = Float("repeat_penalty") ?? def.RepeatPenalty,
            RepeatLastN = Int("repeat_last_n") ?? def.RepeatLastN,
            PresencePenalty = Float("presence_penalty") ?? def.PresencePenalty,
            FrequencyPenalty = Float("frequency_penalty") ?? def.FrequencyPenalty,
            Seed = seed,
        };
        if (err != null) return Fail(err);
        try
        {
            sampling.Validate(x => "\"" + x + "\"");
        }
        catch (BadInputException e)
        {
            return Fail(e.Message);
        }

        string[] stop = d.Stop;
        if (Present(f, "stop", out var st))
        {
            if (st.ValueKind == JsonValueKind.String) stop = [Text(st)!];
            else if (st.ValueKind == JsonValueKind.Array && st.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String))
                stop = st.EnumerateArray().Select(Text).ToArray()!;
            else return Fail("\"stop\" must be a string or a list of strings");
            if (stop.Any(x => x == null)) return Fail(NotUnicode("stop"));
            stop = stop.Where(x => x.Length > 0).ToArray();
        }

        if (n == -1 && d.IgnoreEos)
            return Fail((nPredict ?? maxTokens) != null ? $"\"{nName}\" -1 with --ignore-eos would never end" : "-n -1 with --ignore-eos would never end");
        if (d.NoBos && prompt.Length == 0 && n != 0)
            return Fail("the prompt is empty and --no-bos is set: there is nothing to continue from");
        return new BatchRequest { Prompt = prompt, MaxTokens = n, Sampling = sampling, Stop = stop };
    }

    private static string NotUnicode(string name) => $"\"{name}\" is not valid Unicode text (it has a lone UTF-16 surrogate escape such as \\ud800)";

    /// <summary>A key that is there and not null (null means "not given", as in OpenAI's API).</summary>
    private static bool Present(Dictionary<string, JsonElement> f, string name, out JsonElement v) =>
        f.TryGetValue(name, out v) && v.ValueKind != JsonValueKind.Null;

    /// <summary>A JSON string's text; null if it is not valid Unicode (a lone UTF-16 surrogate escape).</summary>
    private static string? Text(JsonElement e)
    {
        try
        {
            return e.GetString()!;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>System.Text.Json's message without its " LineNumber: 0 | BytePositionInLine: N." tail.</summary>
    private static string JsonMessage(string s)
    {
        int i = s.IndexOf('\n');
        if (i >= 0) s = s[..i];
        int j = s.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (j >= 0)
        {
            int k = s.IndexOf("BytePositionInLine:", j, StringComparison.Ordinal);
            string pos = k >= 0 ? s[(k + "BytePositionInLine:".Length)..].Trim().TrimEnd('.') : "";
            s = s[..j].TrimEnd() + (pos.Length > 0 ? $" (at byte {pos})" : "");
        }
        return s.Trim();
    }
}
