namespace XlstmRun.Backends.Cpu.Kernels;

/// <summary>A unit of parallel work: items 0..n-1 are handed out to the pool's threads; nothing is allocated per run.</summary>
public interface IParallelWork
{
    /// <summary>Process item <paramref name="item"/> on pool thread <paramref name="worker"/> (0 = the calling thread).</summary>
    void Execute(int item, int worker);
}

/// <summary>
/// A persistent pool: the calling thread plus Count−1 dedicated threads. A run publishes the work and bumps a generation
/// counter; workers spin on it for a short while (so back-to-back ops hand off in well under a microsecond) and then sleep
/// on a monitor. Items are claimed from one 64-bit ticket (generation in the high half, next item in the low half), so a
/// thread that wakes late can never take (or skip) an item of a later run (claims are compare-and-swap). The caller works too and returns as soon as every item is
/// done: it never waits for a worker that took nothing (one descheduled thread costs nothing but its share).
/// </summary>
public sealed class WorkerPool : IDisposable
{
    private readonly Thread[] _threads;
    private readonly object _lock = new();
    private IParallelWork? _work;
    private int _items;
    private long _ticket;   // (generation << 32) | next item
    private int _done;      // items finished in the current run
    private int _gen;
    private int _sleepers;
    private volatile bool _stop;
    private Exception? _error;

    /// <summary>Spin iterations a worker waits for the next run before it sleeps (roughly 0.2–0.5 ms).</summary>
    private const int SpinIterations = 4000;

    public WorkerPool(int threads)
    {
        Count = Math.Max(1, threads);
        _threads = new Thread[Count - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int id = i + 1;
            _threads[i] = new Thread(() => WorkerLoop(id)) { IsBackground = true, Name = $"xlstm-cpu-{id}" };
            _threads[i].Start();
        }
    }

    public int Count { get; }

    /// <summary>Run items 0..<paramref name="items"/>−1 of <paramref name="work"/> on every thread; returns when all are done.</summary>
    public void Run(IParallelWork work, int items)
    {
        if (items <= 0) return;
        if (Count == 1 || items == 1)
        {
            for (int i = 0; i < items; i++) work.Execute(i, 0);
            return;
        }
        // Seqlock: an odd generation means "being written"; workers read work/items only under an even, unchanged one.
        int gen = _gen + 2;
        Interlocked.Exchange(ref _gen, gen - 1);
        _work = work;
        _items = items;
        _error = null;
        Volatile.Write(ref _done, 0);
        Interlocked.Exchange(ref _ticket, (long)gen << 32);
        Interlocked.Exchange(ref _gen, gen); // full fence: publishes the fields above
        if (Volatile.Read(ref _sleepers) > 0)
            lock (_lock) Monitor.PulseAll(_lock);
        Drain(gen, work, items, 0);
        var sw = new SpinWait();
        while (Volatile.Read(ref _done) < items) sw.SpinOnce(-1);
        _work = null;
        if (_error is { } e) throw new AggregateException("a CPU worker failed", e);
    }

    private void Drain(int gen, IParallelWork work, int items, int worker)
    {
        while (true)
        {
            // Claim with compare-and-swap after checking the generation: a thread still holding an older run must not
            // even bump the ticket of a newer one (that would skip an item).
            long t = Volatile.Read(ref _ticket);
            if ((int)(t >> 32) != gen) return;      // a later run has started: this one is finished
            int i = (int)(t & 0xFFFFFFFF);
            if (i >= items) return;
            if (Interlocked.CompareExchange(ref _ticket, t + 1, t) != t) continue;
            try { work.Execute(i, worker); }
            catch (Exception e) { _error ??= e; }
            Interlocked.Increment(ref _done);
        }
    }

    private void WorkerLoop(int id)
    {
        int seen = 0; // the generation before the first run (not read here: a run may already have started)
        while (true)
        {
            int spins = 0;
            while (Volatile.Read(ref _gen) == seen && !_stop)
            {
                if (++spins < SpinIterations) Thread.SpinWait(8);
                else
                {
                    lock (_lock)
                    {
                        Interlocked.Increment(ref _sleepers); // full fence, pairs with the exchange of _gen in Run
                        while (Volatile.Read(ref _gen) == seen && !_stop) Monitor.Wait(_lock);
                        Interlocked.Decrement(ref _sleepers);
                    }
                }
            }
            if (_stop) return;
            int g = Volatile.Read(ref _gen);
            if ((g & 1) != 0) { Thread.SpinWait(1); continue; } // a run is being published
            var work = _work;
            int items = _items;
            if (Volatile.Read(ref _gen) != g) continue;        // it changed while we read: read again
            seen = g;
            // If this run has already finished (and maybe another begun), the ticket's generation makes Drain take nothing.
            if (work != null) Drain(g, work, items, id);
        }
    }

    public void Dispose()
    {
        _stop = true;
        lock (_lock) Monitor.PulseAll(_lock);
        foreach (var t in _threads) t.Join();
    }
}
