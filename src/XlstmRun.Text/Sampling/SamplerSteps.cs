namespace XlstmRun.Text.Sampling;

/// <summary>The steps of the sampler chain, with llama.cpp's semantics (src/llama-sampling.cpp).</summary>
public static class SamplerSteps
{
    /// <summary>
    /// Repetition, frequency and presence penalties on the logits of the tokens in <paramref name="counts"/>
    /// (token → occurrences in the window): a positive logit is divided by <paramref name="repeat"/>, a negative (or zero)
    /// one multiplied; then count·frequency + presence is subtracted. Ids outside <paramref name="logits"/> are ignored.
    /// </summary>
    public static void ApplyPenalties(Span<float> logits, IReadOnlyDictionary<int, int> counts, float repeat, float frequency, float presence)
    {
        foreach (var (id, count) in counts)
        {
            if (count <= 0 || (uint)id >= (uint)logits.Length) continue;
            ref float l = ref logits[id];
            if (l <= 0) l *= repeat;
            else l /= repeat;
            l -= count * frequency + presence;
        }
    }

    /// <summary>Keeps the k most likely candidates (sorted). k ≤ 0 leaves them as they are.</summary>
    public static void TopK(Candidates c, int k)
    {
        if (k <= 0) return;
        c.SelectTop(Math.Min(k, c.Count));
    }

    /// <summary>
    /// Nucleus sampling: sorts, then keeps the most likely candidates up to and including the first one at which the
    /// cumulative probability reaches <paramref name="p"/> (at least <paramref name="minKeep"/>). p ≥ 1 leaves them as they are.
    /// </summary>
    public static void TopP(Candidates c, float p, int minKeep = 1)
    {
        if (p >= 1f || c.Count == 0) return;
        c.Sort();
        var probs = c.Probabilities();
        double cum = 0;
        int keep = c.Count;
        for (int i = 0; i < probs.Length; i++)
        {
            cum += probs[i];
            if (cum >= p && i + 1 >= minKeep)
            {
                keep = i + 1;
                break;
            }
        }
        c.Truncate(keep);
    }

    /// <summary>
    /// Keeps the candidates whose probability is at least <paramref name="p"/> times the largest one's
    /// (logit ≥ max logit + ln p), in their current order. p ≤ 0 leaves them as they are. If fewer than
    /// <paramref name="minKeep"/> pass, the <paramref name="minKeep"/> most likely are kept.
    /// </summary>
    public static void MinP(Candidates c, float p, int minKeep = 1)
    {
        if (p <= 0f || c.Count == 0) return;
        float max = float.NegativeInfinity;
        foreach (float l in c.Logits) if (l > max) max = l;
        float threshold = max + MathF.Log(p);
        int pass = 0;
        foreach (float l in c.Logits) if (l >= threshold) pass++;
        if (pass >= minKeep) c.Filter(l => l >= threshold);
        else
        {
            c.Sort();
            c.Truncate(minKeep);
        }
    }

    /// <summary>Divides the logits by <paramref name="t"/>; t ≤ 0 keeps only the most likely candidate (greedy).</summary>
    public static void Temperature(Candidates c, float t)
    {
        if (c.Count == 0) return;
        if (t <= 0f)
        {
            int best = ArgMax(c);
            c.Set([c.Ids[best]], [c.Logits[best]]);
            return;
        }
        var lg = c.Logits;
        for (int i = 0; i < lg.Length; i++) lg[i] /= t;
    }

    /// <summary>Index (into the candidates) of the largest logit, lowest id on ties.</summary>
    public static int ArgMax(Candidates c)
    {
        int best = 0;
        var lg = c.Logits;
        var ids = c.Ids;
        for (int i = 1; i < lg.Length; i++)
            if (lg[i] > lg[best] || (lg[i] == lg[best] && ids[i] < ids[best])) best = i;
        return best;
    }

    /// <summary>Index of the largest value (first one on ties).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    /// <summary>Draws a candidate id with probability softmax(logits), using one uniform number from <paramref name="rng"/>.</summary>
    public static int Draw(Candidates c, Rng rng)
    {
        if (c.Count == 0) throw new InvalidOperationException("no candidates left to sample from");
        if (c.Count == 1) return c.Ids[0];
        var probs = c.Probabilities();
        double u = rng.NextDouble(), cum = 0;
        for (int i = 0; i < probs.Length; i++)
        {
            cum += probs[i];
            if (u < cum) return c.Ids[i];
        }
        // rounding: u fell past the last cumulative sum; take the last candidate with a non-zero probability
        for (int i = probs.Length - 1; i >= 0; i--) if (probs[i] > 0) return c.Ids[i];
        return c.Ids[0];
    }
}
