using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace XlstmRun.Backends.Cpu;

/// <summary>
/// The host's memory read bandwidth, measured as fast as a program can read: every thread sums its own contiguous share
/// of a buffer much larger than the last-level cache with the widest vector loads and eight independent accumulators
/// (no dependency chain limits a core), all threads start together on a spin barrier and a pass ends when the last one
/// finishes (no thread may take over another's share, which would turn a late wake-up into a one-thread measurement),
/// the buffer holds distinct values in every page (a host may merge identical pages and serve them from cache) and is
/// first touched by the thread that reads it, and the result is the best of several passes after a warm-up pass.
/// scripts/cpu/read_probe.c is the same measurement in plain C (OpenMP, AVX2) to check this one against.
/// </summary>
public static unsafe class HostBandwidthProbe
{
    /// <summary>One probe: best and median GB/s over <see cref="Passes"/> timed passes.</summary>
    public readonly record struct Result(double BestGBs, double MedianGBs, int Threads, long Bytes, int Passes);

    /// <summary>Read <paramref name="bytes"/> (rounded down to 4 KiB pages) on <paramref name="threads"/> threads, best of <paramref name="passes"/> passes.</summary>
    public static Result Measure(long bytes, int threads, int passes)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads));
        if (passes < 1) throw new ArgumentOutOfRangeException(nameof(passes));
        bytes = bytes / 4096 * 4096;
        if (bytes < 4096L * threads) throw new ArgumentOutOfRangeException(nameof(bytes), "probe buffer too small");
        // 4 KiB-aligned shares: each thread's share starts on its own page.
        long pages = bytes / 4096;
        var start = new long[threads + 1];
        for (int t = 0; t <= threads; t++) start[t] = pages * t / threads * 4096;
        byte* mem = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 4096);
        try
        {
            var times = new double[passes];
            using (var team = new Team(threads, mem, start))
            {
                team.RunPass(fill: true);           // first touch, by the reading thread
                team.RunPass(fill: false);          // warm-up (page tables, TLB, frequency)
                for (int p = 0; p < passes; p++) times[p] = team.RunPass(fill: false);
                GC.KeepAlive(team.Checksum);
            }
            Array.Sort(times);
            double best = bytes / times[0] / 1e9, median = bytes / times[passes / 2] / 1e9;
            return new Result(best, median, threads, bytes, passes);
        }
        finally
        {
            NativeMemory.AlignedFree(mem);
        }
    }

    /// <summary>Threads − 1 helper threads plus the caller, released together for each pass.</summary>
    private sealed class Team : IDisposable
    {
        private readonly Thread[] _threads;
        private readonly byte* _mem;
        private readonly long[] _start;
        private volatile int _gen;
        private volatile bool _fill, _stop;
        private int _done;
        private readonly double[] _sums;

        public Team(int threads, byte* mem, long[] start)
        {
            _mem = mem; _start = start;
            _sums = new double[threads];
            _threads = new Thread[threads - 1];
            for (int i = 0; i < _threads.Length; i++)
            {
                int id = i + 1;
                _threads[i] = new Thread(() => Loop(id)) { IsBackground = true, Name = $"xlstm-probe-{id}" };
                _threads[i].Start();
            }
        }

        public double Checksum => _sums.Sum();

        /// <summary>One pass over the whole buffer; returns its wall time in seconds (start to the last thread's finish).</summary>
        public double RunPass(bool fill)
        {
            _fill = fill;
            Volatile.Write(ref _done, 0);
            long t0 = Stopwatch.GetTimestamp();
            _gen++;                                  // releases the helpers
            Work(0);
            var sw = new SpinWait();
            while (Volatile.Read(ref _done) < _sums.Length) sw.SpinOnce(-1);
            return Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }

        private void Loop(int id)
        {
            int seen = 0;
            var sw = new SpinWait();
            while (true)
            {
                while (_gen == seen && !_stop) sw.SpinOnce(-1);   // yields/sleeps when spinning long, so idle costs nothing
                if (_stop) return;
                seen = _gen;
                sw.Reset();
                Work(id);
            }
        }

        private void Work(int id)
        {
            byte* p = _mem + _start[id];
            long n = _start[id + 1] - _start[id];
            if (_fill) Fill((uint*)p, n / 4, (uint)id);
            else _sums[id] += Sum(p, n);
            Interlocked.Increment(ref _done);
        }

        public void Dispose()
        {
            _stop = true;
            foreach (var t in _threads) t.Join();
        }
    }

    /// <summary>Distinct floats in [1, 2) (xorshift), so no two pages are alike.</summary>
    private static void Fill(uint* p, long n, uint seed)
    {
        uint x = 0x9E3779B9u ^ (seed * 0x85EBCA6Bu);
        for (long i = 0; i < n; i++)
        {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            p[i] = (x & 0x007FFFFFu) | 0x3F800000u;
        }
    }

    /// <summary>Sum of n bytes of floats (n a multiple of 4096) with eight independent vector accumulators.</summary>
    private static double Sum(byte* p, long n)
    {
        float* a = (float*)p;
        long count = n / 4, i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
            for (; i + 128 <= count; i += 128)
            {
                s0 += Vector512.LoadAligned(a + i); s1 += Vector512.LoadAligned(a + i + 16);
                s2 += Vector512.LoadAligned(a + i + 32); s3 += Vector512.LoadAligned(a + i + 48);
                s4 += Vector512.LoadAligned(a + i + 64); s5 += Vector512.LoadAligned(a + i + 80);
                s6 += Vector512.LoadAligned(a + i + 96); s7 += Vector512.LoadAligned(a + i + 112);
            }
            return Vector512.Sum(((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)));
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
            for (; i + 64 <= count; i += 64)
            {
                s0 += Vector256.LoadAligned(a + i); s1 += Vector256.LoadAligned(a + i + 8);
                s2 += Vector256.LoadAligned(a + i + 16); s3 += Vector256.LoadAligned(a + i + 24);
                s4 += Vector256.LoadAligned(a + i + 32); s5 += Vector256.LoadAligned(a + i + 40);
                s6 += Vector256.LoadAligned(a + i + 48); s7 += Vector256.LoadAligned(a + i + 56);
            }
            return Vector256.Sum(((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)));
        }
        Vector128<float> t0 = default, t1 = default, t2 = default, t3 = default;
        for (; i + 16 <= count; i += 16)
        {
            t0 += Vector128.Load(a + i); t1 += Vector128.Load(a + i + 4);
            t2 += Vector128.Load(a + i + 8); t3 += Vector128.Load(a + i + 12);
        }
        return Vector128.Sum((t0 + t1) + (t2 + t3));
    }
}
