using System.Diagnostics;
using System.Globalization;
using XlstmRun.Text.Sampling;
using XlstmRun.Text.Tokenization;

namespace XlstmRun.Cli.Batch;

/// <summary>What a batch run did.</summary>
internal sealed class BatchSummary
{
    public int Generated { get; set; }
    public int Errors { get; set; }
    /// <summary>Lines started but not finished because the run was interrupted; they run again on --resume.</summary>
    public int Interrupted { get; set; }
    /// <summary>Lines not even started when the run was interrupted.</summary>
    public int NotStarted { get; set; }
    public long Tokens { get; set; }
}

/// <summary>
/// The scheduler: keeps up to <see cref="ISequenceEngine.Slots"/> lines in flight, fills a free slot with the next
/// pending line, writes each record as soon as its line is done (errors at once, results when their sequence ends).
/// </summary>
internal sealed class BatchDriver
{
    public required BatchInput Input { get; init; }
    public required BatchOutput Output { get; init; }
    public required BatchDefaults Defaults { get; init; }
    public required ISequenceEngine Engine { get; init; }
    public required XlstmTokenizer Tokenizer { get; init; }
    public bool Verbose { get; init; }

    public BatchSummary Run(IReadOnlyList<InputLine> todo, CancellationToken cancel)
    {
        var sum = new BatchSummary();
        var clock = Stopwatch.StartNew();
        var free = new Stack<int>(Enumerable.Range(0, Engine.Slots).Reverse());
        var done = new List<SequenceDone>();
        int next = 0, inFlight = 0, reported = 0;

        void Report(InputLine l, string what)
        {
            reported++;
            string eta = "";
            if (reported < todo.Count && clock.Elapsed.TotalSeconds > 2)
                eta = "; about " + Duration(clock.Elapsed.TotalSeconds / reported * (todo.Count - reported)) + " left";
            Console.Error.WriteLine($"[{reported}/{todo.Count}] line {l.Line}, id {l.Id.Display}: {what}{eta}");
        }
        void Fail(InputLine l, string error)
        {
            Output.Append(BatchRecords.Error(l, error));
            sum.Errors++;
            Report(l, "error: " + Shown.Clean(error));
        }

        while (true)
        {
            while (free.Count > 0 && next < todo.Count && !cancel.IsCancellationRequested)
            {
                var l = todo[next++];
                if (l.IsError)
                {
                    Fail(l, Input.ErrorOf(l, Defaults) ?? "the line cannot be read");
                    continue;
                }
                var p = Input.Load(l, Defaults);
                if (p.Request is not BatchRequest req)
                {
                    Fail(l, p.Error ?? "cannot read the line");
                    continue;
                }
                int[] body = Tokenizer.Encode(req.Prompt);
                int[] prompt = Defaults.NoBos ? body : [Tokenizer.BosId, .. body];
                if (prompt.Length == 0 && req.MaxTokens != 0)
                {
                    Fail(l, "the prompt gives no tokens and --no-bos is set: there is nothing to continue from");
                    continue;
                }
                Engine.Start(free.Pop(), new SequenceJob
                {
                    Line = l, Prompt = prompt, Sampling = req.Sampling, MaxTokens = req.MaxTokens, Stop = req.Stop,
                    EosId = Defaults.IgnoreEos ? null : Tokenizer.EosId,
                });
                inFlight++;
            }
            if (inFlight == 0) break;
            if (cancel.IsCancellationRequested)
            {
                sum.Interrupted += inFlight;
                break;
            }
            done.Clear();
            Engine.Step(done, cancel);
            foreach (var d in done)
            {
                free.Push(d.Slot);
                inFlight--;
                if (d.Result.FinishReason == FinishReason.Cancelled)
                {
                    sum.Interrupted++;
                    continue;
                }
                Output.Append(BatchRecords.Result(d.Job.Line, d.Result, d.Job.Sampling.Seed));
                sum.Generated++;
                sum.Tokens += d.Result.Ids.Count;
                var r = d.Result;
                Report(d.Job.Line, string.Format(CultureInfo.InvariantCulture, "{0} + {1} tokens, {2}, {3:F2} s ({4:F1} tokens/s)",
                    r.PromptTokens, r.Ids.Count, r.FinishReasonText, d.Seconds, d.Seconds > 0 ? r.Ids.Count / d.Seconds : 0));
                if (Verbose) Console.Error.WriteLine($"    sampling: {d.Job.Sampling.Describe()}");
            }
        }
        sum.NotStarted = todo.Count - next;
        Output.Sync();
        return sum;
    }

    public static string Duration(double s) => s switch
    {
        < 90 => $"{s:F0} s",
        < 5400 => $"{s / 60:F0} min",
        _ => $"{s / 3600:F1} h",
    };
}
