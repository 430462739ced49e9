using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Formats.Quant;
using XlstmRun.Model;

namespace XlstmRun.Cli.Commands;

/// <summary>
/// `bench --op`: one op of <see cref="IBackend"/> in isolation on random data (ggml's test-backend-ops perf, for our ops):
/// time per call on the device (timestamp queries where the backend has them, else wall clock over a synchronised
/// batch of calls), TFLOP/s and GB/s (weights + activations read, outputs written). `--op 7b` runs every matrix shape
/// of the 7B model (decode matvecs and prefill GEMMs) and the cell kernels at 7B head sizes.
/// Weights larger than a few MiB rotate over several copies so that no call finds its weights in the L2 cache.
/// </summary>
internal static class OpBench
{
    private static readonly Option<string?> Op = new("--op") { Description = "Benchmark one op instead of a model: matmul, cell, 7b (every 7B shape), mma (the tensor cores' f16 rate with no memory traffic, Vulkan) or alu (packed int8 dot products and float FMAs alone, Vulkan); needs no -m", HelpName = "OP" };
    private static readonly Option<string> Type = new("--type") { Description = $"--op: weight types, comma-separated ({GgmlTypes.NameList()})", DefaultValueFactory = _ => "q4_0" };
    private static readonly Option<int> Rows = new("--rows") { Description = "--op matmul: weight rows", DefaultValueFactory = _ => 4096 };
    private static readonly Option<int> Cols = new("--cols") { Description = "--op matmul: weight columns", DefaultValueFactory = _ => 4096 };
    private static readonly Option<string> Tokens = new("--tokens") { Description = "--op: tokens per call, comma-separated (1 = decode matvec / step kernel)", DefaultValueFactory = _ => "1" };
    private static readonly Option<bool> Feed = new("--feed") { Description = "--op matmul/7b: products as in a prompt feed of --tokens tokens (on a GPU, 2-64 tokens run the split-K tensor-core GEMM); without it a product of a few tokens is a decode step of that many sequences (matvecs)" };
    private static readonly Option<bool> Overlap = new("--overlap") { Description = "--op matmul/7b: also time 32 products in one submission, each depending on the previous one (a barrier between them) and independent (distinct outputs, no barriers): shows what a dependency costs and whether the device overlaps independent dispatches (wall clock, no device timestamps)" };

    public static void AddOptions(Command c)
    {
        c.Options.Add(Op);
        c.Options.Add(Type);
        c.Options.Add(Rows);
        c.Options.Add(Cols);
        c.Options.Add(Tokens);
        c.Options.Add(Overlap);
        c.Options.Add(Feed);
    }

    public static bool Requested(ParseResult pr) => !string.IsNullOrEmpty(pr.GetValue(Op));

    private sealed record Case(string Op, string Label, GgmlType Type, int Rows, int Cols, int Tokens);

