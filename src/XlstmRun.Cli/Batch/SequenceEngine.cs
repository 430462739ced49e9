using System.Diagnostics;
using XlstmRun.Model;
using XlstmRun.Text.Sampling;
using XlstmRun.Text.Tokenization;

namespace XlstmRun.Cli.Batch;

/// <summary>One prompt line ready to run: its tokens and every setting resolved.</summary>
internal sealed class SequenceJob
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
internal readonly record struct SequenceDone(int Slot, SequenceJob Job, GenerationResult Result, double Seconds);

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
internal interface ISequenceEngine
{
    /// <summary>How many sequences can be in flight at once.</summary>
    int Slots { get; }

    /// <summary>Where the time went so far: prompts prefilled and their wall time, generation (decode) steps and theirs.</summary>
    EngineTimes Times { get; }

    /// <summary>Starts <paramref name="job"/> in the free slot <paramref name="slot"/> (0 ≤ slot &lt; <see cref="Slots"/>).</summary>
    void Start(int slot, SequenceJob job);

    /// <summary>Advances the started sequences, adding each that ended to <paramref name="done"/>. Called only while at
    /// least one slot is started; returns after at least one step of work. When <paramref name="cancel"/> is set, ends
    /// every started sequence with <see cref="FinishReason.Cancelled"/> soon.</summary>
    void Step(List<SequenceDone> done, CancellationToken cancel);
}

internal sealed class EngineTimes
{
    public int Prompts;
    public double PrefillSeconds;
    public long Steps;
    public double StepSeconds;

    public override string ToString() => string.Format(System.Globalization.CultureInfo.InvariantCulture,
        "prefill {0:F2} s for {1} prompts ({2:F1} ms each), generation {3:F2} s for {4} steps ({5:F2} ms each)",
        PrefillSeconds, Prompts, Prompts > 0 ? PrefillSeconds * 1000 / Prompts : 0, StepSeconds, Steps, Steps > 0 ? StepSeconds * 1000 / Steps : 0);
}

/// <summary>
/// Today's engine: one model state, so the started sequences run one after the other, each to its end, in the order
/// they were started (the slots only bound how many lines are taken up at once).
/// </summary>
internal sealed class SequentialEngine(ModelRunner runner, XlstmTokenizer tokenizer, int validVocab, int slots) : ISequenceEngine
{
    private readonly Queue<(int Slot, SequenceJob Job)> _started = new();
    private readonly RunnerGenerationModel _model = new(runner);

    public int Slots { get; } = slots;
    public EngineTimes Times { get; } = new();

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
        Times.Prompts++;
        Times.PrefillSeconds += r.PromptMs / 1000;
        Times.Steps += r.EvalRuns;
        Times.StepSeconds += r.EvalMs / 1000;
    }
}

/// <summary>
/// The multi-sequence engine: up to <see cref="Slots"/> sequences in one <see cref="BatchRunner"/>, one decode step of
/// all of them at a time (the weights are read once per step for every sequence). A started job's prompt is prefilled
/// into its slot before the next step; a sequence that ends frees its slot at once. Each sequence is driven by its own
/// <see cref="SequenceGenerator"/> with its own seed, so its text does not depend on its slot or its neighbours (up to
/// float rounding: products over several rows may sum in another order than over one).
/// </summary>
internal sealed class BatchedEngine : ISequenceEngine, IDisposable
{
    private readonly BatchRunner _runner;
    private readonly XlstmTokenizer _tokenizer;
    private readonly int _validVocab;
    private readonly Active?[] _active;
    private readonly Queue<(int Slot, SequenceJob Job)> _pending = new();
    private readonly int[] _tokens, _argmax;
    private float[]? _logits;

    private sealed class Active(SequenceJob job, SequenceGenerator gen, long start, int promptLast)
    {
        public readonly SequenceJob Job = job;
        public readonly SequenceGenerator Gen = gen;
        public readonly long Start = start;
        public double PromptMs;
        public int Runs;
        /// <summary>The prompt's last id, fed by the first step (its logits give the first generated token); -1 after.</summary>
        public int PromptLast = promptLast;
    }

    public BatchedEngine(ModelWeights weights, XlstmTokenizer tokenizer, int validVocab, int slots)
    {
        _runner = new BatchRunner(weights, slots);
        _tokenizer = tokenizer;
        _validVocab = validVocab;
        _active = new Active?[slots];
        _tokens = new int[slots];
        _argmax = new int[slots];
    }

    public int Slots => _runner.Slots;
    public EngineTimes Times { get; } = new();

    public void Start(int slot, SequenceJob job) => _pending.Enqueue((slot, job));

