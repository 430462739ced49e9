using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using XlstmRun.Cli.Batch;
using XlstmRun.Formats;

namespace XlstmRun.Cli.Commands;

/// <summary>
/// `batch`: one prompt per JSONL line → one record per line, appended as each completes; crash-safe (one write per
/// record, fsync at a cadence, --resume repairs and continues), lockable, sharded (--shard K/N or auto).
/// </summary>
internal static class BatchCommand
{
    public static Command Create()
    {
        var mo = new ModelOptions();
        var so = new SamplingOptions();
        var input = new Option<string>("--input", "-i")
        {
            Description = "JSONL prompts, one JSON object per line (\"-\" = standard input); keys: " + BatchLineParser.KeyList,
            Required = true, HelpName = "FILE",
        };
        var output = new Option<string>("--output", "-o")
        {
            Description = "JSONL results, one record per prompt line as it completes: {\"id\", \"line\", \"text\", \"tokens\", \"prompt_tokens\", \"finish_reason\", \"seed\"}, or {\"id\", \"line\", \"error\"} for a malformed line",
            Required = true, HelpName = "FILE",
        };
        var resume = new Option<bool>("--resume") { Description = "Continue an existing output: lines with a result or an error record are done; an incomplete last record (an interrupted run) is cut off and its line runs again. Without an output yet, starts one: the same command line serves the first run and every retry" };
        var retry = new Option<bool>("--retry-errors") { Description = "With --resume: remove the error records and run those lines again" };
        var force = new Option<bool>("--force") { Description = "Overwrite an existing output file" };
        var parallel = new Option<int?>("--parallel", "-np")
        {
            Description = "Sequences generated together [default: 16 on a GPU, 4 on the CPU, 1 with OpenCL]: up to B lines in flight, one forward pass per token for all of them (the weights are read once per step), a finished line's slot taking the next line at once. Greedy results are those of B = 1: bit for bit on Vulkan, up to float rounding on the CPU (its products over B rows sum in another order)",
            HelpName = "B",
        };
        var shard = new Option<string?>("--shard") { Description = "Run only the lines whose index (line number - 1) is K mod N, so that N processes cover the file once; \"auto\" reads Slurm or Kubernetes variables (see notes)", HelpName = "K/N|auto" };
        var shardCount = new Option<int?>("--shard-count") { Description = "With --shard auto in a Kubernetes Indexed Job: the number of shards (the Job's completions); default $XLSTM_SHARD_COUNT", HelpName = "N" };
        var sync = new Option<double>("--sync-interval") { Description = "Seconds between fsyncs of the output (0 = after every record); records are written whole either way", DefaultValueFactory = _ => 1.0, HelpName = "SECONDS" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "More detail on stderr" };
        var cmd = new Command("batch", "Generate for every prompt of a JSONL file, one result line each, written as it completes.");
        HelpNotes.Add(cmd,
            "Example line: {\"id\": \"q1\", \"prompt\": \"The capital of France is\", \"n_predict\": 16, \"temperature\": 0, \"stop\": [\"\\n\"]}\n" +
            "OpenAI-style keys work too: \"max_tokens\" (= n_predict), \"temperature\", \"top_p\", \"seed\", \"stop\" (text or list).\n" +
            "A key that is not listed, a repeated key, a value of the wrong type or text that is not valid Unicode makes the line\n" +
            "an error record; the run goes on. Ids must be unique (a line without \"id\" has its line number as id; a repeated id\n" +
            "is an error record). Records carry the input line number (\"line\"), which is what --resume and batch-merge go by.\n" +
            "Each prompt starts from a fresh state (BOS first unless --no-bos). The sampling options are the defaults for lines\n" +
            "that do not set their own; a line without \"seed\" uses --seed plus its line number (give --seed for results that\n" +
            "are the same on every run, shard and resume).\n" +
            "Crash safety: each record is written with one write and the file is fsync'd every --sync-interval seconds and at\n" +
            "the end. After a crash or kill, rerun with --resume: every line ends up with exactly one record. The output is\n" +
            "locked while a batch writes it: a second batch on the same file stops with an error.\n" +
            "Ctrl-C or SIGTERM stops after the current token; the unfinished line is not written and runs again on --resume.\n" +
            "Scale-out: run N processes with --shard 0/N .. N-1/N (or --shard auto in a Slurm array or Kubernetes Indexed Job),\n" +
            "each with its own --output, then join them with 'xlstm-run batch-merge' (see docs/scale-out.md).\n" + ShardSpec.AutoHelp + "\n" +
            "Exit codes: 0 when every line of the run has its record (malformed lines included); 2 when the input or the output\n" +
            "is unusable (nothing is written then); 1 on a runtime failure; 130 (Ctrl-C) or 143 (SIGTERM) when interrupted.");
        cmd.Options.Add(input);
        cmd.Options.Add(output);
        cmd.Options.Add(resume);
        cmd.Options.Add(retry);
        cmd.Options.Add(force);
        cmd.Options.Add(parallel);
        cmd.Options.Add(shard);
        cmd.Options.Add(shardCount);
        cmd.Options.Add(sync);
        mo.AddTo(cmd, state: false);
        so.AddTo(cmd);
        cmd.Options.Add(verbose);
        cmd.SetAction(pr => Program.Run(() =>
        {
            var total = Stopwatch.StartNew();
            string inPath = pr.GetValue(input)!, outPath = pr.GetValue(output)!;
            bool isResume = pr.GetValue(resume), retryErrors = pr.GetValue(retry), isForce = pr.GetValue(force), isVerbose = pr.GetValue(verbose);

            // Everything that can be wrong with the options and the input is found before the output file is touched.
            if (retryErrors && !isResume) throw new BadInputException("--retry-errors goes with --resume");
            if (isResume && isForce) throw new BadInputException("give --resume (continue the output) or --force (overwrite it), not both");
            int? slotsGiven = pr.GetValue(parallel);
            if (slotsGiven is < 1 or > 4096) throw new BadInputException($"--parallel must be between 1 and 4096 (got {slotsGiven})");
            double syncSeconds = pr.GetValue(sync);
            if (!double.IsFinite(syncSeconds) || syncSeconds < 0) throw new BadInputException($"--sync-interval must be 0 or more seconds (got {syncSeconds})");
            var sh = ShardSpec.Parse(pr.GetValue(shard), pr.GetValue(shardCount), Environment.GetEnvironmentVariable);
            int defaultN = so.Tokens(pr, idsMode: false);
            bool noBos = pr.GetValue(so.NoBos), ignoreEos = pr.GetValue(so.IgnoreEos);
            if (defaultN == -1 && ignoreEos) throw new BadInputException("-n -1 with --ignore-eos would never end: give a token count");
            long seed = so.ResolveSeed(pr);
            var defaults = new BatchDefaults
            {
                Sampling = so.Build(pr, 0.8f, seed), MaxTokens = defaultN, Stop = so.StopStrings(pr), NoBos = noBos, IgnoreEos = ignoreEos,
            };
            string modelPath = ModelSession.ResolveModelPath(pr.GetValue(mo.Model));

            using var inp = BatchInput.Open(inPath, defaults);
            var others = new List<(string, string)> { ("model file", modelPath) };
            if (inPath != "-") others.Add(("input file", inPath));
            var outp = BatchOutput.Open(outPath, isResume, isForce, syncSeconds, others);
            bool finished = false;
            try
            {
                int rc = Execute();
                finished = true;
                return rc;
            }
            finally
            {
                if (finished) outp.Dispose();
                else outp.Abandon();
            }

            int Execute()
            {
                var ri = isResume && outp.Existed ? outp.Resume(inp, retryErrors) : null;
                var mine = inp.Lines.Where(l => sh.Contains(l.Line)).ToList();
                var todo = mine.Where(l => ri == null || !ri.Done[l.Line]).ToList();
                // The header waits until the model has loaded: a model that fails to load gives one error line only.
                void Header()
                {
                    Console.Error.WriteLine($"batch: {inp.Lines.Count} prompt lines in {inPath} ({inp.Lines.Count(l => l.IsError)} malformed)" +
                        (sh.Count > 1 ? $"; shard {sh}: {mine.Count} lines" : "") +
                        (ri != null ? $"; {mine.Count - todo.Count} already done" : "") + $"; {todo.Count} to run -> {outPath}");
                    if (ri != null) ReportResume(ri, outPath);
                }

                if (todo.Count == 0)
                {
                    if (isForce && outp.Existed) outp.Clear();
                    outp.Repair();
                    Header();
                    Console.Error.WriteLine("batch: nothing to do");
                    return ExitCodes.Ok;
                }
                ModelSession? s = null;
                try
                {
                    // A run whose lines are all malformed writes their error records without loading the model.
                    if (todo.Any(l => !l.IsError)) s = ModelSession.Open(pr, mo, needTokenizer: true);
                    if (isForce && outp.Existed) outp.Clear();
                    outp.Repair();
                    Header();
                    int slots = slotsGiven ?? (s != null ? SequenceEngines.DefaultSlots(s.Backend) : 1);
                    var engine = s != null ? SequenceEngines.Create(s, slots) : new NoEngine(slots);
                    using var engineLife = engine as IDisposable;
                    Console.Error.WriteLine($"batch: seed {seed} (a line without \"seed\" uses {seed} + its line number); parallel {slots}" +
                        (slots > 1 ? $" ({SequenceEngines.Note(engine)})" : ""));
                    return RunWithSignals(cancel =>
                    {
                        var sum = new BatchDriver
                        {
                            Input = inp, Output = outp, Defaults = defaults, Engine = engine, Tokenizer = s?.Tokenizer!, Verbose = isVerbose,
                        }.Run(todo, cancel);
                        double sec = total.Elapsed.TotalSeconds;
                        Console.Error.WriteLine(string.Format(CultureInfo.InvariantCulture,
                            "batch: {0}: {1} generated, {2} error records; {3} tokens in {4:F2} s ({5:F1} tokens/s)",
                            sum.Interrupted + sum.NotStarted > 0 ? "stopped" : "done", sum.Generated, sum.Errors, sum.Tokens, sec, sec > 0 ? sum.Tokens / sec : 0));
                        if (sum.Interrupted + sum.NotStarted > 0)
                            Console.Error.WriteLine($"batch: {sum.Interrupted + sum.NotStarted} lines not done; rerun with --resume to finish them");
                        if (engine.Times.Prompts > 0) Console.Error.WriteLine($"batch: {engine.Times}");
                        if (s?.Backend is XlstmRun.Model.IDeviceMemory dm)
                            Console.Error.WriteLine(string.Format(CultureInfo.InvariantCulture, "batch: device memory peak {0:F1} MiB (weights {1:F1} MiB)",
                                dm.PeakDeviceBytes / 1048576.0, dm.WeightBytes / 1048576.0));
                    });
                }
                finally
                {
                    s?.Dispose();
                }
            }
        }));
        return cmd;
    }