    public static int Run(ParseResult pr, ModelOptions mo, int reps)
    {
        string op = pr.GetValue(Op)!;
        var types = (pr.GetValue(Type) ?? "q4_0").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(ParseType).ToArray();
        var tokens = (pr.GetValue(Tokens) ?? "1").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(t => int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 65536 ? n : throw new BadInputException($"--tokens: '{t}' is not a number of tokens (1..65536)")).ToArray();
        if (op == "mma") return MatrixPeak(pr, mo);
        if (op == "alu") return AluPeak(pr, mo);
        var cases = new List<Case>();
        switch (op)
        {
            case "matmul":
                int rows = pr.GetValue(Rows), cols = pr.GetValue(Cols);
                if (rows < 1 || cols < 1 || (long)rows * cols > 1L << 31) throw new BadInputException("--rows/--cols: a matrix of 1 to 2^31 elements");
                foreach (var t in types) foreach (var n in tokens) cases.Add(new("matmul", "", t, rows, cols, n));
                break;
            case "cell":
                foreach (var n in tokens) cases.Add(new("cell", "7B head", GgmlType.F32, 0, 0, n));
                break;
            case "7b":
                (string, int, int)[] shapes = [("qkvo", 12288, 4096), ("out", 4096, 4096), ("gate_up", 21888, 4096), ("down", 4096, 10944), ("lm_head", 50304, 4096)];
                foreach (var n in tokens)
                {
                    foreach (var t in types)
                    {
                        foreach (var (l, r, c) in shapes) cases.Add(new("matmul", l, t, r, c, n));
                        if (n == 1)
                        {
                            // the decode step's fused kernels (as the Vulkan planner builds them)
                            cases.Add(new("fused", "qkvo+norm+gates", t, 12288, 4096, 1));
                            cases.Add(new("fused", "gate_up+norm+swiglu", t, 21888, 4096, 1));
                        }
                    }
                    cases.Add(new("cell", "7B head", GgmlType.F32, 0, 0, n));
                }
                break;
            default:
                throw new BadInputException($"--op {op}: expected matmul, cell, 7b, mma or alu");
        }

        bool overlap = pr.GetValue(Overlap);
        if (overlap && op is not ("matmul" or "7b")) throw new BadInputException($"--overlap: times matrix products, with --op matmul or 7b (not {op})");
        using var be = mo.CreateBackend(pr, profile: !overlap);
        Console.Error.WriteLine($"bench --op: {be.Device}");
        if (overlap) return OverlapTable(be, cases.Where(c => c.Op == "matmul").ToList(), reps);
        var prof = be as IProfilingBackend;
        bool deviceTimes = prof is { Profiling: true };
        var sb = new StringBuilder();
        sb.AppendLine("| op | shape | type | tokens | activations | µs per call | TFLOP/s | GB/s |");
        sb.AppendLine("| --- | --- | --- | ---: | --- | ---: | ---: | ---: |");
        foreach (var c in cases)
        {
            var (us, flop, bytes, act) = c.Op switch { "matmul" or "fused" => MatMul(be, c, reps, prof, pr.GetValue(Feed)), _ => Cell(be, c, reps, prof) };
            bool mm = c.Op != "cell";
            sb.AppendLine($"| {c.Op} | {c.Label} {(mm ? $"({c.Rows}x{c.Cols})" : "")} | {(mm ? GgmlTypes.Name(c.Type) : "f32")} | {c.Tokens} | {act} | " +
                          $"{F(us, "F2")} | {F(flop / us / 1e6, "F2")} | {F(bytes / us / 1e3, "F1")} |");
            Console.Error.WriteLine($"bench --op: {c.Op} {c.Label} {GgmlTypes.Name(c.Type)} T={c.Tokens}: {us:F2} µs");
        }
        sb.AppendLine();
        sb.AppendLine($"device: {be.Device}");
        sb.AppendLine(deviceTimes ? "time: device timestamps around each call (median of the per-call times), after one warm-up call"
                                  : "time: wall clock over a synchronised batch of calls (the backend has no device timestamps)");
        Console.Write(sb.ToString());
        return 0;
    }

    /// <summary>`--op mma`: the f16 tensor-core rate through cooperative matrices with no memory traffic, the ceiling of
    /// any GEMM written with them on this device.</summary>
    private static int MatrixPeak(ParseResult pr, ModelOptions mo)
    {
        using var be = mo.CreateBackend(pr, profile: true);
        if (be is not IMatrixUnitProbe probe || probe.MatrixPeakTflops() is not { } tflops)
            throw new BadInputException($"--op mma: needs a device with matrix units and timestamps (Vulkan cooperative matrices), not {be.Device}");
        Console.WriteLine($"mma: {tflops.ToString("F1", CultureInfo.InvariantCulture)} TFLOP/s (f16 × f16 + f32, 16×16×16 subgroup cooperative matrices, registers only)");
        Console.WriteLine($"device: {be.Device}");
        return 0;
    }

    /// <summary>`--op alu`: packed int8 dot products and float FMAs per second with no memory traffic: the arithmetic
    /// ceilings of the int8 and float matvecs on this device.</summary>
    private static int AluPeak(ParseResult pr, ModelOptions mo)
    {
        using var be = mo.CreateBackend(pr, profile: true);
        if (be is not IAluProbe probe || probe.AluPeakGops(intDot: false) is not { } fma)
            throw new BadInputException($"--op alu: needs a device with timestamps (Vulkan), not {be.Device}");
        string dots = probe.AluPeakGops(intDot: true) is { } d ? $"{d.ToString("F0", CultureInfo.InvariantCulture)} G/s ({(4 * d / 1000).ToString("F1", CultureInfo.InvariantCulture)} T int8 MACs/s)" : "not available";
        Console.WriteLine($"alu: packed int8 dot products (4 MACs each) {dots}; float FMAs {fma.ToString("F0", CultureInfo.InvariantCulture)} G/s; registers only");
        Console.WriteLine($"device: {be.Device}");
        return 0;
    }

