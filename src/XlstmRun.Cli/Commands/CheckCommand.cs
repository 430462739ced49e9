using System.CommandLine;
using System.Diagnostics;
using XlstmRun.Conformance;
using XlstmRun.Formats;

namespace XlstmRun.Cli.Commands;

/// <summary>
/// `check`: the conformance checks of the test suite, from the binary alone (the GPU machines have no .NET): every fixture
/// (Hugging Face checkpoints + float64 references, converted to GGUF in a temporary directory) on every backend and
/// device found, at every weight type, in one table.
/// </summary>
internal static class CheckCommand
{
    private const string Notes =
        "F32 weights are compared with the fixtures' float64 references (transformers' own xLSTM run in float64): every\n" +
        "backend must stay within 3e-5 relative error (‖ours − ref‖₂/‖ref‖₂ over the whole tensor) and give the same greedy ids.\n" +
        "F16, BF16, Q8_0 and Q4_0 weights are compared with the CPU engine (float activations) on the same file, with the\n" +
        "bounds of the backend's activation precision (float32, 16-bit inside matrix products, or the CPU's 8-bit path);\n" +
        "on the CPU itself they are compared with the float64 reference (the rounding error of each weight type).\n" +
        "Quantities: prompt logits (+ mean KL), step logits (the prompt fed one token per call), state C/n/m after the prompt,\n" +
        "greedy ids (argmax op and logits), greedy logits, continuation logits, and the state saved on the device and\n" +
        "loaded on the CPU (and back) through a state file. The error column is a relative error, a mean KL (KL rows),\n" +
        "a count of differing ids (greedy ids: 'near tie' where a 16- or 8-bit backend parts at a near tie), or the largest\n" +
        "|C| or |n| seen (long runs, --long-tokens).\n" +
        "The precision policy behind these bounds (what each backend runs at each weight type): docs/precision.md.\n" +
        "Exit code: 0 when every check passes, 1 when one fails, 2 for bad usage.";

