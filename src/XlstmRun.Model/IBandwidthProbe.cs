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

/// <summary>
/// Optional interface of a backend with matrix units (tensor cores): their rate with no memory traffic in the way, the
/// ceiling of any matrix product written with them (`bench --op mma`). Checked with <c>is</c>.
/// </summary>
public interface IMatrixUnitProbe
{
    /// <summary>f16 products with f32 accumulation in TFLOP/s, best of <paramref name="passes"/> after a warm-up; null
    /// where the device has no matrix units or no device timestamps.</summary>
    double? MatrixPeakTflops(int passes = 5);
}

/// <summary>
/// Optional interface of a backend whose arithmetic rates can be measured alone (`bench --op alu`): packed 4×8-bit
/// integer dot products (what int8 matrix products are made of) and float FMAs, with no memory traffic. Checked with
/// <c>is</c>.
/// </summary>
public interface IAluProbe
{
    /// <summary>Operations per second in G (dot products of four int8 pairs, or float FMAs), best of
    /// <paramref name="passes"/> after a warm-up; null where the device lacks the instruction or device timestamps.</summary>
    double? AluPeakGops(bool intDot, int passes = 5);
}
