using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using XlstmRun.Backends.Cpu;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;

namespace XlstmRun.Cli.Commands;

/// <summary>
/// `bench`: llama-bench style throughput of prompt processing (ppN: N tokens in one Forward) and generation (tgN: N
/// single-token greedy steps) on synthetic token ids, mean ± sd over repetitions after one warm-up, for any backend.
/// For generation it also reports the bytes read per token (weights streamed + 2 × recurrent state), the achieved GB/s,
/// and that as a share of the memory bandwidth measured in the same run: on the CPU engine the host's read bandwidth (a
/// streaming-read probe); on a backend with device memory of its own (<see cref="IBandwidthProbe"/>: Vulkan) that
/// device's copy bandwidth (read + write, timed on the device).
/// </summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var mo = new ModelOptions();
        var pp = new Option<int>("--n-prompt", "-p") { Description = "Prompt tokens for the prompt-processing test (0 = skip)", DefaultValueFactory = _ => 512 };
        var tg = new Option<int>("--n-gen", "-n") { Description = "Generated tokens for the generation test (0 = skip)", DefaultValueFactory = _ => 128 };
        var reps = new Option<int>("--repetitions", "-r") { Description = "Repetitions of each test (after one warm-up)", DefaultValueFactory = _ => 5 };
        var output = new Option<string>("--output", "-o") { Description = "Output format: md or json", DefaultValueFactory = _ => "md" };
        output.AcceptOnlyFromAmong("md", "json");
        var probeMiB = new Option<int>("--probe-mib") { Description = "Size of the memory-bandwidth probe buffer in MiB (0 = no probe): host RAM read for the CPU engine, device-to-device copy for a GPU backend", DefaultValueFactory = _ => 1024 };
        var cmd = new Command("bench", "Measure prompt processing and generation speed (llama-bench style table on stdout).");
        mo.AddTo(cmd, state: false);
        cmd.Options.Add(pp);
        cmd.Options.Add(tg);
        cmd.Options.Add(reps);
        cmd.Options.Add(output);
        cmd.Options.Add(probeMiB);
        cmd.SetAction(pr => Program.Run(() =>
        {
            int nPrompt = pr.GetValue(pp), nGen = pr.GetValue(tg), r = pr.GetValue(reps), mib = pr.GetValue(probeMiB);
            if (nPrompt < 0 || nGen < 0) throw new BadInputException("-p and -n must be at least 0");
            if (r < 1) throw new BadInputException("-r must be at least 1");
            if (mib < 0) throw new BadInputException("--probe-mib must be at least 0");
            int threads = pr.GetValue(mo.Threads);
            if (threads < 0) throw new BadInputException("-t must be at least 0");
            int probeThreads = threads > 0 ? Math.Min(threads, Environment.ProcessorCount) : Environment.ProcessorCount;

            // The host probe runs first (for the CPU engine), then the peak-RSS mark is reset, so its buffer does not count
            // as the model's memory. A GPU backend is probed on its device once loaded (IBandwidthProbe); another backend
            // (auto that fell back to the CPU, OpenCL) gets the host probe after loading.
            double probe = 0;
            string? probeNote = null;
            void HostProbe()
            {
                Console.Error.WriteLine($"bench: read-bandwidth probe ({mib} MiB, {probeThreads} threads)...");
                probe = HostBandwidthProbe.Measure((long)mib << 20, probeThreads, ProbePasses).BestGBs;
                Console.Error.WriteLine($"bench: probe {probe:F1} GB/s");
                probeNote = $"read bandwidth (probe: {probeThreads} threads summing {mib} MiB, best of {ProbePasses} passes): {F(probe, "F1")} GB/s";
                ProcStatus.ResetPeak();
            }
            if (mib > 0 && pr.GetValue(mo.Backend) == "cpu") HostProbe();

            var sw = Stopwatch.StartNew();
            using var s = ModelSession.Open(pr, mo, needTokenizer: false);
            Console.Error.WriteLine($"bench: loaded in {sw.Elapsed.TotalSeconds:F2} s on {s.Backend.Device}");
            if (mib > 0 && probeNote == null)
            {
                if (s.Backend is IBandwidthProbe dev)
                {
                    Console.Error.WriteLine($"bench: device bandwidth probe ({mib} MiB copy)...");
                    var pr0 = dev.MeasureDeviceBandwidth((long)mib << 20, ProbePasses);
                    probe = pr0.GBs;
                    probeNote = $"device memory bandwidth (probe: {pr0.Method}): {F(probe, "F1")} GB/s";
                    Console.Error.WriteLine($"bench: probe {probe:F1} GB/s ({pr0.Method})");
                }
                else HostProbe();
            }
            var f = s.File;
            var c = s.Config;
            long fileBytes = f.TensorNames.Sum(n => f.Tensor(n).Bytes);
            long parms = f.TensorNames.Sum(n => f.Tensor(n).Elements);
            var embd = f.Tensor(TensorNames.TokenEmbd);
            long weightsPerToken = fileBytes - embd.Bytes + embd.RowBytes;
            long stateBytes = c.StateFloats * 4;
            long bytesPerToken = weightsPerToken + 2 * stateBytes;
            string type = MainType(f);
            string model = $"xlstm {SizeLabel(parms)} {type}";
            int threadCol = s.Backend is Backends.Cpu.CpuBackend cb ? cb.Threads : threads;

            var results = new List<Result>();
            var rng = new Random(1234);
            int V = c.Vocab;
            if (nPrompt > 0)
            {
                var ids = new int[nPrompt];
                for (int i = 0; i < nPrompt; i++) ids[i] = rng.Next(V);
                var logits = new float[V];
                var times = Measure(r, $"pp{nPrompt}", () =>
                {
                    s.Runner.ResetState();
                    s.Runner.Forward(ids, LogitsMode.Last, logits);
                });
                results.Add(new Result($"pp{nPrompt}", times.Select(t => nPrompt / t).ToArray(), 0));
            }
            if (nGen > 0)
            {
                var ids = new int[nGen];
                for (int i = 0; i < nGen; i++) ids[i] = rng.Next(V);
                var times = Measure(r, $"tg{nGen}", () =>
                {
                    s.Runner.ResetState();
                    for (int i = 0; i < nGen; i++) s.Runner.StepGreedy(ids[i], V);
                });
                results.Add(new Result($"tg{nGen}", times.Select(t => nGen / t).ToArray(), bytesPerToken));
            }
            long peak = ProcStatus.PeakRssBytes();
            if (mib > 0 && probe > 0 && s.Backend is not IBandwidthProbe)
            {
                // Probe the host again after the tests and keep the better figure: on a shared machine either probe may
                // have been disturbed, and a low probe would flatter the percentages.
                double again = HostBandwidthProbe.Measure((long)mib << 20, probeThreads, ProbePasses).BestGBs;
                Console.Error.WriteLine($"bench: probe after the tests {again:F1} GB/s");
                probe = Math.Max(probe, again);
                probeNote = $"read bandwidth (probe before and after the tests: {probeThreads} threads summing {mib} MiB, best of {ProbePasses} passes each): {F(probe, "F1")} GB/s";
            }

            var info = new Info(model, fileBytes, parms, s.Backend.Name, s.Backend.Device, threadCol, probe, probeThreads, mib, probeNote ?? "", s.Backend is IBandwidthProbe ? "device" : "host",
                weightsPerToken, stateBytes, bytesPerToken, peak);
            Console.Write(pr.GetValue(output) == "json" ? Json(info, results) : Markdown(info, results));
            return 0;
        }));
        return cmd;
    }

    private const int ProbePasses = 8;

    private sealed record Result(string Test, double[] Rates, long BytesPerToken)
    {
        public double Mean => Rates.Average();
        public double Sd => Rates.Length < 2 ? 0 : Math.Sqrt(Rates.Sum(x => (x - Mean) * (x - Mean)) / (Rates.Length - 1));
        public double Best => Rates.Max();
    }

    private sealed record Info(string Model, long FileBytes, long Params, string Backend, string Device, int Threads, double ProbeGBs,
        int ProbeThreads, int ProbeMiB, string ProbeNote, string ProbeKind, long WeightsPerToken, long StateBytes, long BytesPerToken, long PeakRss);

    /// <summary>One warm-up, then <paramref name="reps"/> timed runs; returns seconds per run.</summary>
    private static double[] Measure(int reps, string name, Action run)
    {
        Console.Error.WriteLine($"bench: {name} warm-up...");
        var sw = Stopwatch.StartNew();
        run();
        Console.Error.WriteLine($"bench: {name} warm-up {sw.Elapsed.TotalSeconds:F2} s");
        var times = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            sw.Restart();
            run();
            times[i] = sw.Elapsed.TotalSeconds;
            Console.Error.WriteLine($"bench: {name} run {i + 1}/{reps}: {times[i]:F3} s");
        }
        return times;
    }

    private static string MainType(GgufFile f)
    {
        // the type holding most of the bytes of the matrices (the embedding table aside)
        var g = f.TensorNames.Where(n => n != TensorNames.TokenEmbd).Select(n => f.Tensor(n)).GroupBy(t => t.Type)
            .OrderByDescending(x => x.Sum(t => t.Bytes)).First();
        return GgmlTypes.Name(g.Key).ToUpperInvariant();
    }

    private static string SizeLabel(long p) => p >= 1_000_000_000 ? $"{p / 1e9:0.#}B" : p >= 1_000_000 ? $"{p / 1e6:0.#}M" : $"{p / 1e3:0.#}K";

    private static string F(double x, string fmt) => x.ToString(fmt, CultureInfo.InvariantCulture);

    private static string Markdown(Info i, List<Result> rs)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| model | size | params | backend | threads | test | t/s | bytes/token | GB/s | % of probe |");
        sb.AppendLine("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in rs)
        {
            string bpt = "", gbs = "", pct = "";
            if (r.BytesPerToken > 0)
            {
                double g = r.BytesPerToken * r.Mean / 1e9;
                bpt = $"{F(r.BytesPerToken / 1e9, "F3")} GB";
                gbs = F(g, "F1");
                pct = i.ProbeGBs > 0 ? F(100 * g / i.ProbeGBs, "F1") + " %" : "";
            }
            sb.AppendLine($"| {i.Model} | {F(i.FileBytes / 1073741824.0, "F2")} GiB | {F(i.Params / 1e9, "F2")} B | {i.Backend} | {i.Threads} | {r.Test} | " +
                          $"{F(r.Mean, "F2")} ± {F(r.Sd, "F2")} | {bpt} | {gbs} | {pct} |");
        }
        sb.AppendLine();
        sb.AppendLine($"device: {i.Device}");
        if (i.ProbeGBs > 0)
            sb.AppendLine($"{i.ProbeNote}; decode floor at that rate: {F(i.ProbeGBs * 1e9 / i.BytesPerToken, "F2")} t/s");
        foreach (var r in rs)
        {
            string extra = r.BytesPerToken > 0
                ? $" = {F(r.BytesPerToken * r.Best / 1e9, "F1")} GB/s" + (i.ProbeGBs > 0 ? $" = {F(100 * r.BytesPerToken * r.Best / 1e9 / i.ProbeGBs, "F1")} % of probe" : "")
                : "";
            sb.AppendLine($"best {r.Test} run: {F(r.Best, "F2")} t/s{extra}");
        }
        sb.AppendLine($"bytes per decode token: {F(i.BytesPerToken / 1e9, "F3")} GB = weights {F(i.WeightsPerToken / 1e9, "F3")} GB + 2 × state {F(i.StateBytes / 1e6, "F1")} MB");
        sb.AppendLine($"peak memory (VmHWM): {F(i.PeakRss / 1073741824.0, "F2")} GiB (mapped weight pages included)");
        return sb.ToString();
    }

    private static string Json(Info i, List<Result> rs)
    {
        var sb = new StringBuilder();
        sb.Append('{');
        sb.Append($"\"model\":{Q(i.Model)},\"size_bytes\":{i.FileBytes},\"params\":{i.Params},\"backend\":{Q(i.Backend)},\"device\":{Q(i.Device)},");
        sb.Append($"\"threads\":{i.Threads},\"probe_gb_s\":{F(i.ProbeGBs, "F3")},\"probe_threads\":{i.ProbeThreads},\"probe_mib\":{i.ProbeMiB},\"probe_kind\":{Q(i.ProbeKind)},\"probe\":{Q(i.ProbeNote)},");
        sb.Append($"\"weights_bytes_per_token\":{i.WeightsPerToken},\"state_bytes\":{i.StateBytes},\"bytes_per_token\":{i.BytesPerToken},\"peak_rss_bytes\":{i.PeakRss},");
        sb.Append("\"tests\":[");
        for (int k = 0; k < rs.Count; k++)
        {
            var r = rs[k];
            if (k > 0) sb.Append(',');
            sb.Append($"{{\"test\":{Q(r.Test)},\"t_s\":{F(r.Mean, "F4")},\"t_s_sd\":{F(r.Sd, "F4")},\"t_s_best\":{F(r.Best, "F4")},\"samples_t_s\":[{string.Join(",", r.Rates.Select(x => F(x, "F4")))}]");
            if (r.BytesPerToken > 0)
            {
                double g = r.BytesPerToken * r.Mean / 1e9;
                sb.Append($",\"gb_s\":{F(g, "F3")},\"pct_of_probe\":{(i.ProbeGBs > 0 ? F(100 * g / i.ProbeGBs, "F2") : "null")}");
            }
            sb.Append('}');
        }
        sb.AppendLine("]}");
        return sb.ToString();
    }

    private static string Q(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}

/// <summary>/proc/self/status and clear_refs (Linux); zeros elsewhere.</summary>
public static class ProcStatus
{
    public static long PeakRssBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return 0;
    }

    /// <summary>Reset the peak-RSS mark to the current RSS ("5" to /proc/self/clear_refs).</summary>
    public static void ResetPeak()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
