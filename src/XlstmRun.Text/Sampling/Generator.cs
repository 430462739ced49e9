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
/// The generation loop: prompt → chunkwise prefill → sample → step, with streaming text that never splits a UTF-8
/// character and never shows (part of) a stop string.
/// </summary>
public static class Generator
{
    /// <param name="onText">Called with each piece of text as soon as it is final (streaming output).</param>
    public static GenerationResult Run(IGenerationModel model, GenerationRequest req, Action<string>? onText = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(req);
        if (req.ValidVocab <= 0 || req.ValidVocab > model.LogitsSize) throw new ArgumentOutOfRangeException(nameof(req), "ValidVocab must be in 1..LogitsSize");
        if (req.StopStrings.Count > 0 && req.Tokenizer == null) throw new ArgumentException("stop strings need a tokenizer");
        var p = req.Sampling;
        var ids = new List<int>();
        var text = new StringBuilder();
        var detok = req.Tokenizer != null ? new StreamingDetokenizer(req.Tokenizer, skipSpecialTokens: true) : null;
        var stops = new StopStrings(req.StopStrings);
        void Emit(string s)
        {
            if (s.Length == 0) return;
            text.Append(s);
            onText?.Invoke(s);
        }

        if (req.MaxTokens == 0)
        {
            var t0 = Stopwatch.GetTimestamp();
            if (req.Prompt.Length > 0) model.Feed(req.Prompt, default);
            return new GenerationResult
            {
                Ids = ids, Text = "", FinishReason = FinishReason.Length, PromptTokens = req.Prompt.Length,
                PromptMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds, EvalMs = 0, EvalRuns = 0, SampleMs = 0,
            };
        }
        if (req.Prompt.Length == 0) throw new ArgumentException("the prompt is empty: there is nothing to continue from");

        bool greedy = p.IsGreedy;
        var sampler = greedy ? null : new Sampler(p, req.ValidVocab);
        sampler?.Accept(req.Prompt);
        var logits = greedy ? null : new float[model.LogitsSize];
        double sampleMs = 0;
        int Next(ReadOnlySpan<int> feed)
        {
            if (greedy) return model.FeedGreedy(feed, req.ValidVocab);
            model.Feed(feed, logits);
            var s0 = Stopwatch.GetTimestamp();
            int id = sampler!.Sample(logits);
            sampleMs += Stopwatch.GetElapsedTime(s0).TotalMilliseconds;
            return id;
        }

        var start = Stopwatch.GetTimestamp();
        int next = Next(req.Prompt);
        double promptMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        var evalStart = Stopwatch.GetTimestamp();
        int runs = 0;
        FinishReason reason;
        while (true)
        {
            if (req.EosId is int eos && next == eos)
            {
                reason = FinishReason.Eos;
                break;
            }
            ids.Add(next);
            sampler?.Accept(next);
            if (detok != null)
            {
                Emit(stops.Push(detok.Push(next)));
                if (stops.Stopped)
                {
                    reason = FinishReason.Stop;
                    break;
                }
            }
            if (req.MaxTokens > 0 && ids.Count >= req.MaxTokens)
            {
                reason = FinishReason.Length;
                break;
            }
            if (req.Cancel.IsCancellationRequested)
            {
                reason = FinishReason.Cancelled;
                break;
            }
            next = Next([next]);
            runs++;
        }
        double evalMs = Stopwatch.GetElapsedTime(evalStart).TotalMilliseconds;
        if (detok != null && !stops.Stopped)
        {
            Emit(stops.Push(detok.Flush()));
            if (!stops.Stopped) Emit(stops.Flush());
            if (stops.Stopped) reason = FinishReason.Stop;
        }
        if (req.FeedLastToken && reason != FinishReason.Eos && ids.Count > 0) model.Feed([ids[^1]], default);
        return new GenerationResult
        {
            Ids = ids, Text = text.ToString(), FinishReason = reason, PromptTokens = req.Prompt.Length,
            PromptMs = promptMs, EvalMs = evalMs, EvalRuns = runs, SampleMs = sampleMs,
        };
    }
}
