using System.CommandLine;
using XlstmRun.Formats;
using XlstmRun.Text.Sampling;

namespace XlstmRun.Cli;

/// <summary>Generation options shared by the root command, `generate` and `batch` (llama.cpp names and defaults).</summary>
internal sealed class SamplingOptions
{
    public const int DefaultTokens = 256, DefaultTokensIds = 32;

    public Option<int?> NPredict { get; } = new("--n-predict", "-n", "--predict") { HelpName = "N", CustomParser = ParseInt };
    public Option<long> Seed { get; } = new("--seed", "-s") { Description = "Random seed; -1 = a random one", DefaultValueFactory = _ => -1, HelpName = "SEED" };
    public Option<float?> Temp { get; } = new("--temp", "--temperature") { HelpName = "T", CustomParser = ParseFloat };

    private static string OptName(System.CommandLine.Parsing.ArgumentResult r) =>
        r.Parent is System.CommandLine.Parsing.OptionResult o ? o.Option.Name : "value";

    private static int? ParseInt(System.CommandLine.Parsing.ArgumentResult r)
    {
        string t = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
        if (int.TryParse(t, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int v)) return v;
        r.AddError($"{OptName(r)}: '{t}' is not an integer");
        return null;
    }

    private static float? ParseFloat(System.CommandLine.Parsing.ArgumentResult r)
    {
        string t = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
        if (float.TryParse(t, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out float v)) return v;
        r.AddError($"{OptName(r)}: '{t}' is not a number");
        return null;
    }
    public Option<int> TopK { get; } = new("--top-k") { Description = "Keep the K most likely tokens; 0 = off", DefaultValueFactory = _ => 40, HelpName = "K" };
    public Option<float> TopP { get; } = new("--top-p") { Description = "Keep the most likely tokens up to total probability P; 1 = off", DefaultValueFactory = _ => 0.95f, HelpName = "P" };
    public Option<float> MinP { get; } = new("--min-p") { Description = "Drop tokens less likely than P times the most likely one; 0 = off", DefaultValueFactory = _ => 0.05f, HelpName = "P" };
    public Option<float> RepeatPenalty { get; } = new("--repeat-penalty") { Description = "Penalize tokens seen in the last --repeat-last-n; 1 = off", DefaultValueFactory = _ => 1.0f, HelpName = "X" };
    public Option<int> RepeatLastN { get; } = new("--repeat-last-n") { Description = "Tokens the penalties look back over; 0 = off, -1 = all", DefaultValueFactory = _ => 64, HelpName = "N" };
    public Option<float> PresencePenalty { get; } = new("--presence-penalty") { Description = "Subtract X from tokens seen in the window; 0 = off", DefaultValueFactory = _ => 0f, HelpName = "X" };
    public Option<float> FrequencyPenalty { get; } = new("--frequency-penalty") { Description = "Subtract X per occurrence in the window; 0 = off", DefaultValueFactory = _ => 0f, HelpName = "X" };
    public Option<string[]> Stop { get; } = new("--reverse-prompt", "-r", "--stop")
    {
        Description = "Stop when this text appears (repeatable); the text itself is not printed",
        HelpName = "TEXT",
        Arity = ArgumentArity.ZeroOrMore,
        AllowMultipleArgumentsPerToken = false,
    };
    public Option<bool> IgnoreEos { get; } = new("--ignore-eos") { Description = "Keep going after <|endoftext|>" };
    public Option<bool> NoBos { get; } = new("--no-bos") { Description = "Do not put BOS (<|endoftext|>, id 0) before the prompt of a fresh state" };

    /// <param name="idsMode">Whether the command has --ids (whose defaults differ: greedy, 32 tokens).</param>
    public SamplingOptions(bool idsMode = false)
    {
        NPredict.Description = $"Tokens to generate; -1 = until end of text or a stop string [default: {DefaultTokens}" +
            (idsMode ? $"; {DefaultTokensIds} with --ids]" : "]");
        Temp.Description = "Temperature; 0 = greedy (always the most likely token) [default: 0.8" + (idsMode ? "; 0 with --ids]" : "]");
    }

    public void AddTo(Command c)
    {
        foreach (var o in new Option[] { NPredict, Seed, Temp, TopK, TopP, MinP, RepeatPenalty, RepeatLastN, PresencePenalty, FrequencyPenalty, Stop, IgnoreEos, NoBos })
            c.Options.Add(o);
    }

    /// <summary>The -n value (default depends on the mode); throws for values below -1.</summary>
    public int Tokens(ParseResult pr, bool idsMode)
    {
        int n = pr.GetValue(NPredict) ?? (idsMode ? DefaultTokensIds : DefaultTokens);
        if (n < -1) throw new BadInputException($"-n must be -1 (no limit), 0 or more (got {n})");
        return n;
    }

    /// <summary>The seed to use: --seed, or a fresh random one for -1.</summary>
    public long ResolveSeed(ParseResult pr)
    {
        long seed = pr.GetValue(Seed);
        if (seed < -1) throw new BadInputException($"--seed must be -1 (random) or 0 or more (got {seed})");
        return seed == -1 ? Rng.RandomSeed() : seed;
    }

    public SamplingParams Build(ParseResult pr, float defaultTemp, long seed)
    {
        var p = new SamplingParams
        {
            Temperature = pr.GetValue(Temp) ?? defaultTemp,
            TopK = pr.GetValue(TopK),
            TopP = pr.GetValue(TopP),
            MinP = pr.GetValue(MinP),
            RepeatPenalty = pr.GetValue(RepeatPenalty),
            RepeatLastN = pr.GetValue(RepeatLastN),
            PresencePenalty = pr.GetValue(PresencePenalty),
            FrequencyPenalty = pr.GetValue(FrequencyPenalty),
            Seed = (ulong)seed,
        };
        p.Validate(OptionName);
        return p;
    }

    private static string OptionName(string field) => "--" + field switch
    {
        "temperature" => "temp",
        _ => field.Replace('_', '-'),
    };

    public string[] StopStrings(ParseResult pr) => (pr.GetValue(Stop) ?? []).Where(s => s.Length > 0).ToArray();
}
