using System.Buffers;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using XlstmRun.Formats;
using XlstmRun.Text.Sampling;

namespace XlstmRun.Cli.Commands;

/// <summary>
/// `batch`: one prompt per JSONL line → one result per line, appended and flushed as each completes; malformed lines
/// give error records; --resume skips ids already done.
/// </summary>
public static class BatchCommand
{
    private sealed class Item
    {
        public int Line;
        public JsonElement? Id;          // cloned; null = use the line number
        public string? Error;
        public bool NotObject;            // the line is not a JSON object at all
        public string Prompt = "";
        public int? NPredict;
        public SamplingParams? Sampling;  // null = CLI defaults
        public string[]? Stop;
        public string Key => IdKey(Id, Line);
    }

    public static Command Create()
    {
        var mo = new ModelOptions();
        var so = new SamplingOptions();
        var input = new Option<string>("--input", "-i") { Description = "JSONL file, one object per line: {\"id\", \"prompt\", optional n_predict, temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, presence_penalty, frequency_penalty, seed, stop (text or list)}", Required = true, HelpName = "FILE" };
        var output = new Option<string>("--output", "-o") { Description = "JSONL results, one line per prompt as it completes: {\"id\", \"text\", \"tokens\", \"prompt_tokens\", \"finish_reason\"}, or {\"id\", \"error\"} for a malformed line (id = line number when it has none)", Required = true, HelpName = "FILE" };
        var resume = new Option<bool>("--resume") { Description = "Append to an existing output, skipping ids it already has results for (error records are retried)" };
        var force = new Option<bool>("--force") { Description = "Overwrite an existing output file" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "More detail on stderr" };
        var cmd = new Command("batch",
            "Generate for every prompt of a JSONL file, one result line each, written as it completes.");
        HelpNotes.Add(cmd,
            "Each prompt starts from a fresh state (BOS first unless --no-bos).\n" +
            "The sampling options are the defaults for lines that do not set their own.\n" +
            "Example line: {\"id\": \"q1\", \"prompt\": \"The capital of France is\", \"n_predict\": 16, \"temperature\": 0, \"stop\": [\"\\n\"]}\n" +
            "Progress goes to stderr. Exit code 0 when the run completes, also when some lines were malformed (they get\n" +
            "error records); 2 when the input file itself is unusable (then no output file is written).");
        cmd.Options.Add(input);
        cmd.Options.Add(output);
        cmd.Options.Add(resume);
        cmd.Options.Add(force);
        mo.AddTo(cmd, state: false);
        so.AddTo(cmd);
        cmd.Options.Add(verbose);
        cmd.SetAction(pr => Program.Run(() =>
        {
            var total = Stopwatch.StartNew();
            string inPath = pr.GetValue(input)!, outPath = pr.GetValue(output)!;
            bool isResume = pr.GetValue(resume), isVerbose = pr.GetValue(verbose);

            // Everything that can be wrong with the input is found before the output file is touched.
            int defaultN = so.Tokens(pr, idsMode: false);
            long seed = so.ResolveSeed(pr);
            var defaults = so.Build(pr, 0.8f, seed);
            string[] defaultStops = so.StopStrings(pr);
            bool noBos = pr.GetValue(so.NoBos), ignoreEos = pr.GetValue(so.IgnoreEos);
            if (Path.GetFullPath(inPath) == Path.GetFullPath(outPath)) throw new BadInputException("--input and --output are the same file");
            string content = TextIO.ReadFile(inPath);
            var items = ParseInput(content, defaults);
            if (items.Count == 0) throw new BadInputException($"{inPath}: no prompts (expected one JSON object per line)");
            if (items.All(i => i.NotObject))
                throw new BadInputException($"{inPath}: not a JSONL prompt file (no line is a JSON object; first: {items[0].Error})");

            OutputPath.Check(outPath, force: true);
            var done = new HashSet<string>(StringComparer.Ordinal);
            bool exists = File.Exists(outPath);
            if (exists && !isResume && !pr.GetValue(force))
                throw new BadInputException($"{outPath}: already exists (use --resume to continue it or --force to overwrite)");
            if (exists && isResume) ReadDone(outPath, done);
            if (defaultN == -1 && ignoreEos) throw new BadInputException("-n -1 with --ignore-eos would never end: give a token count");

            using var s = ModelSession.Open(pr, mo, needTokenizer: true);
            var tok = s.Tokenizer!;
            var model = new RunnerGenerationModel(s.Runner);
            int todo = items.Count(i => !done.Contains(i.Key));
            int malformed = items.Count(i => i.Error != null);
            Console.Error.WriteLine($"batch: {items.Count} prompts in {inPath} ({malformed} malformed, {items.Count - todo} already done), seed {seed} -> {outPath}");

            using var fs = new FileStream(outPath, isResume ? FileMode.OpenOrCreate : FileMode.Create, FileAccess.ReadWrite, FileShare.Read);
            if (isResume)
            {
                // A last line without its newline was cut short by an interrupted run: drop it (its prompt runs again).
                fs.SetLength(CompleteLength(fs));
                fs.Seek(0, SeekOrigin.End);
            }
            int n = 0, ok = 0, errors = 0;
            long genTokens = 0;
            foreach (var item in items)
            {
                if (done.Contains(item.Key)) continue;
                n++;
                if (item.Error == null && (item.NPredict ?? defaultN) == -1 && ignoreEos)
                    item.Error = "n_predict -1 with --ignore-eos would never end";
                if (item.Error == null && noBos && item.Prompt.Length == 0 && (item.NPredict ?? defaultN) != 0)
                    item.Error = "the prompt is empty and --no-bos is set: there is nothing to continue from";
                if (item.Error != null)
                {
                    errors++;
                    WriteRecord(fs, w => { WriteId(w, item); w.WriteString("error", item.Error); });
                    Console.Error.WriteLine($"[{n}/{todo}] {IdText(item)}: error: {item.Error}");
                    continue;
                }
                var t0 = Stopwatch.GetTimestamp();
                s.Runner.ResetState();
                var body = tok.Encode(item.Prompt);
                int[] prompt = noBos ? body : [tok.BosId, .. body];
                var r = Generator.Run(model, new GenerationRequest
                {
                    Prompt = prompt,
                    Sampling = item.Sampling ?? defaults,
                    ValidVocab = s.ValidVocab,
                    MaxTokens = item.NPredict ?? defaultN,
                    EosId = ignoreEos ? null : tok.EosId,
                    StopStrings = item.Stop ?? defaultStops,
                    Tokenizer = tok,
                });
                WriteRecord(fs, w =>
                {
                    WriteId(w, item);
                    w.WriteString("text", r.Text);
                    w.WriteNumber("tokens", r.Ids.Count);
                    w.WriteNumber("prompt_tokens", r.PromptTokens);
                    w.WriteString("finish_reason", r.FinishReasonText);
                });
                ok++;
                genTokens += r.Ids.Count;
                double sec = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                Console.Error.WriteLine(string.Format(CultureInfo.InvariantCulture, "[{0}/{1}] {2}: {3} + {4} tokens, {5}, {6:F2} s ({7:F2} tokens per second)",
                    n, todo, IdText(item), r.PromptTokens, r.Ids.Count, r.FinishReasonText, sec, sec > 0 ? r.Ids.Count / sec : 0));
                if (isVerbose) Console.Error.WriteLine($"    sampling: {(item.Sampling ?? defaults).Describe()}");
            }
            Console.Error.WriteLine(string.Format(CultureInfo.InvariantCulture, "batch: done: {0} generated, {1} errors, {2} skipped; {3} tokens in {4:F2} s",
                ok, errors, items.Count - todo, genTokens, total.Elapsed.TotalSeconds));
            return ExitCodes.Ok;
        }));
        return cmd;
    }

