namespace XlstmRun.Text.Sampling;

/// <summary>
/// Picks the next token from a row of logits: penalties → top-k → top-p → min-p → temperature → draw (llama.cpp's
/// default order and semantics). Only the first <see cref="Vocab"/> logits are considered, so padding rows of the
/// embedding beyond the tokenizer's vocabulary are never produced. Remembers the recent tokens for the penalties
/// (<see cref="Accept"/> every prompt and generated token). Not thread-safe.
/// </summary>
public sealed class Sampler
{
    private readonly float[] _work;
    private readonly Candidates _cand;
    private readonly Rng _rng;
    private readonly Queue<int> _window = new();
    private readonly Dictionary<int, int> _counts = new();

    public Sampler(SamplingParams p, int vocab)
    {
        ArgumentNullException.ThrowIfNull(p);
        if (vocab <= 0) throw new ArgumentOutOfRangeException(nameof(vocab));
        p.Validate();
        Params = p;
        Vocab = vocab;
        _work = new float[vocab];
        _cand = new Candidates(vocab);
        _rng = new Rng(p.Seed);
    }

    public SamplingParams Params { get; }
    public int Vocab { get; }

    /// <summary>Token counts in the penalty window (token → occurrences).</summary>
    public IReadOnlyDictionary<int, int> WindowCounts => _counts;

    /// <summary>Adds a token to the penalty window (prompt tokens and generated tokens alike, as llama.cpp does).</summary>
    public void Accept(int id)
    {
        int n = Params.RepeatLastN;
        if (n == 0) return;
        _window.Enqueue(id);
        _counts[id] = _counts.GetValueOrDefault(id) + 1;
        if (n > 0 && _window.Count > n)
        {
            int old = _window.Dequeue();
            if (--_counts[old] == 0) _counts.Remove(old);
        }
    }

    public void Accept(ReadOnlySpan<int> ids)
    {
        foreach (int id in ids) Accept(id);
    }

    /// <summary>Forgets the penalty window.</summary>
    public void ResetHistory()
    {
        _window.Clear();
        _counts.Clear();
    }

    /// <summary>Picks the next token. <paramref name="logits"/> must hold at least <see cref="Vocab"/> values.</summary>
    public int Sample(ReadOnlySpan<float> logits)
    {
        if (logits.Length < Vocab) throw new ArgumentException($"expected at least {Vocab} logits, got {logits.Length}");
        var p = Params;
        var work = _work.AsSpan();
        logits[..Vocab].CopyTo(work);
        if (p.PenaltiesActive) SamplerSteps.ApplyPenalties(work, _counts, p.RepeatPenalty, p.FrequencyPenalty, p.PresencePenalty);
        if (p.Temperature <= 0f) return SamplerSteps.ArgMax(work);
        _cand.Fill(work);
        SamplerSteps.TopK(_cand, p.TopK);
        SamplerSteps.TopP(_cand, p.TopP);
        SamplerSteps.MinP(_cand, p.MinP);
        SamplerSteps.Temperature(_cand, p.Temperature);
        return SamplerSteps.Draw(_cand, _rng);
    }
}
