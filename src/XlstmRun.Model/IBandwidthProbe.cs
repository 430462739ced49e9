namespace XlstmRun.Model;

/// <summary>
/// Optional interface of a backend whose device has memory of its own (a GPU): the bandwidth of that memory, so that
/// `bench` compares decode throughput with the device's own ceiling instead of the host's RAM. Checked with
/// <c>is</c>; <see cref="IBackend"/> does not change.
/// </summary>
public interface IBandwidthProbe
{
    /// <summary>
    /// Device-to-device copies of <paramref name="bytes"/> (smaller if the device cannot hold two such buffers), timed on
    /// the device: GB/s = (bytes read + bytes written) / time, best over <paramref name="passes"/> after a warm-up.
    /// </summary>
    BandwidthProbeResult MeasureDeviceBandwidth(long bytes, int passes);
}

/// <param name="GBs">Best copy rate, read + write bytes per second / 1e9.</param>
/// <param name="Bytes">Size of one buffer actually copied.</param>
/// <param name="Method">What was measured (one line, for the bench footer).</param>
public sealed record BandwidthProbeResult(double GBs, long Bytes, string Method);
