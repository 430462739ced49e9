using System.Diagnostics;
using System.Text;
using XlstmRun.Text.Tokenization;

namespace XlstmRun.Text.Sampling;

/// <summary>What the generation loop needs from a model: feed tokens (carrying the recurrent state), get logits.</summary>
public interface IGenerationModel
{
    /// <summary>Length of a logits row (the model's vocabulary, padding rows included).</summary>
    int LogitsSize { get; }

    /// <summary>Feeds <paramref name="ids"/> (a prompt is processed chunkwise in one call). If <paramref name="lastLogits"/>
    /// is not empty, the logits after the last id are written to it.</summary>
    void Feed(ReadOnlySpan<int> ids, Span<float> lastLogits);

    /// <summary>Feeds <paramref name="ids"/> and returns the argmax of the logits after the last one over ids 0..validVocab-1
    /// (lets a GPU backend avoid reading the logits back).</summary>
    int FeedGreedy(ReadOnlySpan<int> ids, int validVocab);
}

public enum FinishReason
{
    /// <summary>The token limit was reached.</summary>
    Length,
    /// <summary>The model produced the end-of-text token.</summary>
    Eos,
    /// <summary>A stop string appeared in the text.</summary>
    Stop,
    /// <summary><see cref="GenerationRequest.Cancel"/> was set (e.g. Ctrl-C).</summary>
    Cancelled,
}

public sealed class GenerationRequest
{
    /// <summary>Tokens to feed first (BOS included if wanted). May be empty only when <see cref="MaxTokens"/> is 0.</summary>
    public required int[] Prompt { get; init; }
    public SamplingParams Sampling { get; init; } = new();
    /// <summary>Ids that may be generated: 0..ValidVocab-1.</summary>
    public required int ValidVocab { get; init; }
    /// <summary>Maximum number of tokens to generate; -1 = no limit (until EOS or a stop string).</summary>
    public int MaxTokens { get; init; } = -1;
    /// <summary>End-of-text id that ends generation (not part of the output); null = none.</summary>
    public int? EosId { get; init; }
    /// <summary>Text stop strings (need <see cref="Tokenizer"/>); not part of the output text.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Turns ids into text (streamed through <see cref="StreamingDetokenizer"/>); null = ids only.</summary>
    public XlstmTokenizer? Tokenizer { get; init; }
    /// <summary>Also feed the last generated token (unless it is EOS), so that the model state ends after everything
    /// generated; needed before saving the state to continue later.</summary>
    public bool FeedLastToken { get; init; }
    /// <summary>Checked between tokens; when set, generation ends with <see cref="FinishReason.Cancelled"/>.</summary>
    public CancellationToken Cancel { get; init; }
}

public sealed class GenerationResult
{
    public required List<int> Ids { get; init; }
    public required string Text { get; init; }
    public required FinishReason FinishReason { get; init; }
    public required int PromptTokens { get; init; }
    /// <summary>Time to feed the prompt and pick the first token.</summary>
    public required double PromptMs { get; init; }
    /// <summary>Time of the single-token steps that followed.</summary>
    public required double EvalMs { get; init; }
    public required int EvalRuns { get; init; }
    public required double SampleMs { get; init; }

    public string FinishReasonText => FinishReason switch { FinishReason.Eos => "eos", FinishReason.Stop => "stop", FinishReason.Cancelled => "cancelled", _ => "length" };
}

/// <summary>
/// One sequence's generation, one token at a time: given what the model says after the prompt (or after the last fed
/// token), it picks the next id (the greedy id, or a sample from the logits), applies the end-of-text, stop-string and
/// length rules, and streams text that never splits a UTF-8 character and never shows (part of) a stop string.
/// <see cref="Generator.Run"/> drives one of these against a model; the multi-sequence engine drives many, one decode
/// step of all of them at a time, so a sequence gives the same result either way.
/// </summary>
public sealed class SequenceGenerator
{
    private readonly GenerationRequest _req;
    private readonly Sampler? _sampler;
    private readonly List<int> _ids = new();
    private readonly StringBuilder _text = new();
    private readonly StreamingDetokenizer? _detok;
    private readonly StopStrings _stops;
    private readonly Action<string>? _onText;
    private FinishReason _reason = FinishReason.Length;

    public SequenceGenerator(GenerationRequest req, int logitsSize, Action<string>? onText = null)
    {
        ArgumentNullException.ThrowIfNull(req);
        if (req.ValidVocab <= 0 || req.ValidVocab > logitsSize) throw new ArgumentOutOfRangeException(nameof(req), "ValidVocab must be in 1..LogitsSize");
        if (req.StopStrings.Count > 0 && req.Tokenizer == null) throw new ArgumentException("stop strings need a tokenizer");
        if (req.Prompt.Length == 0 && req.MaxTokens != 0) throw new ArgumentException("the prompt is empty: there is nothing to continue from");
        _req = req;
        _onText = onText;
        _detok = req.Tokenizer != null ? new StreamingDetokenizer(req.Tokenizer, skipSpecialTokens: true) : null;
        _stops = new StopStrings(req.StopStrings);
        Greedy = req.Sampling.IsGreedy;
        if (!Greedy)
        {
            _sampler = new Sampler(req.Sampling, req.ValidVocab);
            _sampler.Accept(req.Prompt);
        }
    }

