using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using XlstmRun.Backends.Cpu.Kernels;

namespace XlstmRun.Cli.Measurement;

/// <summary>Multi-threaded streaming read of a buffer larger than the last-level cache: the machine's read bandwidth.</summary>
internal static unsafe class BandwidthProbe
{
    private sealed class SumWork(float* p, long n, int parts) : IParallelWork
    {
        public readonly double[] Sums = new double[parts];
        public void Execute(int item, int worker)
        {
            long per = n / parts / 64 * 64;
            float* a = p + item * per;
            long len = item == parts - 1 ? n - item * per : per;
            Sums[item] = Sum(a, len);
        }
    }

    private static double Sum(float* a, long n)
    {
        long i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i + 32 <= n; i += 32)
            {
                // software prefetch 2 KB ahead: a few percent more than the hardware prefetchers alone on this VM,
                // and what the decode kernels do too, so the probe is not the weaker reader
                if (System.Runtime.Intrinsics.X86.Sse.IsSupported) System.Runtime.Intrinsics.X86.Sse.Prefetch0((byte*)(a + i) + 2048);
                s0 += Vector256.Load(a + i); s1 += Vector256.Load(a + i + 8);
                s2 += Vector256.Load(a + i + 16); s3 += Vector256.Load(a + i + 24);
            }
            double r = Vector256.Sum(s0 + s1 + s2 + s3);
            for (; i < n; i++) r += a[i];
            return r;
        }
        var t0 = Vector128<float>.Zero; var t1 = Vector128<float>.Zero;
        for (; i + 8 <= n; i += 8) { t0 += Vector128.Load(a + i); t1 += Vector128.Load(a + i + 4); }
        double rr = Vector128.Sum(t0 + t1);
        for (; i < n; i++) rr += a[i];
        return rr;
    }

    private static void FillDistinct(uint* p, long n)
    {
        uint x = 0x9E3779B9u;
        for (long i = 0; i < n; i++)
        {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            p[i] = (x & 0x007FFFFFu) | 0x3F800000u; // floats in [1, 2)
        }
    }

    [DllImport("libc", EntryPoint = "madvise")]
    private static extern int Madvise(void* addr, nuint len, int advice);

    /// <summary>Best GB/s over <paramref name="passes"/> passes (each thread sums its contiguous share).</summary>
    public static double Measure(long bytes, int threads, int passes, bool hugePages = false)
    {
        long n = bytes / 4;
        void* mem = NativeMemory.AlignedAlloc((nuint)bytes, 2 << 20);
        try
        {
            // Huge pages only when asked: the weights are read through a file mapping with 4 KB pages, and the probe should
            // measure what such a reader can get (with 2 MB pages this VM has read up to ~83 GB/s, see docs/NOTES.md, "CPU bench").
            if (hugePages && OperatingSystem.IsLinux()) { try { Madvise(mem, (nuint)bytes, 14 /* MADV_HUGEPAGE */); } catch (Exception) { } }
            // First touch (slow in VMs), not timed. Distinct values in every page: a buffer of identical pages could be
            // merged by the host (KSM) into one physical page and then read from cache, which once showed 84 GB/s here.
            FillDistinct((uint*)mem, bytes / 4);
            using var pool = new WorkerPool(threads);
            var work = new SumWork((float*)mem, n, threads);
            double best = 0;
            for (int k = 0; k < passes + 1; k++)
            {
                var sw = Stopwatch.StartNew();
                pool.Run(work, threads);
                double t = sw.Elapsed.TotalSeconds;
                if (k > 0) best = Math.Max(best, bytes / t / 1e9); // the first pass is a warm-up
            }
            return best;
        }
        finally
        {
            NativeMemory.AlignedFree(mem);
        }
    }
}
