namespace XlstmRun.Backends.Cpu.Kernels;

/// <summary>A unit of parallel work: items 0..n-1 are handed out to the pool's threads; nothing is allocated per run.</summary>
public interface IParallelWork
{
    /// <summary>Process item <paramref name="item"/> on pool thread <paramref name="worker"/> (0 = the calling thread).</summary>
    void Execute(int item, int worker);
}

/// <summary>
/// A persistent pool: the calling thread plus Count−1 dedicated threads. A run publishes the work by bumping a
/// generation counter; workers spin on it for a short while (so back-to-back ops hand off in well under a microsecond)
/// and then sleep on a monitor. Items are claimed with one interlocked increment each, so uneven or preempted
/// threads balance themselves. The caller works too and returns when every item is done.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    private readonly Thread[] _threads;
    private readonly object _lock = new();
    private IParallelWork? _work;
    private int _items;
    private int _next;
    private int _running;
    private int _gen;
    private int _sleepers;
    private volatile bool _stop;
    private Exception? _error;

    /// <summary>Spin iterations (each a few dozen cycles) a worker waits for the next run before it sleeps.</summary>
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
        _work = work;
        _items = items;
        _next = 0;
        _error = null;
        Volatile.Write(ref _running, Count - 1);
        Interlocked.Increment(ref _gen); // full fence: publishes the fields above
        if (Volatile.Read(ref _sleepers) > 0)
            lock (_lock) Monitor.PulseAll(_lock);
        Drain(work, items, 0);
        var sw = new SpinWait();
        while (Volatile.Read(ref _running) != 0) sw.SpinOnce(-1);
        _work = null;
        if (_error is { } e) throw new AggregateException("a CPU worker failed", e);
    }

    private void Drain(IParallelWork work, int items, int worker)
    {
        try
        {
            int i;
            while ((i = Interlocked.Increment(ref _next) - 1) < items) work.Execute(i, worker);
        }
        catch (Exception e)
        {
            _error ??= e;
            Volatile.Write(ref _next, int.MaxValue / 2);
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
                        Interlocked.Increment(ref _sleepers); // full fence, pairs with the Increment of _gen in Run
                        while (Volatile.Read(ref _gen) == seen && !_stop) Monitor.Wait(_lock);
                        Interlocked.Decrement(ref _sleepers);
                    }
                }
            }
            if (_stop) return;
            seen = Volatile.Read(ref _gen);
            var work = _work;
            if (work != null) Drain(work, _items, id);
            Interlocked.Decrement(ref _running);
        }
    }

    public void Dispose()
    {
        _stop = true;
        lock (_lock) Monitor.PulseAll(_lock);
        foreach (var t in _threads) t.Join();
    }
}
