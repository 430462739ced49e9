using System.Globalization;
using System.Text;
using System.Text.Json;
using XlstmRun.Formats;

namespace XlstmRun.Conformance;

/// <summary>The conformance table (Markdown) and its JSON form (written with Utf8JsonWriter: no reflection, AOT-safe).</summary>
public static class CheckReport
{
    private static string F(double x) =>
        double.IsNaN(x) ? "-" : double.IsPositiveInfinity(x) ? "inf" : x.ToString("0.00e+00", CultureInfo.InvariantCulture);

    public static string ErrorText(CheckRow r) => r.IsCount ? (double.IsNaN(r.Error) ? "-" : ((int)r.Error).ToString(CultureInfo.InvariantCulture)) : F(r.Error);
    /// <summary>Column header meaning: relative error, mean KL (KL rows), differing ids (greedy ids), max |state| (long runs).</summary>
    public static string BoundText(CheckRow r) => r.IsCount ? (r.Pass && r.Error > 0 ? "near tie" : "0") : r.Quantity == "run" ? "-" : F(r.Bound);

    /// <summary>One table row per check; <paramref name="failuresOnly"/> keeps only the failed ones.</summary>
    public static string Table(IReadOnlyList<CheckRow> rows, bool failuresOnly = false)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| fixture | device | type | quantity | against | error | bound | result | note |");
        sb.AppendLine("| --- | --- | --- | --- | --- | ---: | ---: | --- | --- |");
        foreach (var r in rows)
        {
            if (failuresOnly && r.Pass) continue;
            sb.Append("| ").Append(r.Fixture).Append(" | ").Append(r.Device).Append(" | ").Append(r.Type).Append(" | ").Append(r.Quantity)
              .Append(" | ").Append(r.Against).Append(" | ").Append(ErrorText(r)).Append(" | ").Append(BoundText(r))
              .Append(" | ").Append(r.Pass ? "pass" : "FAIL").Append(" | ").Append(r.Note.Replace("|", "/")).AppendLine(" |");
        }
        return sb.ToString();
    }

    /// <summary>
    /// The short form: one row per fixture × device, one column per weight type; each cell is the relative error of the check
    /// closest to its bound (logits, state; KL, id counts and long runs left out), that bound in brackets, "FAIL" when any
    /// check of the cell failed and "tie" when greedy ids parted at an accepted near tie.
    /// </summary>
    public static string SummaryTable(IReadOnlyList<CheckRow> rows)
    {
        var types = rows.Select(r => r.Type).Distinct().ToList();
        var keys = rows.Select(r => (r.Fixture, r.Device)).Distinct().ToList();
        var sb = new StringBuilder();
        sb.Append("| fixture | device |");
        foreach (var t in types) sb.Append(' ').Append(t).Append(" |");
        sb.AppendLine();
        sb.Append("| --- | --- |");
        foreach (var _ in types) sb.Append(" ---: |");
        sb.AppendLine();
        foreach (var (fixture, device) in keys)
        {
            sb.Append("| ").Append(fixture).Append(" | ").Append(device).Append(" |");
            foreach (var t in types)
            {
                var cell = rows.Where(r => r.Fixture == fixture && r.Device == device && r.Type == t).ToList();
                var rel = cell.Where(r => !r.IsCount && !r.IsLongRun && !r.IsKl && r.Bound > 0 && !double.IsNaN(r.Error)).ToList();
                var text = new List<string>();
                if (rel.Count > 0)
                {
                    var w = rel.MaxBy(r => r.Error / r.Bound)!;
                    text.Add($"{F(w.Error)} ({F(w.Bound)})");
                }
                if (cell.Any(r => !r.Pass)) text.Add("FAIL");
                if (cell.Any(r => r.IsCount && r.Pass && r.Error > 0)) text.Add("tie");
                sb.Append(' ').Append(cell.Count == 0 ? "" : text.Count == 0 ? "pass" : string.Join(' ', text)).Append(" |");
            }
            sb.AppendLine();
        }
        return sb.ToString();
    }

    /// <summary>The check with the largest error relative to its bound (id counts and long runs left out), or null.</summary>
    public static CheckRow? Closest(IEnumerable<CheckRow> rows) =>
        rows.Where(r => !r.IsCount && !r.IsLongRun && r.Bound > 0 && !double.IsNaN(r.Error)).MaxBy(r => r.Error / r.Bound);

    /// <summary>"quantity error of bound" for <see cref="Closest"/>, or "".</summary>
    public static string ClosestText(IEnumerable<CheckRow> rows) => Closest(rows) is { } w ? $"{w.Quantity} {F(w.Error)} of {F(w.Bound)}" : "";

    /// <summary>One line: checks, failures, and the worst error relative to its bound.</summary>
    public static string Summary(IReadOnlyList<CheckRow> rows)
    {
        int failed = rows.Count(r => !r.Pass);
        var worst = Closest(rows);
        string w = worst == null ? "" : $"; closest to its bound: {worst.Fixture} {worst.Device} {worst.Type} {worst.Quantity} {F(worst.Error)} of {F(worst.Bound)}";
        return $"{rows.Count} checks, {failed} failed{w}";
    }

    public static void WriteJson(Stream s, IReadOnlyList<CheckRow> rows, IEnumerable<(string Id, string Description)> devices, IEnumerable<string> missing, double seconds)
    {
        using var w = new Utf8JsonWriter(s, JsonStrings.WriterOptions with { Indented = true });
        w.WriteStartObject();
        w.WriteString("summary", Summary(rows));
        w.WriteBoolean("pass", rows.All(r => r.Pass));
        w.WriteNumber("seconds", Math.Round(seconds, 2));
        w.WriteStartArray("devices");
        foreach (var (id, desc) in devices)
        {
            w.WriteStartObject();
            w.WriteString("id", id);
            w.WriteString("description", desc);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("missing_backends");
        foreach (var m in missing) w.WriteStringValue(m);
        w.WriteEndArray();
        w.WriteStartArray("checks");
        foreach (var r in rows)
        {
            w.WriteStartObject();
            w.WriteString("fixture", r.Fixture);
            w.WriteString("device", r.Device);
            w.WriteString("type", r.Type);
            w.WriteString("quantity", r.Quantity);
            w.WriteString("against", r.Against);
            if (double.IsFinite(r.Error)) w.WriteNumber("error", r.Error); else w.WriteNull("error");
            w.WriteNumber("bound", r.Bound);
            w.WriteBoolean("pass", r.Pass);
            if (r.Note.Length > 0) w.WriteString("note", r.Note);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }
}
