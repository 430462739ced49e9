using XlstmRun.Formats;

namespace XlstmRun.Text.Sampling;

/// <summary>
/// Sampling settings with llama.cpp's defaults and meanings. The chain runs in llama.cpp's default order:
/// penalties → top-k → top-p → min-p → temperature → draw.
/// </summary>
public sealed record SamplingParams
{
    /// <summary>Softmax temperature; 0 (or less) picks the most likely token (after penalties).</summary>
    public float Temperature { get; init; } = 0.8f;
    /// <summary>Keep the k most likely tokens; 0 = off.</summary>
    public int TopK { get; init; } = 40;
    /// <summary>Keep the smallest set of most likely tokens whose probability adds up to at least p; 1 = off.</summary>
    public float TopP { get; init; } = 0.95f;
    /// <summary>Drop tokens less likely than p times the most likely one; 0 = off.</summary>
    public float MinP { get; init; } = 0.05f;
    /// <summary>Repetition penalty for tokens in the last <see cref="RepeatLastN"/>: positive logits are divided by it,
    /// negative ones multiplied. 1 = off.</summary>
    public float RepeatPenalty { get; init; } = 1.0f;
    /// <summary>How many recent tokens the penalties look at; 0 = off, -1 = all.</summary>
    public int RepeatLastN { get; init; } = 64;
    /// <summary>Subtracted once from the logit of every token in the window; 0 = off.</summary>
    public float PresencePenalty { get; init; }
    /// <summary>Subtracted from a token's logit once per occurrence in the window; 0 = off.</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>Seed of the random draws.</summary>
    public ulong Seed { get; init; }

    public bool PenaltiesActive => RepeatLastN != 0 && (RepeatPenalty != 1f || PresencePenalty != 0f || FrequencyPenalty != 0f);

    /// <summary>True when the result is the argmax of the raw logits (no randomness, no penalties).</summary>
    public bool IsGreedy => Temperature <= 0f && !PenaltiesActive;

    /// <summary>Throws <see cref="BadInputException"/> naming the first value out of range; <paramref name="names"/>
    /// maps a property to the name the user typed (e.g. "--top-p" or "top_p").</summary>
    public void Validate(Func<string, string>? names = null)
    {
        names ??= n => n;
        static bool Finite(float f) => float.IsFinite(f);
        if (!Finite(Temperature) || Temperature < 0) throw new BadInputException($"{names("temperature")} must be 0 or more (got {Temperature})");
        if (TopK < 0) throw new BadInputException($"{names("top_k")} must be 0 (off) or more (got {TopK})");
        if (!Finite(TopP) || TopP < 0 || TopP > 1) throw new BadInputException($"{names("top_p")} must be between 0 and 1 (got {TopP})");
        if (!Finite(MinP) || MinP < 0 || MinP > 1) throw new BadInputException($"{names("min_p")} must be between 0 and 1 (got {MinP})");
        if (!Finite(RepeatPenalty) || RepeatPenalty <= 0) throw new BadInputException($"{names("repeat_penalty")} must be more than 0 (got {RepeatPenalty})");
        if (RepeatLastN < -1) throw new BadInputException($"{names("repeat_last_n")} must be -1 (all), 0 (off) or more (got {RepeatLastN})");
        if (!Finite(PresencePenalty)) throw new BadInputException($"{names("presence_penalty")} must be a finite number");
        if (!Finite(FrequencyPenalty)) throw new BadInputException($"{names("frequency_penalty")} must be a finite number");
    }

    /// <summary>The chain as text, for verbose output.</summary>
    public string Describe() =>
        $"repeat_last_n = {RepeatLastN}, repeat_penalty = {RepeatPenalty}, frequency_penalty = {FrequencyPenalty}, presence_penalty = {PresencePenalty}, " +
        $"top_k = {TopK}, top_p = {TopP}, min_p = {MinP}, temp = {Temperature}, seed = {Seed}" +
        (IsGreedy ? " (greedy)" : "");
}