    private static GgmlType ParseType(string s)
    {
        try
        {
            return GgmlTypes.Parse(s);
        }
        catch (BadInputException e)
        {
            throw new BadInputException("--type: " + e.Message);
        }
    }

    private static string F(double x, string fmt) => double.IsFinite(x) ? x.ToString(fmt, CultureInfo.InvariantCulture) : "-";

    /// <summary>Random values in [-scale, scale) (xorshift, seeded: the same data on every run).</summary>
    private static void Fill(Span<float> a, uint seed, float scale)
    {
        uint x = seed * 2654435761u + 1;
        for (int i = 0; i < a.Length; i++)
        {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            a[i] = ((x >> 8) * (1f / 16777216f) * 2 - 1) * scale;
        }
    }

    /// <summary>A random weight of <paramref name="type"/>, encoded in native memory owned by <paramref name="owned"/>.</summary>
    private static unsafe TensorView RandomWeight(GgmlType type, int rows, int cols, uint seed, List<nint> owned, bool vector = false)
    {
        long rowBytes = GgmlTypes.RowBytes(type, cols);
        long bytes = rowBytes * rows;
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 64), 64);
        owned.Add((nint)p);
        byte* bp = p;
        Parallel.For(0, (rows + 63) / 64, chunk =>
        {
            var f = new float[cols];
            for (int r = chunk * 64; r < Math.Min(rows, chunk * 64 + 64); r++)
            {
                Fill(f, seed * 7919u + (uint)r, 0.05f);
                Quantizer.EncodeRow(type, f, new Span<byte>(bp + r * rowBytes, (int)rowBytes));
            }
        });
        return new TensorView($"w{seed}", type, vector ? [cols] : [cols, rows], p, bytes);
    }

    /// <summary>Activations [rows, cols] with random values: gathered from a random F32 table through the backend's
    /// embedding op (works on every backend).</summary>
    private static ITensor RandomActivations(IBackend be, int rows, int cols, uint seed, List<nint> owned)
    {
        int tableRows = Math.Min(rows, 256);
        var table = be.LoadWeight(RandomWeight(GgmlType.F32, tableRows, cols, seed, owned));
        var ids = be.AllocTokens(rows);
        var idv = new int[rows];
        for (int i = 0; i < rows; i++) idv[i] = (int)((uint)(i * 2654435761u) % (uint)tableRows);
        be.WriteTokens(ids, idv);
        var x = be.Alloc(rows, cols);
        be.Embed(table, ids, x);
        return x;
    }

    private static double Median(List<double> v)
    {
        v.Sort();
        return v.Count == 0 ? double.NaN : v.Count % 2 == 1 ? v[v.Count / 2] : 0.5 * (v[v.Count / 2 - 1] + v[v.Count / 2]);
    }

    /// <summary>Time <paramref name="call"/> (i = call index): warm-up calls for <see cref="WarmupMs"/>, then
    /// <paramref name="reps"/> calls, each synchronised (device timestamps give the kernel time, the wall clock the time
    /// with submission).</summary>
    private static double Time(IBackend be, IProfilingBackend? prof, int reps, ITensor sync, Action<int> call) =>
        Time(be, prof, reps, sync, call, out _);

    /// <summary>Back-to-back warm-up calls before each case is timed. A GPU that was lightly loaded for a few seconds (a
    /// case's set-up: weights made and uploaded on the host) lowers its clocks and runs short calls several times slower:
    /// on the H200 identical cases took 360 µs, then from the sixth on 1,340-1,650 µs at 345-405 MHz instead of 1,980
    /// (nvidia-smi: throttle reason "idle"; docs/NOTES.md, session 9).</summary>
    public const int WarmupMs = 300;

    /// <param name="kernels">Per kernel name: median µs per call (device timestamps only).</param>
    private static double Time(IBackend be, IProfilingBackend? prof, int reps, ITensor sync, Action<int> call, out string kernels)
    {
        var one = new float[sync.Rows * sync.Cols];
        var warm = Stopwatch.StartNew();
        int w = 0;
        do
        {
            call(w++);
            be.Read(sync, one);
        } while (warm.ElapsedMilliseconds < WarmupMs && w < 100_000);
        var times = new List<double>();
        var perKernel = new Dictionary<string, List<double>>();
        for (int i = 0; i < reps; i++)
        {
            prof?.ResetProfile();
            var sw = Stopwatch.StartNew();
            call(i + 1);
            be.Read(sync, one);
            double wall = sw.Elapsed.TotalMilliseconds * 1000;
            if (prof is { Profiling: true })
            {
                // the op's own entries (the read at the end is not part of it)
                var ops = prof.OpTimes().Where(kv => kv.Key != "read").ToList();
                times.Add(ops.Sum(kv => kv.Value.Ns) / 1000);
                foreach (var (k, v) in ops)
                {
                    if (!perKernel.TryGetValue(k, out var l)) perKernel[k] = l = new List<double>();
                    l.Add(v.Ns / 1000);
                }
            }
            else times.Add(wall);
        }
        kernels = perKernel.Count > 1 ? string.Join(", ", perKernel.Select(kv => $"{kv.Key} {Median(kv.Value):F1}")) : "";
        return Median(times);
    }

    private static (double Us, double Flop, double Bytes, string Act) MatMul(IBackend be, Case c, int reps, IProfilingBackend? prof, bool feed)
    {
        var owned = new List<nint>();
        try
        {
            var (ws, wbytes) = RotatingWeights(be, c, owned);
            int copies = ws.Length;
            var x = RandomActivations(be, c.Tokens, c.Cols, 99, owned);
            var d = be.Alloc(c.Tokens, c.Rows);
            var sync = be.Rows(d, 0, 1);
            Action<int> call = i => be.MatMul(ws[i % copies], x, d);
            if (feed && c.Op == "matmul")
            {
                var feeds = ws.Select((w, i) => new ForwardPlan($"feed{i}", c.Tokens, [new MatMulOp(w, x, d, null, false, 0)], decode: false)).ToArray();
                call = i => be.Run(feeds[i % copies]);
            }
            if (c.Op == "fused")
            {
                // RmsNorm(x → a) then the product(s) of a, as one plan: the backend fuses what it can (a decode step of
                // c.Tokens sequences, or with --feed a prompt feed)
                var nw = be.LoadWeight(RandomWeight(GgmlType.F32, 1, c.Cols, 77, owned, vector: true));
                var a = be.Alloc(c.Tokens, c.Cols);
                var plans = new ForwardPlan[copies];
                if (c.Label.Contains("gates"))
                {
                    var gw = be.LoadWeight(RandomWeight(GgmlType.F32, 16, c.Cols, 78, owned));
                    var gb = be.LoadWeight(RandomWeight(GgmlType.F32, 1, 16, 79, owned, vector: true));
                    var gd = be.Alloc(c.Tokens, 16);
                    for (int i = 0; i < copies; i++)
                        plans[i] = new ForwardPlan($"f{i}", c.Tokens, [new RmsNormOp(x, nw, a, 1e-6f, 0), new MatMulOp(ws[i], a, d, null, false, 0), new MatMulOp(gw, a, gd, gb, false, 0)], decode: !feed);
                }
                else
                {
                    var sdst = be.Alloc(c.Tokens, c.Rows / 2);
                    sync = be.Rows(sdst, 0, 1);
                    for (int i = 0; i < copies; i++)
                        plans[i] = new ForwardPlan($"f{i}", c.Tokens, [new RmsNormOp(x, nw, a, 1e-6f, 0), new MatMulOp(ws[i], a, d, null, false, 0), new SwiGluOp(d, sdst, 0)], decode: !feed);
                }
                call = i => be.Run(plans[i % copies]);
            }
            double us = Time(be, prof, reps, be.Rows(sync, 0, 1), call, out var kernels);
            double flop = 2.0 * c.Rows * c.Cols * c.Tokens;
            double bytes = wbytes + 4.0 * c.Tokens * (c.Cols + c.Rows);
            string act = be.MatMulActivations(c.Type, c.Tokens).ToString().ToLowerInvariant();
            return (us, flop, bytes, kernels.Length > 0 ? act + ": " + kernels + " µs" : act);
        }
        finally
        {
            foreach (var p in owned) unsafe { NativeMemory.AlignedFree((void*)p); }
        }
    }

    /// <summary>The case's weight in enough random copies that a call rotating over them finds none in the L2 cache, and
    /// the bytes of one copy.</summary>
    private static (IWeight[] Copies, long Bytes) RotatingWeights(IBackend be, Case c, List<nint> owned)
    {
        long wbytes = GgmlTypes.RowBytes(c.Type, c.Cols) * c.Rows;
        int copies = (int)Math.Clamp((200L << 20) / Math.Max(1, wbytes), 1, 8);   // > 3 × a 60 MB L2 per rotation
        var ws = new IWeight[copies];
        for (int i = 0; i < copies; i++) ws[i] = be.LoadWeight(RandomWeight(c.Type, c.Rows, c.Cols, (uint)(i + 1), owned));
        return (ws, wbytes);
    }

    /// <summary>`--overlap`: per product, the wall-clock time of 32 products recorded into one submission, (a) each
    /// writing the output the previous one wrote (the backend puts a barrier between them) and (b) each writing its own
    /// output (no barriers). (a) − (b) is what a dependency between dispatches costs on this device; (b) near the bytes
    /// over the bandwidth means the device runs independent dispatches concurrently.</summary>
    private static int OverlapTable(IBackend be, List<Case> cases, int reps)
    {
        const int N = 32;
        var sb = new StringBuilder();
        sb.AppendLine("| shape | type | tokens | dependent µs per product | independent µs per product | difference | independent GB/s |");
        sb.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (var c in cases)
        {
            var owned = new List<nint>();
            try
            {
                var (ws, wbytes) = RotatingWeights(be, c, owned);
                int copies = ws.Length;
                var x = RandomActivations(be, c.Tokens, c.Cols, 99, owned);
                var ds = new ITensor[N];
                for (int i = 0; i < N; i++) ds[i] = be.Alloc(c.Tokens, c.Rows);
                var sync = be.Rows(ds[0], 0, 1);
                double dep = Time(be, null, reps, sync, _ => { for (int i = 0; i < N; i++) be.MatMul(ws[i % copies], x, ds[0]); }) / N;
                double ind = Time(be, null, reps, sync, _ => { for (int i = 0; i < N; i++) be.MatMul(ws[i % copies], x, ds[i]); }) / N;
                sb.AppendLine($"| {c.Label} ({c.Rows}x{c.Cols}) | {GgmlTypes.Name(c.Type)} | {c.Tokens} | {F(dep, "F2")} | {F(ind, "F2")} | {F(dep - ind, "F2")} | {F(wbytes / ind / 1e3, "F1")} |");
                Console.Error.WriteLine($"bench --op --overlap: {c.Label} {GgmlTypes.Name(c.Type)} T={c.Tokens}: {dep:F2} / {ind:F2} µs");
            }
            finally
            {
                foreach (var p in owned) unsafe { NativeMemory.AlignedFree((void*)p); }
            }
        }
        sb.AppendLine();
        sb.AppendLine($"device: {be.Device}");
        sb.AppendLine($"time: wall clock of {N} products in one submission (median of the calls after one warm-up), divided by {N}");
        Console.Write(sb.ToString());
        return 0;
    }

    /// <summary>The mLSTM cell of one 7B block (8 heads of 256 × 512): the step kernel for one token, the chunkwise
    /// kernels for more. Bytes: the state read and written plus q, k, v, gates and h.</summary>
    private static (double Us, double Flop, double Bytes, string Act) Cell(IBackend be, Case c, int reps, IProfilingBackend? prof)
    {
        var cfg = new ModelConfig { Hidden = 4096, Blocks = 1, Heads = 8, QkDim = 2048, VDim = 4096, FfnDim = 10944, Vocab = 64 };
        var owned = new List<nint>();
        try
        {
            int T = c.Tokens;
            var q = RandomActivations(be, T, cfg.QkvoDim, 5, owned);
            var g = RandomActivations(be, T, 2 * cfg.Heads, 6, owned);
            var h = be.Alloc(T, cfg.VDim);
            var st = be.AllocState(cfg);
            double us = Time(be, prof, reps, be.Rows(h, 0, 1), _ => be.MlstmCell(cfg, q, g, st, 0, h), out var kernels);
            double state = cfg.StateFloatsPerBlock * 4.0;
            double bytes = 2 * state + 4.0 * T * (cfg.QkvoDim + 2 * cfg.Heads + cfg.VDim);
            // per head and token: the state update (2·dqk·dv) and q̂ᵀC (2·dqk·dv); chunkwise adds the intra-chunk products
            double flop = T * cfg.Heads * (4.0 * cfg.DQk * cfg.DV + (T > 1 ? 2.0 * 64 * (cfg.DQk + cfg.DV) : 0));
            return (us, flop, bytes, kernels.Length > 0 ? "f32: " + kernels + " µs" : "f32");
        }
        finally
        {
            foreach (var p in owned) unsafe { NativeMemory.AlignedFree((void*)p); }
        }
    }
}
