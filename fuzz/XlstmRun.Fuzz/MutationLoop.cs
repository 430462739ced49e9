using System.Diagnostics;

namespace XlstmRun.Fuzz;

public sealed class MutationStats
{
    public long Runs, Accepted, Findings, SlowestMs, MostAllocated;
}

/// <summary>The deterministic mutation loop shared by the harness and the test suite's seeded mutation test.</summary>
public static class MutationLoop
{
    /// <summary>A run slower than this, or allocating more than <see cref="AllocLimit"/>, is a finding (hang or blow-up).</summary>
    public const long SlowMs = 10_000; // generous: the machines it runs on are shared
    public const long AllocLimit = 512L << 20;
    private const int MaxPool = 256;

    /// <summary>Runs <paramref name="runs"/> mutants; returns whether anything was found.</summary>
    public static bool Run(Action<byte[]> target, List<byte[]> pool, ulong seed, long runs, bool json, MutationStats stats,
        Action<long, byte[], Exception, long> onFinding, Action<long>? progress = null)
    {
        var m = new Mutator(seed);
        int seeds = pool.Count;
        bool any = false;
        for (long i = 0; i < runs; i++)
        {
            var parent = pool[m.Below(pool.Count)];
            var other = pool[m.Below(pool.Count)];
            var input = m.Mutate(parent, other, json);
            long before = GC.GetAllocatedBytesForCurrentThread();
            var sw = Stopwatch.StartNew();
            var e = FuzzTargets.Check(target, input, out bool accepted);
            long ms = sw.ElapsedMilliseconds;
            long alloc = GC.GetAllocatedBytesForCurrentThread() - before;
            stats.Runs++;
            stats.SlowestMs = Math.Max(stats.SlowestMs, ms);
            stats.MostAllocated = Math.Max(stats.MostAllocated, alloc);
            if (e == null && ms > SlowMs)
            {
                // On a shared machine a run can be slow for reasons of its own: only a run slow twice is a finding.
                var again = Stopwatch.StartNew();
                FuzzTargets.Check(target, input, out _);
                if (again.ElapsedMilliseconds > SlowMs) e = new TimeoutException($"took {ms} ms, then {again.ElapsedMilliseconds} ms");
            }
            if (e == null && alloc > AllocLimit) e = new InsufficientMemoryException($"allocated {alloc >> 20} MiB");
            if (e != null)
            {
                stats.Findings++;
                any = true;
                onFinding(i, input, e, ms);
            }
            else if (accepted)
            {
                stats.Accepted++;
                // Accepted mutants are kept (a little feedback without instrumentation): they are valid files of new shapes.
                if (pool.Count < MaxPool) pool.Add(input);
                else pool[seeds + m.Below(MaxPool - seeds)] = input;
            }
            if (progress != null && (i + 1) % 100_000 == 0) progress(i + 1);
        }
        return any;
    }
}
