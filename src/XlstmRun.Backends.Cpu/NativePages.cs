using System.Runtime.InteropServices;

namespace XlstmRun.Backends.Cpu;

/// <summary>
/// Page-level memory calls (Linux; harmless no-ops or plain allocations elsewhere): anonymous memory backed by 2 MB pages
/// where the kernel allows (one TLB entry per 2 MB instead of 512: the decode kernels stream gigabytes per token), and
/// advice on mapped file ranges (populate, drop).
/// </summary>
public static unsafe class NativePages
{
    private const int ProtRead = 1, ProtWrite = 2, MapPrivate = 2, MapAnonymous = 0x20;
    private const int MadvWillNeed = 3, MadvDontNeed = 4, MadvHugePage = 14, MadvPopulateRead = 22;
    private const long Huge = 2 << 20;

    [DllImport("libc", EntryPoint = "mmap")]
    private static extern void* Mmap(void* addr, nuint len, int prot, int flags, int fd, nint off);

    [DllImport("libc", EntryPoint = "munmap")]
    private static extern int Munmap(void* addr, nuint len);

    [DllImport("libc", EntryPoint = "madvise")]
    private static extern int Madvise(void* addr, nuint len, int advice);

    private static bool _libcMissing;

    private static bool Linux => OperatingSystem.IsLinux() && !_libcMissing;

    /// <summary>
    /// <paramref name="bytes"/> of memory (not necessarily zeroed), 2 MB aligned, asked to be backed by 2 MB pages. Free with <see cref="Free"/>
    /// (same size). Throws <see cref="OutOfMemoryException"/> when the memory is not there.
    /// </summary>
    public static byte* AllocHuge(long bytes)
    {
        bytes = Math.Max(bytes, 1);
        if (Linux)
        {
            try
            {
                // over-allocate by 2 MB, keep the aligned part, give the rest back
                nuint len = (nuint)(bytes + Huge);
                byte* raw = (byte*)Mmap(null, len, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
                if (raw == (byte*)-1) throw new OutOfMemoryException($"cannot map {bytes / 1048576.0:F0} MiB of memory");
                byte* p = (byte*)(((nuint)raw + (nuint)(Huge - 1)) & ~(nuint)(Huge - 1));
                long head = p - raw, tail = (long)len - head - RoundUp(bytes, 4096);
                if (head > 0) Munmap(raw, (nuint)head);
                if (tail > 0) Munmap(p + RoundUp(bytes, 4096), (nuint)tail);
                Madvise(p, (nuint)RoundUp(bytes, 4096), MadvHugePage);
                return p;
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                _libcMissing = true;
            }
        }
        return (byte*)NativeMemory.AlignedAlloc((nuint)bytes, (nuint)Huge);
    }

    public static void Free(byte* p, long bytes)
    {
        if (p == null) return;
        if (Linux) Munmap(p, (nuint)RoundUp(Math.Max(bytes, 1), 4096));
        else NativeMemory.AlignedFree(p);
    }

    /// <summary>Fault the whole pages inside [p, p+bytes) of a file mapping in now (Linux 5.14+; else just read-ahead advice).</summary>
    public static void Populate(byte* p, long bytes)
    {
        if (!Linux) return;
        long n = Inner(p, bytes, out byte* a);
        if (n <= 0) return;
        try
        {
            if (Madvise(a, (nuint)n, MadvPopulateRead) != 0) Madvise(a, (nuint)n, MadvWillNeed);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { _libcMissing = true; }
    }

    /// <summary>Drop this process's mapping of the whole pages inside [p, p+bytes) of a read-only file mapping (they refault on use).</summary>
    public static void Drop(byte* p, long bytes)
    {
        if (!Linux) return;
        long n = Inner(p, bytes, out byte* a);
        if (n <= 0) return;
        try { Madvise(a, (nuint)n, MadvDontNeed); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { _libcMissing = true; }
    }

    /// <summary>The whole 4 KiB pages inside [p, p+bytes): start in <paramref name="start"/>, length returned.</summary>
    private static long Inner(byte* p, long bytes, out byte* start)
    {
        nuint s = ((nuint)p + 4095) & ~(nuint)4095, e = ((nuint)p + (nuint)bytes) & ~(nuint)4095;
        start = (byte*)s;
        return e > s ? (long)(e - s) : 0;
    }

    private static long RoundUp(long x, long a) => (x + a - 1) / a * a;

    /// <summary>MemAvailable from /proc/meminfo in bytes, or −1 where unknown.</summary>
    public static long AvailableBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return -1;
    }
}
