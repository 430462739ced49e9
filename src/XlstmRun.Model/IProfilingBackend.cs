namespace XlstmRun.Model;

/// <summary>
/// Optional interface of a backend that can time its ops on the device (a GPU with timestamp queries): `--profile`,
/// `bench --op` and the decode profile read it. Checked with <c>is</c>.
/// </summary>
public interface IProfilingBackend
{
    /// <summary>Timing is on (the backend was created with profiling and the device has timestamps).</summary>
    bool Profiling { get; }
    /// <summary>Device time per op name since the last reset: count and total nanoseconds (completed work only).</summary>
    IReadOnlyDictionary<string, (long Count, double Ns)> OpTimes();
    void ResetProfile();
    /// <summary>A human-readable table of the op times and other figures, for stderr.</summary>
    string ProfileReport();
}
