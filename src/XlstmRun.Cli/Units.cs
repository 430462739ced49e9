using System.Globalization;

namespace XlstmRun.Cli;

/// <summary>Sizes and counts in the unit that suits them (a 14 MiB model is not "0.01 GiB").</summary>
internal static class Units
{
    private static string F(double x, string fmt) => x.ToString(fmt, CultureInfo.InvariantCulture);

    /// <summary>Bytes in B, KiB, MiB, GiB or TiB (powers of 1024).</summary>
    public static string Bytes(long b)
    {
        double a = Math.Abs((double)b);
        if (a < 1024) return $"{b} B";
        if (a < 1024.0 * 1024) return F(b / 1024.0, "F1") + " KiB";
        if (a < 1024.0 * 1024 * 1024) return F(b / (1024.0 * 1024), "F1") + " MiB";
        if (a < 1024.0 * 1024 * 1024 * 1024) return F(b / (1024.0 * 1024 * 1024), "F2") + " GiB";
        return F(b / (1024.0 * 1024 * 1024 * 1024), "F2") + " TiB";
    }

    /// <summary>A count such as a number of parameters: 173 K, 6.93 M, 7.45 B.</summary>
    public static string Count(long n)
    {
        double a = Math.Abs((double)n);
        if (a < 1000) return n.ToString(CultureInfo.InvariantCulture);
        if (a < 1e6) return F(n / 1e3, "0.#") + " K";
        if (a < 1e9) return F(n / 1e6, "0.##") + " M";
        return F(n / 1e9, "0.##") + " B";
    }

    /// <summary>A rate in bytes per second in decimal units, as bandwidth is quoted: 512 MB/s, 41.3 GB/s.</summary>
    public static string Rate(double bytesPerSecond)
    {
        double a = Math.Abs(bytesPerSecond);
        if (a < 1e6) return F(bytesPerSecond / 1e3, "F1") + " kB/s";
        if (a < 1e9) return F(bytesPerSecond / 1e6, "F1") + " MB/s";
        return F(bytesPerSecond / 1e9, "F1") + " GB/s";
    }
}