    public static Command Create()
    {
        var fixtures = new Option<string?>("--fixtures") { Description = "Fixtures directory (default: tests/data/fixtures of the repository, looked for above the binary and the current directory)", HelpName = "DIR" };
        var only = new Option<string?>("--fixture") { Description = "Only these fixtures (comma separated names, e.g. tiny-f32,tiny-long)", HelpName = "NAMES" };
        var backends = new Option<string?>("--backends") { Description = "Only these backends (comma separated: " + string.Join(", ", BackendCatalog.Kinds.Select(k => k.Name)) + "; default: every backend with a device)", HelpName = "LIST" };
        var devices = new Option<string?>("--devices") { Description = "Only these devices (comma separated ids as listed at the start, e.g. vulkan:0,cpu)", HelpName = "LIST" };
        var types = new Option<string>("--types") { Description = "Weight types (comma separated)", DefaultValueFactory = _ => string.Join(",", GgmlTypes.All.Select(t => t.Name)), HelpName = "LIST" };
        var variants = new Option<bool>("--variants") { Description = "Also check the kernel variants the tests use (Vulkan without subgroup operations; OpenCL work-group kernels on CPU devices)" };
        var threads = new Option<int>("--threads", "-t") { Description = "CPU threads (0 = all cores)", DefaultValueFactory = _ => 0, HelpName = "N" };
        var json = new Option<string?>("--json") { Description = "Also write the results as JSON to FILE ('-': JSON on stdout, the table on stderr)", HelpName = "FILE" };
        var force = new Option<bool>("--force") { Description = "Overwrite an existing --json file" };
        var stepTokens = new Option<int>("--step-tokens") { Description = "Feed at most N prompt tokens one per call for the step logits (0 = the whole prompt; for slow devices)", DefaultValueFactory = _ => 0, HelpName = "N" };
        var longTokens = new Option<long>("--long-tokens") { Description = "Also generate N tokens on the first fixture at every device and type, checking that the state stays finite and the logits bounded (0 = skip)", DefaultValueFactory = _ => 0, HelpName = "N" };
        var failures = new Option<bool>("--failures") { Description = "Print only the failed checks (the summary line always)" };
        var summary = new Option<bool>("--summary") { Description = "Print one row per fixture and device instead of every check: per weight type the error closest to its bound (the failed checks still in full)" };
        var cmd = new Command("check", "Run the conformance checks (reference fixtures, every backend, device and weight type) and print one table.")
        {
            fixtures, only, backends, devices, types, variants, threads, stepTokens, longTokens, json, force, failures, summary,
        };
        HelpNotes.Add(cmd, Notes);
        cmd.SetAction(pr => Program.Run(() =>
        {
            var sw = Stopwatch.StartNew();
            int nThreads = pr.GetValue(threads);
            if (nThreads < 0) throw new BadInputException("-t must be at least 0");
            int nSteps = pr.GetValue(stepTokens);
            if (nSteps < 0) throw new BadInputException("--step-tokens must be at least 0");
            long nLong = pr.GetValue(longTokens);
            if (nLong < 0) throw new BadInputException("--long-tokens must be at least 0");
            string? jsonPath = pr.GetValue(json);
            if (jsonPath != null && jsonPath != "-") OutputPath.Check(jsonPath, pr.GetValue(force));

            var typeList = (List(pr.GetValue(types)) ?? []).Select(GgmlTypes.Parse).Distinct().ToList();
            if (typeList.Count == 0) throw new BadInputException("--types: no weight type given");
            var be = List(pr.GetValue(backends));
            if (be != null) foreach (var b in be) BackendCatalog.Kind(b);
            string root = pr.GetValue(fixtures) ?? Fixture.FindDefaultRoot()
                ?? throw new BadInputException("no fixtures directory found (tests/data/fixtures above the binary or the current directory): give --fixtures DIR");
            var all = Fixture.All(root);
            var names = List(pr.GetValue(only));
            if (names != null)
            {
                var unknown = names.Where(n => all.All(f => f.Name != n)).ToList();
                if (unknown.Count > 0) throw new BadInputException($"--fixture: no fixture named {string.Join(", ", unknown)} in {root} (there are {string.Join(", ", all.Select(f => f.Name))})");
                all = all.Where(f => names.Contains(f.Name)).ToList();
            }
            // CPU work (baselines, CPU devices) runs several at a time on a machine with cores to spare
            int cores = Environment.ProcessorCount;
            int perBackend = nThreads > 0 ? nThreads : cores <= 4 ? cores : 2;
            int parallel = Math.Max(1, cores / perBackend);
            var (devs, missing) = BackendCatalog.Enumerate(new DeviceOptions(perBackend, pr.GetValue(variants)), be);
            try
            {
                if (be != null && missing.Count > 0) throw new BadInputException("no device for " + string.Join("; ", missing));
                var ids = List(pr.GetValue(devices));
                if (ids != null)
                {
                    var unknown = ids.Where(i => devs.All(d => d.Id != i)).ToList();
                    if (unknown.Count > 0) throw new BadInputException($"--devices: no device {string.Join(", ", unknown)} (found: {string.Join(", ", devs.Select(d => d.Id))})");
                    devs = devs.Where(d => ids.Contains(d.Id)).ToList();
                }
                var outW = jsonPath == "-" ? Console.Error : Console.Out;
                Console.Error.WriteLine($"check: fixtures {root}: {string.Join(", ", all.Select(f => f.Name))}; types {string.Join(", ", typeList.Select(GgmlTypes.Name))}");
                foreach (var d in devs) Console.Error.WriteLine($"check: device {d.Id}: {d.Description}");
                foreach (var m in missing) Console.Error.WriteLine($"check: no device for {m}");

                var progressLock = new object();
                List<CheckRow> rows;
                using (var session = new ConformanceSession(perBackend) { StepLimit = nSteps > 0 ? (_, _, _) => nSteps : null })
                    rows = session.RunAll(all, typeList, devs, parallel, line => { lock (progressLock) Console.Error.WriteLine("check: " + line); }, nLong);
                // device lines as the backends describe themselves once created
                outW.WriteLine($"xlstm-run check, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {sw.Elapsed.TotalSeconds:F1} s");
                foreach (var d in devs) outW.WriteLine($"- {d.Id}: {d.Description}");
                foreach (var m in missing) outW.WriteLine($"- no device for {m}");
                outW.WriteLine();
                if (pr.GetValue(summary))
                {
                    outW.Write(CheckReport.SummaryTable(rows));
                    if (rows.Any(r => !r.Pass))
                    {
                        outW.WriteLine();
                        outW.Write(CheckReport.Table(rows, failuresOnly: true));
                    }
                }
                else outW.Write(CheckReport.Table(rows, pr.GetValue(failures)));
                outW.WriteLine();
                outW.WriteLine(CheckReport.Summary(rows));
                if (jsonPath != null)
                {
                    var devInfo = devs.Select(d => (d.Id, d.Description)).ToList();
                    if (jsonPath == "-")
                    {
                        using var so = Console.OpenStandardOutput();
                        CheckReport.WriteJson(so, rows, devInfo, missing, sw.Elapsed.TotalSeconds);
                        so.WriteByte((byte)'\n');
                    }
                    else
                    {
                        string tmp = jsonPath + $".tmp.{Environment.ProcessId}";
                        using (var fs = File.Create(tmp)) CheckReport.WriteJson(fs, rows, devInfo, missing, sw.Elapsed.TotalSeconds);
                        File.Move(tmp, jsonPath, overwrite: true);
                    }
                }
                return rows.All(r => r.Pass) ? ExitCodes.Ok : ExitCodes.Failure;
            }
            finally
            {
                foreach (var d in devs) d.Dispose();
            }
        }));
        return cmd;
    }

    private static List<string>? List(string? s) =>
        s == null ? null : s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
}
