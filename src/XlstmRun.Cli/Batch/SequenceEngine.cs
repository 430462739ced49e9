using System.Diagnostics;
using XlstmRun.Model;
using XlstmRun.Text.Sampling;
using XlstmRun.Text.Tokenization;

namespace XlstmRun.Cli.Batch;

/// <summary>One prompt line ready to run: its tokens and every setting resolved.</summary>
public sealed class SequenceJob
{
    public required InputLine Line { get; init; }
    /// <summary>Token ids to feed first (BOS included unless --no-bos).</summary>
    public required int[] Prompt { get; init; }
    public required SamplingParams Sampling { get; init; }
    /// <summary>Most tokens to generate; -1 = until EOS or a stop string.</summary>
    public required int MaxTokens { get; init; }
    /// <summary>End-of-text id that ends the sequence; null with --ignore-eos.</summary>
    public int? EosId { get; init; }
    public required string[] Stop { get; init; }
}

/// <summary>A sequence that ended, and the slot it frees.</summary>
public readonly record struct SequenceDone(int Slot, SequenceJob Job, GenerationResult Result, double Seconds);

/// <summary>
/// The seam between the batch driver and a generation engine (continuous batching, issue 12). The engine holds up to
/// <see cref="Slots"/> sequences, each with its own recurrent state. The driver fills a free slot with
/// <see cref="Start"/>, then calls <see cref="Step"/>; every sequence that ends (EOS, a stop string, its token limit, or
/// cancellation) is reported once, and its slot is free for the next line.
/// </summary>
/// <remarks>
/// A batched engine implements <see cref="Start"/> as "reset this slot's state and queue the prompt's prefill" and
/// <see cref="Step"/> as one decode step of every active slot (B columns per matrix product, B samplers), running
/// queued prefills too. Results must not depend on which slot or which neighbours a sequence had: each job carries its
/// own seed, so a line gives the same text at any --parallel.
/// </remarks>
public interface ISequenceEngine
{
    /// <summary>How many sequences can be in flight at once.</summary>
    int Slots { get; }

    /// <summary>Starts <paramref name="job"/> in the free slot <paramref name="slot"/> (0 ≤ slot &lt; <see cref="Slots"/>).</summary>
    void Start(int slot, SequenceJob job);

    /// <summary>Advances the started sequences, adding each that ended to <paramref name="done"/>. Called only while at
    /// least one slot is started; returns after at least one step of work. When <paramref name="cancel"/> is set, ends
    /// every started sequence with <see cref="FinishReason.Cancelled"/> soon.</summary>
    void Step(List<SequenceDone> done, CancellationToken cancel);
}

/// <summary>
/// Today's engine: one model state, so the started sequences run one after the other, each to its end, in the order
/// they were started (the slots only bound how many lines are taken up at once).
/// </summary>
public sealed class SequentialEngine(ModelRunner runner, XlstmTokenizer tokenizer, int validVocab, int slots) : ISequenceEngine
{
    private readonly Queue<(int Slot, SequenceJob Job)> _started = new();
    private readonly RunnerGenerationModel _model = new(runner);

    public int Slots { get; } = slots;

    public void Start(int slot, SequenceJob job) => _started.Enqueue((slot, job));

    public void Step(List<SequenceDone> done, CancellationToken cancel)
    {
        var (slot, job) = _started.Dequeue();
        var t0 = Stopwatch.GetTimestamp();
        runner.ResetState();
        var r = Generator.Run(_model, new GenerationRequest
        {
            Prompt = job.Prompt,
            Sampling = job.Sampling,
            ValidVocab = validVocab,
            MaxTokens = job.MaxTokens,
            EosId = job.EosId,
            StopStrings = job.Stop,
            Tokenizer = tokenizer,
            Cancel = cancel,
        });
        done.Add(new SequenceDone(slot, job, r, Stopwatch.GetElapsedTime(t0).TotalSeconds));
    }
}

/// <summary>Chooses the engine for a batch run: the one place to change when the multi-sequence engine lands.</summary>
public static class SequenceEngines
{
    /// <summary>--parallel when not given. 1 while every backend runs one sequence at a time.</summary>
    public static int DefaultSlots(IBackend backend) => 1;

    /// <summary>What the engine does with B slots, for the run's header line.</summary>
    public const string Note = "the current engine runs one sequence at a time; --parallel only bounds the lines in flight";

    public static ISequenceEngine Create(ModelSession s, int slots) =>
        new SequentialEngine(s.Runner, s.Tokenizer!, s.ValidVocab, slots);
}