    public void Step(List<SequenceDone> done, CancellationToken cancel)
    {
        // new sequences: reset the slot; every prompt but its last id is prefilled now, all of them together where the
        // backend packs them (BatchRunner.Prefill); the last id goes in with the next step, whose logits give the first
        // token. A single sequence feeds its prompt the same way (ForwardGreedy, RunnerGenerationModel.Feed), so a line's
        // text does not depend on --parallel.
        if (_pending.Count > 0)
        {
            var t0 = Stopwatch.GetTimestamp();
            var feeds = new List<(int Slot, int[] Ids)>();
            var started = new List<(int Slot, Active A)>();
            while (_pending.TryDequeue(out var p))
            {
                var (slot, job) = p;
                var req = new GenerationRequest
                {
                    Prompt = job.Prompt, Sampling = job.Sampling, ValidVocab = _validVocab, MaxTokens = job.MaxTokens, EosId = job.EosId,
                    StopStrings = job.Stop, Tokenizer = _tokenizer, Cancel = cancel,
                };
                _runner.Reset(slot);
                var gen = new SequenceGenerator(req, _runner.Config.Vocab);
                if (job.MaxTokens == 0)
                {
                    _runner.Slot(slot).Forward(job.Prompt, LogitsMode.None, default);
                    done.Add(new SequenceDone(slot, job, gen.Result(Ms(t0), 0, 0), Ms(t0) / 1000));
                    continue;
                }
                feeds.Add((slot, job.Prompt[..^1]));
                started.Add((slot, new Active(job, gen, t0, job.Prompt[^1])));
            }
            _runner.Prefill(feeds);
            double ms = Ms(t0);
            foreach (var (slot, a) in started)
            {
                a.PromptMs = ms / started.Count;
                _active[slot] = a;
            }
            Times.Prompts += started.Count;
            Times.PrefillSeconds += ms / 1000;
        }
        if (_active.All(a => a == null)) return;
        if (cancel.IsCancellationRequested)
        {
            for (int i = 0; i < _active.Length; i++)
                if (_active[i] is { } a)
                {
                    a.Gen.End(FinishReason.Cancelled);
                    done.Add(Finish(i, a));
                }
            return;
        }
        // one decode step of every slot (idle slots feed id 0; their state is reset before reuse)
        bool sampling = false;
        for (int i = 0; i < _active.Length; i++)
        {
            _tokens[i] = _active[i] is { } a ? (a.PromptLast >= 0 ? a.PromptLast : a.Gen.NextToken) : 0;
            sampling |= _active[i] is { Gen.Greedy: false };
        }
        if (sampling) _logits ??= new float[(long)Slots * _runner.Config.Vocab];
        long s0 = Stopwatch.GetTimestamp();
        _runner.Step(_tokens, _validVocab, _argmax, sampling ? _logits : default);
        Times.Steps++;
        Times.StepSeconds += Stopwatch.GetElapsedTime(s0).TotalSeconds;
        int V = _runner.Config.Vocab;
        for (int i = 0; i < _active.Length; i++)
        {
            if (_active[i] is not { } a) continue;
            if (a.PromptLast >= 0) a.PromptLast = -1;   // the prompt's last id: its logits give the first token
            else a.Runs++;
            int id = a.Gen.Pick(_argmax[i], sampling ? _logits.AsSpan(i * V, V) : default);
            if (!a.Gen.Accept(id)) done.Add(Finish(i, a));
        }
    }

    private SequenceDone Finish(int slot, Active a)
    {
        _active[slot] = null;
        double total = Ms(a.Start);
        return new SequenceDone(slot, a.Job, a.Gen.Result(a.PromptMs, total - a.PromptMs, a.Runs), total / 1000);
    }

    private static double Ms(long t0) => Stopwatch.GetElapsedTime(t0).TotalMilliseconds;

    public void Dispose() => _runner.Dispose();
}

/// <summary>Chooses the engine for a batch run.</summary>
internal static class SequenceEngines
{
    /// <summary>--parallel when not given: 16 sequences per step on a GPU (a decode step reads the weights once for all
    /// of them), 4 on the CPU (its GEMM kernels read a block of weights once for several tokens too), 1 on a backend
    /// without multi-sequence states (OpenCL).</summary>
    public static int DefaultSlots(IBackend backend) => !Supports(backend) ? 1 : backend is IDeviceMemory ? 16 : 4;

    /// <summary>The backend can hold several sequences in one state.</summary>
    public static bool Supports(IBackend backend) => backend.Name != "opencl";

    /// <summary>What the engine does with B slots, for the run's header line.</summary>
    public static string Note(ISequenceEngine e) => e is BatchedEngine
        ? "sequences step together: one forward pass per token for all of them"
        : "this backend runs one sequence at a time; --parallel only bounds the lines in flight";

    public static ISequenceEngine Create(ModelSession s, int slots) =>
        slots > 1 && Supports(s.Backend)
            ? new BatchedEngine(s.Runner.Weights, s.Tokenizer!, s.ValidVocab, slots)
            : new SequentialEngine(s.Runner, s.Tokenizer!, s.ValidVocab, slots);
}
