using System.Text;

namespace XlstmRun.Text.Sampling;

/// <summary>
/// Holds back streamed text that could be the start of a stop string, so that neither a stop string nor a partial
/// match of one is ever printed, also when a stop string spans several tokens. Feed text with <see cref="Push"/>;
/// print what it returns. Once a stop string is complete, <see cref="Stopped"/> is true and the text before it has
/// been returned. At the end, <see cref="Flush"/> returns the held text (it was not a stop string after all).
/// </summary>
public sealed class StopStrings
{
    private readonly string[] _stops;
    private readonly StringBuilder _held = new();

    public StopStrings(IEnumerable<string>? stops)
    {
        _stops = (stops ?? []).Where(s => !string.IsNullOrEmpty(s)).Distinct(StringComparer.Ordinal).ToArray();
    }

    public bool Stopped { get; private set; }
    /// <summary>The stop string that ended the text, if any.</summary>
    public string? Matched { get; private set; }
    public IReadOnlyList<string> Stops => _stops;

    /// <summary>Adds text; returns the part that can be printed now.</summary>
    public string Push(string text)
    {
        if (Stopped) return string.Empty;
        if (_stops.Length == 0) return text;
        if (text.Length == 0) return string.Empty;
        _held.Append(text);
        string s = _held.ToString();
        // earliest complete stop string (the longest at the same position)
        int at = -1;
        string? which = null;
        foreach (var stop in _stops)
        {
            int i = s.IndexOf(stop, StringComparison.Ordinal);
            if (i >= 0 && (at < 0 || i < at || (i == at && stop.Length > which!.Length)))
            {
                at = i;
                which = stop;
            }
        }
        if (at >= 0)
        {
            Stopped = true;
            Matched = which;
            _held.Clear();
            return s[..at];
        }
        // hold the longest suffix that is a proper prefix of some stop string
        int hold = 0;
        foreach (var stop in _stops)
        {
            for (int k = Math.Min(stop.Length - 1, s.Length); k > hold; k--)
            {
                if (string.CompareOrdinal(s, s.Length - k, stop, 0, k) == 0)
                {
                    hold = k;
                    break;
                }
            }
        }
        // never split a surrogate pair between printed and held text
        if (hold > 0 && hold < s.Length && char.IsLowSurrogate(s[s.Length - hold])) hold++;
        _held.Clear();
        if (hold > 0) _held.Append(s, s.Length - hold, hold);
        return s[..^hold];
    }

    /// <summary>Returns the held text (call when generation ends without a stop string).</summary>
    public string Flush()
    {
        string s = _held.ToString();
        _held.Clear();
        return Stopped ? string.Empty : s;
    }
}
