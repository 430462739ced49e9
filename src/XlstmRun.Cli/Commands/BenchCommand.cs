using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using XlstmRun.Backends.Cpu;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Cli.Measurement;
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
internal static class BenchCommand
{
    public static Command Create()
    {
        var mo = new ModelOptions();
        var pp = new Option<int>("--n-prompt", "-p") { Description = "Prompt tokens for the prompt-processing test (0 = skip)", DefaultValueFactory = _ => 512 };
        var tg = new Option<int>("--n-gen", "-n") { Description = "Generated tokens for the generation test (0 = skip)", DefaultValueFactory = _ => 128 };
        var reps = new Option<int>("--repetitions", "-r") { Description = "Repetitions of each test (after one warm-up)", DefaultValueFactory = _ => 5 };
        var output = new Option<string>("--output", "-o") { Description = "Output format: md (table), csv, json (one object) or jsonl (one object per test)", DefaultValueFactory = _ => "md", HelpName = "FORMAT" };
        output.AcceptOnlyFromAmong("md", "csv", "json", "jsonl");
        var probeMiB = new Option<int>("--probe-mib") { Description = "Size of the memory-bandwidth probe buffer in MiB (0 = no probe): host RAM read for the CPU engine, device-to-device copy for a GPU backend", DefaultValueFactory = _ => 1024 };
        var cmd = new Command("bench", "Measure prompt processing and generation speed (llama-bench style table on stdout).");
        mo.AddTo(cmd, state: false);
        cmd.Options.Add(pp);
        cmd.Options.Add(tg);
        cmd.Options.Add(reps);
        cmd.Options.Add(output);
        cmd.Options.Add(probeMiB);
        OpBench.AddOptions(cmd);
        cmd.SetAction(pr => Program.Run(() =>
        {
            int nPrompt = pr.GetValue(pp), nGen = pr.GetValue(tg), r = pr.GetValue(reps), mib = pr.GetValue(probeMiB);
            if (nPrompt < 0 || nGen < 0) throw new BadInputException("-p and -n must be at least 0");
            if (r < 1) throw new BadInputException("-r must be at least 1");
            if (OpBench.Requested(pr)) return OpBench.Run(pr, mo, r);
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
            string? deviceMemNote = null;
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
                (s.Backend as IDeviceMemory)?.ResetPeak();
                var times = Measure(r, $"tg{nGen}", () =>
                {
                    s.Runner.ResetState();
                    for (int i = 0; i < nGen; i++) s.Runner.StepGreedy(ids[i], V);
                });
                results.Add(new Result($"tg{nGen}", times.Select(t => nGen / t).ToArray(), bytesPerToken));
                if (s.Backend is IDeviceMemory dm)
                {
                    // decode memory against what it must hold: weights (as uploaded) and the recurrent state
                    long w = dm.WeightBytes, st = c.StateFloats * 4, peakDev = dm.PeakDeviceBytes;
                    deviceMemNote = $"device memory during tg{nGen}: peak {F(peakDev / 1048576.0, "F1")} MiB allocated = weights {F(w / 1048576.0, "F1")} MiB + state " +
                                    $"{F(st / 1048576.0, "F1")} MiB + {F((peakDev - w - st) / 1048576.0, "F1")} MiB other" +
                                    (dm.DriverReportedBytes() is long drv ? $"; driver-reported usage (VK_EXT_memory_budget) {F(drv / 1048576.0, "F1")} MiB" : "");
                    Console.Error.WriteLine("bench: " + deviceMemNote);
                }
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
            Console.Write(pr.GetValue(output) switch
            {
                "json" => Json(info, results),
                "jsonl" => JsonLines(info, results),
                "csv" => Csv(info, results),
                _ => Markdown(info, results),
            });
            if (deviceMemNote != null && pr.GetValue(output) is "md" or null) Console.WriteLine(deviceMemNote);
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

    private static double GBs(Result r) => r.BytesPerToken * r.Mean / 1e9;

    /// <summary>Achieved bandwidth as a share of the probe; null without a probe or for prompt processing.</summary>
    private static double? PctOfProbe(Info i, Result r, double rate) =>
        r.BytesPerToken > 0 && i.ProbeGBs > 0 ? 100 * r.BytesPerToken * rate / 1e9 / i.ProbeGBs : null;

    /// <summary>"82.8 %", or "112.3 % *" above 100 (the footnote says why: the weights fit in the caches).</summary>
    private static string Pct(double? p) => p is double v ? F(v, "F1") + (v > 100 ? " % *" : " %") : "";

    private static string Markdown(Info i, List<Result> rs)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| model | size | params | backend | threads | test | t/s | bytes/token | GB/s | % of probe |");
        sb.AppendLine("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        bool overFull = false;
        foreach (var r in rs)
        {
            string bpt = "", gbs = "", pct = "";
            if (r.BytesPerToken > 0)
            {
                bpt = Units.Bytes(r.BytesPerToken);
                gbs = F(GBs(r), "F1");
                var p = PctOfProbe(i, r, r.Mean);
                pct = Pct(p);
                overFull |= p > 100 || PctOfProbe(i, r, r.Best) > 100;
            }
            sb.AppendLine($"| {i.Model} | {Units.Bytes(i.FileBytes)} | {Units.Count(i.Params)} | {i.Backend} | {i.Threads} | {r.Test} | " +
                          $"{F(r.Mean, "F2")} ± {F(r.Sd, "F2")} | {bpt} | {gbs} | {pct} |");
        }
        sb.AppendLine();
        sb.AppendLine($"device: {i.Device}");
        if (i.ProbeGBs > 0)
            sb.AppendLine($"{i.ProbeNote}; decode floor at that rate: {F(i.ProbeGBs * 1e9 / i.BytesPerToken, "F2")} t/s");
        foreach (var r in rs)
        {
            string extra = r.BytesPerToken > 0
                ? $" = {F(r.BytesPerToken * r.Best / 1e9, "F1")} GB/s" + (i.ProbeGBs > 0 ? $" = {Pct(PctOfProbe(i, r, r.Best))} of probe" : "")
                : "";
            sb.AppendLine($"best {r.Test} run: {F(r.Best, "F2")} t/s{extra}");
        }
        sb.AppendLine($"bytes per decode token: {Units.Bytes(i.BytesPerToken)} = weights {Units.Bytes(i.WeightsPerToken)} + 2 × state {Units.Bytes(i.StateBytes)}");
        if (overFull)
            sb.AppendLine($"* above 100 %: the {Units.Bytes(i.BytesPerToken)} read per token fit in the {(i.ProbeKind == "device" ? "device" : "CPU")} caches, " +
                          "so decode reads cache, not memory, and the probe is no bound (use a larger model to measure memory bandwidth)");
        sb.AppendLine($"peak memory (VmHWM): {Units.Bytes(i.PeakRss)} (mapped weight pages included)");
        return sb.ToString();
    }

    private static void WriteInfo(Utf8JsonWriter w, Info i)
    {
        w.WriteString("model", i.Model);
        w.WriteNumber("size_bytes", i.FileBytes);
        w.WriteNumber("params", i.Params);
        w.WriteString("backend", i.Backend);
        w.WriteString("device", i.Device);
        w.WriteNumber("threads", i.Threads);
        w.WriteNumber("probe_gb_s", Math.Round(i.ProbeGBs, 3));
        w.WriteNumber("probe_threads", i.ProbeThreads);
        w.WriteNumber("probe_mib", i.ProbeMiB);
        w.WriteString("probe_kind", i.ProbeKind);
        w.WriteString("probe", i.ProbeNote);
        w.WriteNumber("weights_bytes_per_token", i.WeightsPerToken);
        w.WriteNumber("state_bytes", i.StateBytes);
        w.WriteNumber("bytes_per_token", i.BytesPerToken);
        w.WriteNumber("peak_rss_bytes", i.PeakRss);
    }

    private static void WriteTest(Utf8JsonWriter w, Info i, Result r)
    {
        w.WriteString("test", r.Test);
        w.WriteNumber("t_s", Math.Round(r.Mean, 4));
        w.WriteNumber("t_s_sd", Math.Round(r.Sd, 4));
        w.WriteNumber("t_s_best", Math.Round(r.Best, 4));
        w.WriteStartArray("samples_t_s");
        foreach (var x in r.Rates) w.WriteNumberValue(Math.Round(x, 4));
        w.WriteEndArray();
        if (r.BytesPerToken > 0)
        {
            w.WriteNumber("gb_s", Math.Round(GBs(r), 3));
            if (PctOfProbe(i, r, r.Mean) is double p)
            {
                w.WriteNumber("pct_of_probe", Math.Round(p, 2));
                w.WriteBoolean("in_cache", p > 100);
            }
            else w.WriteNull("pct_of_probe");
        }
    }

    private static string JsonText(Action<Utf8JsonWriter> write)
    {
        var buf = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buf, JsonStrings.WriterOptions))
            write(w);
        return Encoding.UTF8.GetString(buf.WrittenSpan);
    }

    private static string Json(Info i, List<Result> rs) => JsonText(w =>
    {
        w.WriteStartObject();
        WriteInfo(w, i);
        w.WriteStartArray("tests");
        foreach (var r in rs)
        {
            w.WriteStartObject();
            WriteTest(w, i, r);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }) + "\n";

    /// <summary>One object per test, each with the model and machine fields (llama-bench's jsonl).</summary>
    private static string JsonLines(Info i, List<Result> rs)
    {
        var sb = new StringBuilder();
        foreach (var r in rs)
            sb.Append(JsonText(w =>
            {
                w.WriteStartObject();
                WriteInfo(w, i);
                WriteTest(w, i, r);
                w.WriteEndObject();
            })).Append('\n');
        return sb.ToString();
    }

    /// <summary>A header and one row per test (RFC 4180 quoting).</summary>
    private static string Csv(Info i, List<Result> rs)
    {
        static string Q(string v) => v.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + v.Replace("\"", "\"\"") + "\"" : v;
        var sb = new StringBuilder();
        sb.Append("model,size_bytes,params,backend,device,threads,test,t_s,t_s_sd,t_s_best,bytes_per_token,gb_s,pct_of_probe,probe_gb_s,probe_kind,peak_rss_bytes\n");
        foreach (var r in rs)
        {
            string[] row =
            [
                i.Model, i.FileBytes.ToString(CultureInfo.InvariantCulture), i.Params.ToString(CultureInfo.InvariantCulture), i.Backend, i.Device,
                i.Threads.ToString(CultureInfo.InvariantCulture), r.Test, F(r.Mean, "F4"), F(r.Sd, "F4"), F(r.Best, "F4"),
                r.BytesPerToken > 0 ? r.BytesPerToken.ToString(CultureInfo.InvariantCulture) : "",
                r.BytesPerToken > 0 ? F(GBs(r), "F3") : "",
                PctOfProbe(i, r, r.Mean) is double p ? F(p, "F2") : "",
                F(i.ProbeGBs, "F3"), i.ProbeKind, i.PeakRss.ToString(CultureInfo.InvariantCulture),
            ];
            sb.Append(string.Join(",", row.Select(Q))).Append('\n');
        }
        return sb.ToString();
    }
}
