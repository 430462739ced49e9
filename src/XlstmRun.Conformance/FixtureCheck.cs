using System.Diagnostics;
using XlstmRun.Backends.Cpu;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;

namespace XlstmRun.Conformance;

/// <summary>
/// One line of the conformance table. <see cref="Error"/> is a relative error (or mean KL for the KL rows, or a count of
/// differing ids for the greedy-ids rows); <see cref="Bound"/> is its limit from <see cref="Bounds"/>.
/// </summary>
public sealed record CheckRow(string Fixture, string Device, string Type, string Quantity, string Against, double Error, double Bound, bool Pass,
    string Note = "")
{
    public bool IsCount => Quantity.StartsWith("greedy ids", StringComparison.Ordinal);
    public bool IsLongRun => Quantity.StartsWith("long run", StringComparison.Ordinal);
    public bool IsKl => Quantity.EndsWith("KL", StringComparison.Ordinal);
}

/// <summary>What one backend produced for a fixture: every quantity the checks compare.</summary>
public sealed class RunOutputs
{
    /// <summary>Prompt logits [T, V] (one Forward over the whole prompt).</summary>
    public required float[] Prompt { get; init; }
    /// <summary>Recurrent state after the prompt (flat layout).</summary>
    public required float[] State { get; init; }
    /// <summary>Logits after feeding each greedy id of the fixture, one per call [G, V] (teacher forcing).</summary>
    public required float[] GreedyLogits { get; init; }
    /// <summary>State after the prompt and the greedy ids, and its position (what the continuation starts from).</summary>
    public required float[] StateAfterGreedy { get; init; }
    public required long PositionAfterGreedy { get; init; }
    /// <summary>Continuation ids fed as one more prefill on top of that state [E, V] (empty if the fixture has none).</summary>
    public required float[] Continue { get; init; }
    /// <summary>Greedy ids through the argmax op (ForwardGreedy, then StepGreedy) from a fresh state.</summary>
    public required int[] GreedyOp { get; init; }
    /// <summary>The prompt fed one token per call [T, V] (the step form; replayed on a GPU).</summary>
    public required float[] Steps { get; init; }
}

