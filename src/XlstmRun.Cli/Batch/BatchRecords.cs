using System.Buffers;
using System.Text.Json;
using System.Text.Unicode;
using Microsoft.Win32.SafeHandles;
using XlstmRun.Formats;
using XlstmRun.Text.Sampling;

namespace XlstmRun.Cli.Batch;

/// <summary>A record read back from an output file.</summary>
/// <param name="Line">The input line it is for.</param>
/// <param name="Id">The id it carries.</param>
/// <param name="IsError">An error record (else a result).</param>
internal readonly record struct BatchRecord(long Line, LineId Id, bool IsError);

/// <summary>
/// The output records, one JSON object per line: results <c>{"id", "line", "text", "tokens", "prompt_tokens",
/// "finish_reason", "seed"}</c> and errors <c>{"id", "line", "error"}</c>. Each is encoded whole, newline included, so
/// that it is written with one write.
/// </summary>
internal static class BatchRecords
{
    private static readonly JsonWriterOptions WriterOptions = JsonStrings.WriterOptions;
    private static readonly JsonDocumentOptions ReadOptions = new() { MaxDepth = 8 };

    public static byte[] Result(InputLine l, GenerationResult r, ulong seed) => Encode(w =>
    {
        l.Id.WriteTo(w);
        w.WriteNumber("line", l.Line);
        w.WriteString("text", Shown.ValidText(r.Text));
        w.WriteNumber("tokens", r.Ids.Count);
        w.WriteNumber("prompt_tokens", r.PromptTokens);
        w.WriteString("finish_reason", r.FinishReasonText);
        w.WriteNumber("seed", seed);
    });

    public static byte[] Error(InputLine l, string error) => Encode(w =>
    {
        l.Id.WriteTo(w);
        w.WriteNumber("line", l.Line);
        w.WriteString("error", Shown.ValidText(error));
    });

    private static byte[] Encode(Action<Utf8JsonWriter> body)
    {
        var buf = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buf, WriterOptions))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        var rec = new byte[buf.WrittenCount + 1];
        buf.WrittenSpan.CopyTo(rec);
        rec[^1] = (byte)'\n';
        return rec;
    }

    /// <summary>Reads one output line; null if it is not a batch record (not JSON, no "line", no "text" or "error"...).</summary>
    public static BatchRecord? Read(ReadOnlyMemory<byte> utf8)
    {
        if (!Utf8.IsValid(utf8.Span)) return null;
        try
        {
            using var doc = JsonDocument.Parse(utf8, ReadOptions);
            var r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object) return null;
            if (!r.TryGetProperty("line", out var lv) || lv.ValueKind != JsonValueKind.Number || !lv.TryGetInt64(out long line) || line < 1) return null;
            if (!r.TryGetProperty("id", out var iv) || LineId.From(iv) is not LineId id) return null;
            bool text = r.TryGetProperty("text", out var tv) && tv.ValueKind == JsonValueKind.String;
            bool error = r.TryGetProperty("error", out var ev) && ev.ValueKind == JsonValueKind.String;
            if (text == error) return null;
            return new BatchRecord(line, id, error);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Why a record cannot belong to this input, or null if it can. Error records are not checked against the
    /// line's id: a malformed line's id may not have been readable when the record was written.</summary>
    public static string? Mismatch(BatchRecord r, BatchInput input)
    {
        if (input.ByLine(r.Line) is not InputLine l)
            return r.Line > input.PhysicalLines
                ? $"it is for line {r.Line}, but {input.Path} has {input.PhysicalLines} lines"
                : $"it is for line {r.Line}, which is blank in {input.Path}";
        if (!r.IsError && r.Id != l.Id) return $"it has id {r.Id.Display} for line {r.Line}, where {input.Path} has id {l.Id.Display}";
        return null;
    }

    /// <summary>Longest output line read back.</summary>
    public const int MaxRecordBytes = 64 << 20;

    public delegate void RecordHandler(in ScannedLine line, BatchRecord record);

    /// <summary>
    /// Reads the records of an output file, checking each against <paramref name="input"/>; blank lines are skipped.
    /// Throws <see cref="BadInputException"/> for a line that is not a record of this input.
    /// </summary>
    /// <returns>The offset where an incomplete last record (no newline: an interrupted write) starts, or -1.</returns>
    public static long Scan(SafeFileHandle h, string path, BatchInput input, RecordHandler onRecord)
    {
        long cutAt = -1;
        JsonlScanner.Scan(h, MaxRecordBytes, (in ScannedLine l) =>
        {
            if (!l.Terminated)
            {
                cutAt = l.Offset;
                return;
            }
            if (!l.TooLong && l.Content.Span.Trim(" \t\r"u8).IsEmpty) return;
            if (l.TooLong || Read(l.Content) is not BatchRecord r)
                throw new BadInputException($"{path}: line {l.Number} is not a batch record");
            if (Mismatch(r, input) is string why)
                throw new BadInputException($"{path}: line {l.Number}: {why} (is this the output of another input file?)");
            onRecord(l, r);
        });
        return cutAt;
    }
}