    private static void ReportResume(ResumeInfo ri, string outPath)
    {
        if (ri.RepairedBytes > 0)
            Console.Error.WriteLine($"batch: {outPath}: cut off an incomplete last record ({ri.RepairedBytes} bytes) left by an interrupted run; its line runs again");
        if (ri.Retried > 0) Console.Error.WriteLine($"batch: removed {ri.Retried} error records to run those lines again (--retry-errors)");
        else if (ri.Errors > 0) Console.Error.WriteLine($"batch: {Plural(ri.Errors, "line has an error record and counts", "lines have error records and count")} as done; --retry-errors runs {(ri.Errors == 1 ? "it" : "them")} again");
        if (ri.Duplicates > 0)
            Console.Error.WriteLine($"warning: {outPath}: {ri.Duplicates} extra records for lines that already had one" +
                (ri.Retried > 0 ? " (removed)" : " (kept; --retry-errors removes them)"));
    }

    private static string Plural(int n, string one, string many) => $"{n} {(n == 1 ? one : many)}";

    /// <summary>Runs <paramref name="body"/> with Ctrl-C and SIGTERM turned into a cancellation: the first one stops
    /// after the current token (exit 130 or 143); a second Ctrl-C kills as usual.</summary>
    private static int RunWithSignals(Action<CancellationToken> body)
    {
        using var cts = new CancellationTokenSource();
        int signalExit = 0;
        ConsoleCancelEventHandler onCtrlC = (_, e) =>
        {
            if (cts.IsCancellationRequested) return;
            e.Cancel = true;
            signalExit = ExitCodes.Interrupted;
            Console.Error.WriteLine("batch: interrupted: finishing the records written so far (Ctrl-C again to kill)");
            cts.Cancel();
        };
        Console.CancelKeyPress += onCtrlC;
        using var term = OperatingSystem.IsWindows() ? null : PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
        {
            ctx.Cancel = true;
            if (cts.IsCancellationRequested) return;
            signalExit = 143;
            Console.Error.WriteLine("batch: terminated (SIGTERM): stopping after the current token");
            cts.Cancel();
        });
        try
        {
            body(cts.Token);
        }
        finally
        {
            Console.CancelKeyPress -= onCtrlC;
        }
        return signalExit != 0 ? signalExit : ExitCodes.Ok;
    }

    /// <summary>The engine of a run whose lines are all malformed: never started.</summary>
    private sealed class NoEngine(int slots) : ISequenceEngine
    {
        public int Slots => slots;
        public EngineTimes Times { get; } = new();
        public void Start(int slot, SequenceJob job) => throw new InvalidOperationException("no model was loaded");
        public void Step(List<SequenceDone> done, CancellationToken cancel) => throw new InvalidOperationException("no model was loaded");
    }
}
