using XlstmRun.Backends.Cpu.Kernels;
using Xunit;

namespace XlstmRun.Tests.Cpu;

public class WorkerPoolTests
{
    private sealed class Counting(int max, int threads) : IParallelWork
    {
        public readonly int[] Hits = new int[max];
        public readonly int[] ByWorker = new int[threads];
        public int Spin;
        public void Execute(int item, int worker)
        {
            Interlocked.Increment(ref Hits[item]);
            Interlocked.Increment(ref ByWorker[worker]);
            for (int i = 0; i < Spin; i++) Thread.SpinWait(1);
        }
    }

    /// <summary>Many back-to-back runs of different sizes (the pattern of a decode step): every item exactly once, every run complete on return.</summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void EveryItemRunsExactlyOncePerRun(int threads)
    {
        using var pool = new WorkerPool(threads);
        var rng = new Random(1);
        var w = new Counting(64, threads);
        for (int run = 0; run < 3000; run++)
        {
            int items = rng.Next(1, 65);
            w.Spin = rng.Next(3) == 0 ? rng.Next(200) : 0;
            Array.Clear(w.Hits);
            pool.Run(w, items);
            for (int i = 0; i < 64; i++) Assert.Equal(i < items ? 1 : 0, Volatile.Read(ref w.Hits[i]));
            if (run % 500 == 0) Thread.Sleep(5); // let the workers fall asleep now and then
        }
        Assert.Equal(w.ByWorker.Sum(), w.ByWorker.Sum()); // worker ids stayed in range (an out-of-range id would have thrown)
    }

    private sealed class Throwing : IParallelWork
    {
        public void Execute(int item, int worker) { if (item == 5) throw new InvalidOperationException("boom"); }
    }

    [Fact]
    public void ExceptionsReachTheCaller()
    {
        using var pool = new WorkerPool(2);
        var e = Assert.Throws<AggregateException>(() => pool.Run(new Throwing(), 16));
        Assert.IsType<InvalidOperationException>(e.InnerException);
        var ok = new Counting(8, 2);
        pool.Run(ok, 8); // still usable
        Assert.All(ok.Hits, h => Assert.Equal(1, h));
    }
}
