using System.Diagnostics;
using System.Globalization;
using SharpFuzz;

namespace XlstmRun.Fuzz;

/// <summary>
/// xlstm-fuzz: feeds mutated inputs through the real parsers. Modes (see ../README.md):
///   make-corpus DIR                       write the seed corpus
///   mutate TARGET [--runs N] [--seed S] [--corpus DIR] [--findings DIR]
///                                         built-in deterministic mutation loop (no instrumentation needed)
///   replay TARGET FILE...                 run files through a target and say what happened
///   afl TARGET                            AFL++ mode (SharpFuzz; the assemblies must be instrumented first)
///   libfuzzer TARGET                      libFuzzer mode (SharpFuzz, with libfuzzer-dotnet)
/// TARGET: gguf, safetensors, state, tokenizer.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        try
        {
            if (args.Length == 0) return Usage();
            switch (args[0])
            {
                case "make-corpus":
                    CorpusMaker.Write(args.Length > 1 ? args[1] : "fuzz/corpus");
                    return 0;
                case "mutate":
                    return Mutate(args);
                case "replay":
                    return Replay(args);
                case "afl":
                {
                    var t = FuzzTargets.Get(args[1]);
                    Fuzzer.OutOfProcess.Run(stream =>
                    {
                        using var ms = new MemoryStream();
                        stream.CopyTo(ms);
                        if (FuzzTargets.Check(t, ms.ToArray()) is Exception e) throw new FindingException(e);
                    });
                    return 0;
                }
                case "libfuzzer":
                {
                    var t = FuzzTargets.Get(args[1]);
                    Fuzzer.LibFuzzer.Run(span =>
                    {
                        if (FuzzTargets.Check(t, span.ToArray()) is Exception e) throw new FindingException(e);
                    });
                    return 0;
                }
                default:
                    return Usage();
            }
        }
        finally
        {
            FuzzTargets.Cleanup();
        }
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: xlstm-fuzz make-corpus DIR | mutate TARGET [--runs N] [--seed S] [--corpus DIR] [--findings DIR] | replay TARGET FILE... | afl TARGET | libfuzzer TARGET");
        Console.Error.WriteLine("targets: " + string.Join(", ", FuzzTargets.Names));
        return 2;
    }

    private sealed class FindingException(Exception inner) : Exception("finding: " + inner.GetType().Name + ": " + inner.Message, inner);

    private static string Opt(string[] a, string name, string def)
    {
        int i = Array.IndexOf(a, name);
        return i >= 0 && i + 1 < a.Length ? a[i + 1] : def;
    }

    private static int Replay(string[] args)
    {
        var t = FuzzTargets.Get(args[1]);
        int bad = 0;
        foreach (var f in args.Skip(2))
        {
            var sw = Stopwatch.StartNew();
            var e = FuzzTargets.Check(t, File.ReadAllBytes(f));
            Console.WriteLine($"{f}: {(e == null ? "ok" : "FINDING " + e)} ({sw.ElapsedMilliseconds} ms)");
            if (e != null) bad++;
        }
        return bad == 0 ? 0 : 1;
    }

    /// <summary>The mutation loop: seeds plus accepted mutants form the pool; each run mutates one pool entry.</summary>
    private static int Mutate(string[] args)
    {
        string target = args[1];
        var t = FuzzTargets.Get(target);
        long runs = long.Parse(Opt(args, "--runs", "100000"), CultureInfo.InvariantCulture);
        ulong seed = ulong.Parse(Opt(args, "--seed", "1"), CultureInfo.InvariantCulture);
        string corpus = Path.Combine(Opt(args, "--corpus", "fuzz/corpus"), target);
        string findings = Opt(args, "--findings", "fuzz/findings");
        var pool = Directory.GetFiles(corpus).OrderBy(f => f, StringComparer.Ordinal).Select(File.ReadAllBytes).ToList();
        if (pool.Count == 0) { Console.Error.WriteLine($"no seeds in {corpus}"); return 2; }
        int seeds = pool.Count;
        var stats = new MutationStats();
        var sw = Stopwatch.StartNew();
        var found = MutationLoop.Run(t, pool, seed, runs, FuzzTargets.IsJson(target), stats, (i, input, e, ms) =>
        {
            Directory.CreateDirectory(findings);
            string name = Path.Combine(findings, $"{target}-{seed}-{i}");
            File.WriteAllBytes(name + ".bin", input);
            File.WriteAllText(name + ".txt", $"{e}\n({ms} ms)\n");
            Console.WriteLine($"FINDING {name}: {e.GetType().Name}: {e.Message.Split('\n')[0]} ({ms} ms)");
        }, progress: n => Console.Error.WriteLine($"{target}: {n:N0} runs, {stats.Accepted:N0} accepted, {stats.Findings} findings, {n / sw.Elapsed.TotalSeconds:F0} runs/s"));
        Console.WriteLine($"{target}: {stats.Runs:N0} runs from {seeds} seeds (seed {seed}) in {sw.Elapsed.TotalSeconds:F0} s: " +
            $"{stats.Accepted:N0} accepted, {stats.Runs - stats.Accepted - stats.Findings:N0} rejected cleanly, {stats.Findings} findings, slowest {stats.SlowestMs} ms, most allocated {stats.MostAllocated >> 20} MiB");
        return found ? 1 : 0;
    }
}