/// <summary>
/// Runs the fixture checks of one (fixture, device, weight type): F32 against the fixture's float64 reference, other types
/// against the CPU engine (float activations) on the same file. Converted files and the CPU runs are cached for the session.
/// </summary>
public sealed class ConformanceSession : IDisposable
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string, GgmlType), Lazy<RunOutputs>> _baseline = new();
    private readonly int _threads;
    private readonly bool _ownsModels;
    public ConvertedModels Models { get; }

    /// <summary>
    /// At most this many prompt tokens are fed one per call for the step logits (null: the whole prompt). For slow software
    /// devices in CI; the comparison then uses the same first rows of the reference.
    /// </summary>
    public Func<ConformanceDevice, GgmlType, Fixture, int?>? StepLimit { get; set; }

    public ConformanceSession(int cpuThreads = 0, ConvertedModels? models = null)
    {
        _threads = cpuThreads > 0 ? cpuThreads : Environment.ProcessorCount;
        _ownsModels = models == null;
        Models = models ?? new ConvertedModels();
    }

    public void Dispose()
    {
        if (_ownsModels) Models.Dispose();
    }

    /// <summary>Feed the fixture's ids through <paramref name="be"/> and collect every compared quantity.</summary>
    public static RunOutputs Run(GgufFile file, IBackend be, FixtureReference rf, int? stepLimit = null)
    {
        var r = new ModelRunner(file, be);
        int V = r.Config.Vocab, T = rf.InputIds.Length, G = rf.GreedyIds.Length;
        var prompt = new float[(long)T * V];
        r.Forward(rf.InputIds, LogitsMode.All, prompt);
        var state = r.SaveState();
        var glog = new float[(long)G * V];
        for (int i = 0; i < G; i++) r.Forward(rf.GreedyIds.AsSpan(i, 1), LogitsMode.Last, glog.AsSpan(i * V, V));
        var sg = r.SaveState();
        long pos = r.Position;
        var cont = new float[(long)rf.ContinueIds.Length * V];
        if (rf.ContinueIds.Length > 0) r.Forward(rf.ContinueIds, LogitsMode.All, cont);
        r.ResetState();
        var ids = new int[G];
        if (G > 0)
        {
            ids[0] = r.ForwardGreedy(rf.InputIds, V);
            for (int i = 1; i < G; i++) ids[i] = r.StepGreedy(ids[i - 1], V);
        }
        r.ResetState();
        int S = Math.Min(T, stepLimit ?? T);
        var steps = new float[(long)S * V];
        for (int t = 0; t < S; t++) r.Forward(rf.InputIds.AsSpan(t, 1), LogitsMode.Last, steps.AsSpan(t * V, V));
        return new RunOutputs
        {
            Prompt = prompt, State = state, GreedyLogits = glog, StateAfterGreedy = sg, PositionAfterGreedy = pos, Continue = cont,
            GreedyOp = ids, Steps = steps,
        };
    }

    /// <summary>The CPU engine's float path on <paramref name="fixture"/> converted to <paramref name="type"/> (cached).</summary>
    public RunOutputs Baseline(Fixture fixture, GgmlType type) =>
        _baseline.GetOrAdd((fixture.Dir, type), _ => new Lazy<RunOutputs>(() =>
        {
            using var file = GgufFile.Open(Models.Get(fixture, type));
            using var be = new CpuBackend(_threads, int8Activations: false);
            return Run(file, be, fixture.Reference);
        })).Value;

    /// <summary>Whether a check of (<paramref name="device"/>, <paramref name="type"/>) needs the CPU baseline of that type.</summary>
    public static bool NeedsBaseline(ConformanceDevice device, GgmlType type) => !(device.IsCpuBaseline && type == GgmlType.F32);

    /// <summary>The CPU engine's (float path) last logits after the fixture's prompt and then <paramref name="ids"/>.</summary>
    private float[] BaselineRowAfter(Fixture fixture, GgmlType type, int[] ids)
    {
        using var file = GgufFile.Open(Models.Get(fixture, type));
        using var be = new CpuBackend(_threads, int8Activations: false);
        var r = new ModelRunner(file, be);
        var last = new float[r.Config.Vocab];
        r.Forward(fixture.Reference.InputIds, LogitsMode.Last, last);
        foreach (var id in ids) r.Forward([id], LogitsMode.Last, last);
        return last;
    }

    /// <summary>
    /// <see cref="LongRun"/> on <paramref name="fixture"/> at <paramref name="type"/>: <paramref name="tokens"/> generated tokens,
    /// 20 check points. One row: the largest |C| or |n| seen (bound <see cref="LongRun.MaxState"/>), the rest in the note.
    /// </summary>
    public CheckRow LongRunRow(Fixture fixture, ConformanceDevice device, GgmlType type, long tokens)
    {
        string tn = GgmlTypes.Name(type), q = $"long run ({tokens} tokens)";
        try
        {
            using var file = GgufFile.Open(Models.Get(fixture, type));
            using var be = device.Create();
            var r = LongRun.Run(file, be, tokens, (int)Math.Max(1, tokens / 20));
            string note = $"m in [{r.MinM:F2}, {r.MaxM:F2}], max |logit| {r.MaxAbsLogit:F2}, min rms(logits) {r.MinLogitRms:F3}" + (r.Problem != null ? "; " + r.Problem : "");
            return new CheckRow(fixture.Name, device.Id, tn, q, "finite, bounded", Math.Max(r.MaxAbsC, r.MaxAbsN), LongRun.MaxState, r.Pass, note);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new CheckRow(fixture.Name, device.Id, tn, q, "finite, bounded", double.NaN, LongRun.MaxState, false, "error: " + e.Message.Split('\n')[0]);
        }
    }

    /// <summary>
    /// Every check of every (fixture, type, device), rows in that order. The CPU baselines are computed first,
    /// <paramref name="parallel"/> at a time; then the CPU devices' checks run <paramref name="parallel"/> at a time beside
    /// the other devices' checks, which run one after the other (one GPU queue each). <paramref name="progress"/> gets a
    /// line per finished check (from several threads).
    /// </summary>
    public List<CheckRow> RunAll(IReadOnlyList<Fixture> fixtures, IReadOnlyList<GgmlType> types, IReadOnlyList<ConformanceDevice> devices,
        int parallel, Action<string>? progress = null, long longRunTokens = 0)
    {
        var jobs = new List<(Fixture F, GgmlType T, ConformanceDevice D)>();
        foreach (var f in fixtures)
            foreach (var t in types)
                foreach (var d in devices)
                    if (d.Checks(t)) jobs.Add((f, t, d));
        var opts = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, parallel) };
        var needed = jobs.Where(j => NeedsBaseline(j.D, j.T)).Select(j => (j.F, j.T)).Distinct().ToList();
        Parallel.ForEach(needed, opts, b =>
        {
            var sw = Stopwatch.StartNew();
            try { Baseline(b.F, b.T); }
            catch (Exception) { return; } // reported by the checks that need it
            progress?.Invoke($"{b.F.Name} {GgmlTypes.Name(b.T)}: CPU baseline ({sw.Elapsed.TotalSeconds:F1} s)");
        });
        var results = new List<CheckRow>[jobs.Count];
        void Do(int i)
        {
            var (f, t, d) = jobs[i];
            var sw = Stopwatch.StartNew();
            var r = Check(f, d, t);
            results[i] = r;
            int bad = r.Count(x => !x.Pass);
            // the closest call in the line too: an interrupted run still leaves its figures on stderr
            string closest = CheckReport.ClosestText(r);
            progress?.Invoke($"{f.Name} {d.Id} {GgmlTypes.Name(t)}: {r.Count} checks, {(bad == 0 ? "all pass" : $"{bad} FAILED")}" +
                             (closest.Length > 0 ? $", closest to its bound: {closest}" : "") + $" ({sw.Elapsed.TotalSeconds:F1} s)");
        }
        var cpuJobs = Enumerable.Range(0, jobs.Count).Where(i => jobs[i].D.Backend == "cpu").ToList();
        var cpuTask = Task.Run(() => Parallel.ForEach(cpuJobs, opts, Do));
        for (int i = 0; i < jobs.Count; i++)
            if (jobs[i].D.Backend != "cpu") Do(i);
        cpuTask.GetAwaiter().GetResult();
        var rows = results.SelectMany(r => r).ToList();
        if (longRunTokens > 0 && fixtures.Count > 0)
        {
            // on the first fixture (the smallest model), every device and type
            foreach (var t in types)
                foreach (var d in devices)
                {
                    if (!d.Checks(t)) continue;
                    var sw = Stopwatch.StartNew();
                    var row = LongRunRow(fixtures[0], d, t, longRunTokens);
                    rows.Add(row);
                    progress?.Invoke($"{fixtures[0].Name} {d.Id} {GgmlTypes.Name(t)}: long run of {longRunTokens} tokens {(row.Pass ? "sane" : "FAILED")} ({sw.Elapsed.TotalSeconds:F1} s)");
                }
        }
        return rows;
    }

    /// <summary>Continuation logits after loading a saved state (through a state file) into a fresh runner on <paramref name="be"/>.</summary>
    private float[] ContinueFrom(GgufFile file, IBackend be, float[] state, long position, FixtureReference rf)
    {
        var r = new ModelRunner(file, be);
        string sf = Path.Combine(Models.Dir, $"state-{Guid.NewGuid():N}.xlstate");
        try
        {
            StateFile.Save(sf, r.Config, state, position);
            var st = StateFile.Load(sf, r.Config, out long pos);
            r.LoadState(st, pos);
        }
        finally { File.Delete(sf); }
        var cont = new float[(long)rf.ContinueIds.Length * r.Config.Vocab];
        r.Forward(rf.ContinueIds, LogitsMode.All, cont);
        return cont;
    }

    /// <summary>
    /// Every check of (<paramref name="fixture"/>, <paramref name="device"/>, <paramref name="type"/>). A backend that fails
    /// to load or run gives one failing row with the reason instead of an exception.
    /// </summary>
    public List<CheckRow> Check(Fixture fixture, ConformanceDevice device, GgmlType type)
    {
        var rows = new List<CheckRow>();
        string tn = GgmlTypes.Name(type);
        try
        {
            CheckInto(rows, fixture, device, type);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            rows.Add(new CheckRow(fixture.Name, device.Id, tn, "run", "-", double.NaN, 0, false,
                "error: " + string.Join(' ', e.Message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries))));
        }
        return rows;
    }

    private void CheckInto(List<CheckRow> rows, Fixture fixture, ConformanceDevice device, GgmlType type)
    {
        var rf = fixture.Reference;
        string tn = GgmlTypes.Name(type);
        string path = Models.Get(fixture, type);
        using var file = GgufFile.Open(path);
        var cfg = ModelConfig.FromGguf(file);
        int V = cfg.Vocab;

        void Add(string quantity, string against, double err, double bound, string note = "") =>
            rows.Add(new CheckRow(fixture.Name, device.Id, tn, quantity, against, err, bound, err <= bound, note));

        if (device.IsCpuBaseline && type != GgmlType.F32)
        {
            // the weight rounding of this type on this fixture: quantized file vs the float64 reference of the checkpoint
            var b = Baseline(fixture, type);
            var wb = Bounds.WeightError(fixture.Name, type);
            const string rounding = "float64 ref (weight rounding)";
            Add("prompt logits", rounding, Metrics.RelErr(b.Prompt, rf["logits_prefill"]), wb.Rel);
            Add("prompt logits KL", rounding, Metrics.MeanKl(rf["logits_prefill"], b.Prompt, V), wb.Kl);
            return;
        }

        using var be = device.Create();
        var prec = BackendCatalog.PrecisionOf(be, type);
        int? limit = StepLimit?.Invoke(device, type, fixture);
        var ours = Run(file, be, rf, limit);
        int stepRows = ours.Steps.Length / V;
        bool vsRef = type == GgmlType.F32;
        RunOutputs? baseRun = vsRef ? null : Baseline(fixture, type);
        var bound = vsRef ? new Bound(Bounds.F32VsReference, 1e-8) : Bounds.SameFile(type, prec);
        string against = vsRef ? "float64 ref" : prec switch
        {
            ActivationPrecision.Float16 => "cpu same file (16-bit act.)",
            ActivationPrecision.Int8 => "cpu same file (8-bit act.)",
            _ => "cpu same file",
        };

        float[] wantPrompt = vsRef ? rf["logits_prefill"] : baseRun!.Prompt;
        Add("prompt logits", against, Metrics.RelErr(ours.Prompt, wantPrompt), bound.Rel);
        if (!vsRef) Add("prompt logits KL", against, Metrics.MeanKl(wantPrompt, ours.Prompt, V), bound.Kl);
        var wantSteps = (vsRef ? rf["logits_step"] : baseRun!.Steps).AsSpan(0, stepRows * V);
        string stepNote = stepRows < rf.InputIds.Length ? $"first {stepRows} of {rf.InputIds.Length} prompt tokens" : "";
        Add("step logits", against, Metrics.RelErr(ours.Steps, wantSteps), bound.Rel, stepNote);
        if (!vsRef) Add("step logits KL", against, Metrics.MeanKl(wantSteps, ours.Steps, V), bound.Kl, stepNote);

        // state after the prompt, per block; the worst block is reported
        double eC = 0, eN = 0, eM = 0;
        int nc = cfg.Heads * cfg.DQk * cfg.DV, nn = cfg.Heads * cfg.DQk;
        for (int b = 0; b < cfg.Blocks; b++)
        {
            int o = (int)(b * cfg.StateFloatsPerBlock);
            ReadOnlySpan<float> s = ours.State;
            if (vsRef)
            {
                eC = Math.Max(eC, Metrics.RelErr(s.Slice(o, nc), rf[$"state.{b}.C"]));
                eN = Math.Max(eN, Metrics.RelErr(s.Slice(o + nc, nn), rf[$"state.{b}.n"]));
                eM = Math.Max(eM, Metrics.RelErr(s.Slice(o + nc + nn, cfg.Heads), rf[$"state.{b}.m"]));
            }
            else
            {
                ReadOnlySpan<float> w = baseRun!.State;
                eC = Math.Max(eC, Metrics.RelErr(s.Slice(o, nc), w.Slice(o, nc)));
                eN = Math.Max(eN, Metrics.RelErr(s.Slice(o + nc, nn), w.Slice(o + nc, nn)));
                eM = Math.Max(eM, Metrics.RelErr(s.Slice(o + nc + nn, cfg.Heads), w.Slice(o + nc + nn, cfg.Heads)));
            }
        }
        Add("state C", against, eC, bound.Rel);
        Add("state n", against, eN, bound.Rel);
        Add("state m", against, eM, bound.Rel);

        // greedy ids: through the argmax op, and the argmax of each logits row fed with the fixture's ids
        int G = rf.GreedyIds.Length;
        float[] wantGreedy = vsRef ? rf["greedy_logits"] : baseRun!.GreedyLogits;
        ReadOnlySpan<float> WantRowBefore(int i) => i == 0 ? wantPrompt.AsSpan(wantPrompt.Length - V, V) : wantGreedy.AsSpan((i - 1) * V, V);
        ReadOnlySpan<float> OurRowBefore(int i) => i == 0 ? ours.Prompt.AsSpan(ours.Prompt.Length - V, V) : ours.GreedyLogits.AsSpan((i - 1) * V, V);
        var forced = new int[G];
        var wantForced = new int[G];
        for (int i = 0; i < G; i++)
        {
            forced[i] = Metrics.ArgMax(OurRowBefore(i));
            wantForced[i] = Metrics.ArgMax(WantRowBefore(i));
        }
        bool strict = prec == ActivationPrecision.Float32;
        int[] wantIds = vsRef ? rf.GreedyIds : baseRun!.GreedyOp;
        // the comparator's logits before id i on its own greedy path (the fixture's ids may have parted from it earlier)
        ReadOnlySpan<float> OpRowBefore(int i) =>
            wantIds.AsSpan(0, i).SequenceEqual(rf.GreedyIds.AsSpan(0, i)) ? WantRowBefore(i) : BaselineRowAfter(fixture, type, wantIds.AsSpan(0, i).ToArray());
        var (mOp, noteOp) = CompareIds(ours.GreedyOp, wantIds, OpRowBefore, bound.Rel, strict);
        var (mF, noteF) = CompareIds(forced, wantForced, WantRowBefore, bound.Rel, strict);
        if (vsRef && !wantForced.SequenceEqual(rf.GreedyIds)) noteF += " (the reference's own argmax differs from its greedy ids)";
        string idNote = string.Join("; ", new[] { noteOp.Length > 0 ? "argmax op: " + noteOp : "", noteF.Length > 0 ? "from logits: " + noteF : "" }.Where(x => x.Length > 0));
        rows.Add(new CheckRow(fixture.Name, device.Id, tn, "greedy ids", against, Math.Max(mOp.Count, mF.Count), 0, mOp.Pass && mF.Pass, idNote));
        Add("greedy logits", against, Metrics.RelErr(ours.GreedyLogits, wantGreedy), bound.Rel);

        if (rf.ContinueIds.Length > 0)
        {
            float[] wantCont = vsRef ? rf["logits_continue"] : baseRun!.Continue;
            Add("continuation logits", against, Metrics.RelErr(ours.Continue, wantCont), bound.Rel);
            // the state saved on one backend and loaded on the other, through a state file
            using (var cpu = new CpuBackend(_threads, int8Activations: false))
            {
                var c = ContinueFrom(file, cpu, ours.StateAfterGreedy, ours.PositionAfterGreedy, rf);
                Add(device.IsCpuBaseline ? "state file round trip" : "state here → cpu", against, Metrics.RelErr(c, wantCont), bound.Rel);
            }
            if (!device.IsCpuBaseline)
            {
                var cpuRun = Baseline(fixture, type);
                using var be2 = device.Create();
                var c = ContinueFrom(file, be2, cpuRun.StateAfterGreedy, cpuRun.PositionAfterGreedy, rf);
                Add("state cpu → here", against, Metrics.RelErr(c, wantCont), bound.Rel);
            }
        }
    }

    /// <summary>The comparator's logits row before id <paramref name="i"/> (the one whose argmax chose it).</summary>
    public delegate ReadOnlySpan<float> RowFunc(int i);

    /// <summary>
    /// Differing ids between <paramref name="ours"/> and <paramref name="want"/>. Strict: any difference fails. Otherwise the
    /// sequences may part at a near tie: the first differing id passes when the comparator's logits before it put the two
    /// ids within <see cref="Bounds.TieFactor"/> × bound × rms(row) of each other (later ids follow another path).
    /// </summary>
    public static ((int Count, bool Pass), string Note) CompareIds(int[] ours, int[] want, RowFunc rowBefore, double relBound, bool strict)
    {
        int first = -1, count = 0;
        for (int i = 0; i < Math.Min(ours.Length, want.Length); i++)
            if (ours[i] != want[i]) { count++; if (first < 0) first = i; }
        if (first < 0) return ((0, ours.Length == want.Length), "");
        var row = rowBefore(first);
        double ss = 0;
        foreach (var v in row) ss += (double)v * v;
        double rms = Math.Sqrt(ss / row.Length), gap = (double)row[want[first]] - row[ours[first]];
        double allowed = Bounds.TieFactor * relBound * rms;
        bool tie = gap <= allowed;
        string note = $"first differs at {first} ({want[first]} → {ours[first]}, logit gap {gap:G3}{(strict ? "" : tie ? $" ≤ tie tolerance {allowed:G3}" : $" > tie tolerance {allowed:G3}")})";
        return ((count, !strict && tie), note);
    }
}