    /// <summary>The next id is the argmax (no logits needed).</summary>
    public bool Greedy { get; }
    public bool Finished { get; private set; }
    /// <summary>The id to feed next (valid while not <see cref="Finished"/>).</summary>
    public int NextToken { get; private set; }
    public IReadOnlyList<int> Ids => _ids;
    public double SampleMs { get; private set; }

    /// <summary>Pick the next id: <paramref name="greedyId"/> when greedy, else a sample from <paramref name="logits"/>.</summary>
    public int Pick(int greedyId, ReadOnlySpan<float> logits)
    {
        if (Greedy) return greedyId;
        var s0 = Stopwatch.GetTimestamp();
        int id = _sampler!.Sample(logits);
        SampleMs += Stopwatch.GetElapsedTime(s0).TotalMilliseconds;
        return id;
    }

    /// <summary>Take the picked id: false when the sequence ends here (end-of-text, a stop string, the token limit,
    /// cancellation), else true and <see cref="NextToken"/> is the id to feed.</summary>
    public bool Accept(int id)
    {
        if (Finished) throw new InvalidOperationException("the sequence has ended");
        if (_req.EosId is int eos && id == eos) return End(FinishReason.Eos);
        _ids.Add(id);
        _sampler?.Accept(id);
        if (_detok != null)
        {
            Emit(_stops.Push(_detok.Push(id)));
            if (_stops.Stopped) return End(FinishReason.Stop);
        }
        if (_req.MaxTokens > 0 && _ids.Count >= _req.MaxTokens) return End(FinishReason.Length);
        if (_req.Cancel.IsCancellationRequested) return End(FinishReason.Cancelled);
        NextToken = id;
        return true;
    }

    /// <summary>End now (e.g. the engine was cancelled between steps).</summary>
    public bool End(FinishReason reason)
    {
        _reason = reason;
        Finished = true;
        if (_detok != null && !_stops.Stopped)
        {
            Emit(_stops.Push(_detok.Flush()));
            if (!_stops.Stopped) Emit(_stops.Flush());
            if (_stops.Stopped) _reason = FinishReason.Stop;
        }
        return false;
    }

    private void Emit(string s)
    {
        if (s.Length == 0) return;
        _text.Append(s);
        _onText?.Invoke(s);
    }

    public GenerationResult Result(double promptMs, double evalMs, int evalRuns) => new()
    {
        Ids = _ids, Text = _text.ToString(), FinishReason = _reason, PromptTokens = _req.Prompt.Length,
        PromptMs = promptMs, EvalMs = evalMs, EvalRuns = evalRuns, SampleMs = SampleMs,
    };
}

/// <summary>
/// The generation loop over one model: prompt → chunkwise prefill → pick → step (see <see cref="SequenceGenerator"/>).
/// </summary>
public static class Generator
{
    /// <param name="onText">Called with each piece of text as soon as it is final (streaming output).</param>
    public static GenerationResult Run(IGenerationModel model, GenerationRequest req, Action<string>? onText = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var seq = new SequenceGenerator(req, model.LogitsSize, onText);
        if (req.MaxTokens == 0)
        {
            var t0 = Stopwatch.GetTimestamp();
            if (req.Prompt.Length > 0) model.Feed(req.Prompt, default);
            return seq.Result(Stopwatch.GetElapsedTime(t0).TotalMilliseconds, 0, 0);
        }
        var logits = seq.Greedy ? null : new float[model.LogitsSize];
        int Next(ReadOnlySpan<int> feed)
        {
            if (seq.Greedy) return model.FeedGreedy(feed, req.ValidVocab);
            model.Feed(feed, logits);
            return seq.Pick(0, logits);
        }

        var start = Stopwatch.GetTimestamp();
        int next = Next(req.Prompt);
        double promptMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        var evalStart = Stopwatch.GetTimestamp();
        int runs = 0;
        while (seq.Accept(next))
        {
            next = Next([seq.NextToken]);
            runs++;
        }
        double evalMs = Stopwatch.GetElapsedTime(evalStart).TotalMilliseconds;
        var result = seq.Result(promptMs, evalMs, runs);
        if (req.FeedLastToken && result.FinishReason != FinishReason.Eos && result.Ids.Count > 0) model.Feed([result.Ids[^1]], default);
        return result;
    }
}