    private static List<Item> ParseInput(string content, SamplingParams defaults)
    {
        var items = new List<Item>();
        var lines = content.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            if (string.IsNullOrWhiteSpace(line)) continue;
            var item = new Item { Line = i + 1 };
            items.Add(item);
            JsonDocument doc;
            try
            {
                doc = JsonDocument.Parse(line);
            }
            catch (JsonException e)
            {
                item.Error = "invalid JSON: " + JsonMessage(e.Message);
                item.NotObject = true;
                continue;
            }
            using (doc)
            {
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object)
                {
                    item.Error = $"not a JSON object but a JSON {root.ValueKind.ToString().ToLowerInvariant()}";
                    item.NotObject = true;
                    continue;
                }
                try
                {
                    ParseItem(root, item, defaults);
                }
                catch (BadInputException e)
                {
                    item.Error = e.Message;
                }
            }
        }
        return items;
    }

    private static void ParseItem(JsonElement root, Item item, SamplingParams defaults)
    {
        if (root.TryGetProperty("id", out var id))
        {
            if (id.ValueKind is JsonValueKind.String or JsonValueKind.Number) item.Id = id.Clone();
            else throw new BadInputException("\"id\" must be a string or a number");
        }
        if (!root.TryGetProperty("prompt", out var prompt)) throw new BadInputException("missing \"prompt\"");
        if (prompt.ValueKind != JsonValueKind.String) throw new BadInputException("\"prompt\" must be a string");
        item.Prompt = prompt.GetString()!;

        int? Int(string name)
        {
            if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int x)) throw new BadInputException($"\"{name}\" must be an integer");
            return x;
        }
        float? Float(string name)
        {
            if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double x)) throw new BadInputException($"\"{name}\" must be a number");
            return (float)x;
        }
        item.NPredict = Int("n_predict");
        if (item.NPredict < -1) throw new BadInputException("\"n_predict\" must be -1 (no limit), 0 or more");
        ulong? seed = null;
        if (root.TryGetProperty("seed", out var sv) && sv.ValueKind != JsonValueKind.Null)
        {
            if (sv.ValueKind != JsonValueKind.Number || !sv.TryGetInt64(out long sl) || sl < 0) throw new BadInputException("\"seed\" must be an integer, 0 or more");
            seed = (ulong)sl;
        }
        var p = defaults with
        {
            Temperature = Float("temperature") ?? defaults.Temperature,
            TopK = Int("top_k") ?? defaults.TopK,
            TopP = Float("top_p") ?? defaults.TopP,
            MinP = Float("min_p") ?? defaults.MinP,
            RepeatPenalty = Float("repeat_penalty") ?? defaults.RepeatPenalty,
            RepeatLastN = Int("repeat_last_n") ?? defaults.RepeatLastN,
            PresencePenalty = Float("presence_penalty") ?? defaults.PresencePenalty,
            FrequencyPenalty = Float("frequency_penalty") ?? defaults.FrequencyPenalty,
            Seed = seed ?? defaults.Seed,
        };
        p.Validate(n => "\"" + n + "\"");
        item.Sampling = p == defaults ? null : p;
        if (root.TryGetProperty("stop", out var st) && st.ValueKind != JsonValueKind.Null)
        {
            if (st.ValueKind == JsonValueKind.String) item.Stop = [st.GetString()!];
            else if (st.ValueKind == JsonValueKind.Array && st.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String))
                item.Stop = st.EnumerateArray().Select(e => e.GetString()!).Where(x => x.Length > 0).ToArray();
            else throw new BadInputException("\"stop\" must be a string or a list of strings");
        }
    }

    private static string IdKey(JsonElement? id, int line) => id is { } e
        ? e.ValueKind == JsonValueKind.String ? "s:" + e.GetString() : "n:" + e.GetRawText()
        : "n:" + line.ToString(CultureInfo.InvariantCulture);

    private static string IdText(Item item) => "id " + (item.Id is { } e ? e.GetRawText() : item.Line.ToString(CultureInfo.InvariantCulture) + " (line)");

    private static void WriteId(Utf8JsonWriter w, Item item)
    {
        if (item.Id is { } e)
        {
            w.WritePropertyName("id");
            e.WriteTo(w);
        }
        else w.WriteNumber("id", item.Line);
    }

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static void WriteRecord(FileStream fs, Action<Utf8JsonWriter> body)
    {
        var buf = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buf, WriterOptions))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        fs.Write(buf.WrittenSpan);
        fs.WriteByte((byte)'\n');
        fs.Flush();
    }

    /// <summary>Ids of the successful records already in an output file (lines that do not parse are ignored).</summary>
    private static void ReadDone(string path, HashSet<string> done)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new BadInputException($"{path}: cannot read ({e.Message})"); }
        foreach (var raw in text.Split('\n'))
        {
            if (string.IsNullOrWhiteSpace(raw)) continue;
            try
            {
                using var doc = JsonDocument.Parse(raw);
                var r = doc.RootElement;
                if (r.ValueKind != JsonValueKind.Object || r.TryGetProperty("error", out _) || !r.TryGetProperty("id", out var id)) continue;
                if (id.ValueKind is JsonValueKind.String or JsonValueKind.Number) done.Add(IdKey(id, 0));
            }
            catch (JsonException)
            {
                // a line cut short by an interrupted run: its prompt is done again
            }
        }
    }

    /// <summary>Length of the file up to and including its last newline.</summary>
    private static long CompleteLength(FileStream f)
    {
        var buf = new byte[4096];
        long end = f.Length;
        while (end > 0)
        {
            int n = (int)Math.Min(buf.Length, end);
            f.Seek(end - n, SeekOrigin.Begin);
            f.ReadExactly(buf, 0, n);
            int i = Array.LastIndexOf(buf, (byte)'\n', n - 1, n);
            if (i >= 0) return end - n + i + 1;
            end -= n;
        }
        return 0;
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
