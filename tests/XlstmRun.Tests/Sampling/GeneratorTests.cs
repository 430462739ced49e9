using System.Text;
using XlstmRun.Tests.Tokenization;
using XlstmRun.Text.Sampling;
using XlstmRun.Text.Tokenization;
using Xunit;

namespace XlstmRun.Tests.Sampling;

/// <summary>
/// A stand-in model that makes the next token whatever its script says (one sharp logit), so that the generation loop,
/// streaming decode, stop strings and EOS handling can be tested on known token sequences.
/// </summary>
internal sealed class ScriptedModel(int logitsSize, IEnumerable<int> script, int paddingHotId = -1) : IGenerationModel
{
    private readonly Queue<int> _next = new(script);
    public List<int> Fed { get; } = new();
    public int LogitsSize => logitsSize;

    public void Feed(ReadOnlySpan<int> ids, Span<float> lastLogits)
    {
        Fed.AddRange(ids.ToArray());
        if (lastLogits.IsEmpty) return;
        lastLogits[..logitsSize].Clear();
        lastLogits[_next.Dequeue()] = 30f;
        if (paddingHotId >= 0) lastLogits[paddingHotId] = 100f; // a padding row that must never be sampled
    }

    public int FeedGreedy(ReadOnlySpan<int> ids, int validVocab)
    {
        Fed.AddRange(ids.ToArray());
        int id = _next.Dequeue();
        Assert.InRange(id, 0, validVocab - 1);
        return id;
    }
}

public class GeneratorTests
{
    private static XlstmTokenizer Tok => TokTestPaths.Neox;
    private const int Padded = 50304;
    private static readonly SamplingParams Greedy = new() { Temperature = 0 };
    private static readonly SamplingParams Sampled = new() { Temperature = 0.8f, Seed = 9 };

    private static bool IsCompleteUtf8(byte[] b)
    {
        try
        {
            new UTF8Encoding(false, true).GetString(b);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }

    public static TheoryData<bool> BothPaths() => new([true, false]);

    [Theory, MemberData(nameof(BothPaths))]
    public void StreamsMultiByteTextTokenByTokenWithoutSplittingCharacters(bool greedy)
    {
        const string text = "Grüße aus Köln: 東京タワー 🎉🚀 naïve café";
        int[] ids = Tok.Encode(text);
        // the test is only meaningful if some tokens carry part of a character
        Assert.Contains(ids, id => !IsCompleteUtf8(Tok.TokenBytes(id)));
        var model = new ScriptedModel(Padded, [.. ids, Tok.EosId]);
        var pieces = new List<string>();
        var r = Generator.Run(model, new GenerationRequest
        {
            Prompt = [Tok.BosId, .. Tok.Encode("Say:")],
            Sampling = greedy ? Greedy : Sampled,
            ValidVocab = Tok.VocabSize,
            EosId = Tok.EosId,
            Tokenizer = Tok,
        }, pieces.Add);
        Assert.Equal(ids, r.Ids);
        Assert.Equal(FinishReason.Eos, r.FinishReason);
        Assert.Equal(text, string.Concat(pieces));
        Assert.Equal(text, r.Text);
        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD'));
        Assert.True(pieces.Count < ids.Length, "tokens holding part of a character must not produce text on their own");
        foreach (var p in pieces) Assert.False(char.IsHighSurrogate(p[^1]), "a surrogate pair was split between pieces");
    }

    [Fact]
    public void AStopStringSpanningTokensEndsGenerationAndIsNotPrinted()
    {
        const string text = "The answer is 42. Done here, more text";
        int[] ids = Tok.Encode(text);
        var model = new ScriptedModel(Padded, ids);
        var pieces = new List<string>();
        var r = Generator.Run(model, new GenerationRequest
        {
            Prompt = [Tok.BosId],
            Sampling = Greedy,
            ValidVocab = Tok.VocabSize,
            MaxTokens = 100,
            EosId = Tok.EosId,
            StopStrings = [". Done"],
            Tokenizer = Tok,
        }, pieces.Add);
        Assert.Equal(FinishReason.Stop, r.FinishReason);
        Assert.Equal("The answer is 42", r.Text);
        Assert.Equal("The answer is 42", string.Concat(pieces));
        Assert.DoesNotContain(pieces, p => p.Contains('.'));
        // generation stopped at the token that completed the stop string
        Assert.Equal(ids.Take(r.Ids.Count), r.Ids);
        Assert.Contains(". Done", Tok.Decode(r.Ids.ToArray()));
        Assert.DoesNotContain(". Done", Tok.Decode(r.Ids.Take(r.Ids.Count - 1).ToArray()));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void MaxTokensEndsWithLengthAndFeedLastTokenFeedsTheLastOne(bool feedLast)
    {
        var model = new ScriptedModel(100, [5, 6, 7, 8, 9]);
        var r = Generator.Run(model, new GenerationRequest
        {
            Prompt = [1, 2],
            Sampling = Greedy,
            ValidVocab = 100,
            MaxTokens = 3,
            FeedLastToken = feedLast,
        });
        Assert.Equal([5, 6, 7], r.Ids);
        Assert.Equal(FinishReason.Length, r.FinishReason);
        Assert.Equal(2, r.EvalRuns);
        Assert.Equal(feedLast ? [1, 2, 5, 6, 7] : new[] { 1, 2, 5, 6 }, model.Fed);
    }

    [Fact]
    public void EosEndsGenerationAndIsNeitherReturnedNorFed()
    {
        var model = new ScriptedModel(100, [5, 0, 7]);
        var r = Generator.Run(model, new GenerationRequest { Prompt = [1], Sampling = Greedy, ValidVocab = 100, EosId = 0, FeedLastToken = true });
        Assert.Equal([5], r.Ids);
        Assert.Equal(FinishReason.Eos, r.FinishReason);
        Assert.Equal([1, 5], model.Fed);
    }

    [Fact]
    public void WithoutAnEosIdGenerationGoesOnThroughId0()
    {
        var model = new ScriptedModel(100, [5, 0, 7]);
        var r = Generator.Run(model, new GenerationRequest { Prompt = [1], Sampling = Greedy, ValidVocab = 100, EosId = null, MaxTokens = 3 });
        Assert.Equal([5, 0, 7], r.Ids);
        Assert.Equal(FinishReason.Length, r.FinishReason);
    }

    [Fact]
    public void ZeroTokensOnlyFeedsThePrompt()
    {
        var model = new ScriptedModel(100, []);
        var r = Generator.Run(model, new GenerationRequest { Prompt = [1, 2, 3], ValidVocab = 100, MaxTokens = 0 });
        Assert.Empty(r.Ids);
        Assert.Equal([1, 2, 3], model.Fed);
        Assert.Equal(3, r.PromptTokens);
    }

    [Fact]
    public void PaddingRowsAreNeverSampled()
    {
        // the fake puts the largest logit on a padding id beyond the tokenizer's vocabulary at every step
        var script = Enumerable.Repeat(Tok.Encode(" the")[0], 20).ToArray();
        var model = new ScriptedModel(Padded, script, paddingHotId: Padded - 1);
        var r = Generator.Run(model, new GenerationRequest
        {
            Prompt = [Tok.BosId],
            Sampling = new SamplingParams { Temperature = 1.5f, TopK = 0, TopP = 1, MinP = 0, Seed = 3 },
            ValidVocab = Tok.VocabSize,
            MaxTokens = 20,
            Tokenizer = Tok,
        });
        Assert.Equal(script, r.Ids);
    }

    [Fact]
    public void TokensLongerThan128CharactersStreamWhole()
    {
        // the NeoX vocabulary plus one added token of 300 characters (and over 600 UTF-8 bytes)
        var neox = TokTestPaths.NeoxModel;
        string longToken = string.Concat(Enumerable.Repeat("ü€😀", 75));
        var model = TokenizerModel.FromArrays([.. neox.Tokens, longToken], neox.Merges, [.. neox.TokenTypes, TokenizerModel.TypeUserDefined],
            neox.BosId, neox.EosId, neox.PadId, neox.Nfc);
        var tok = new XlstmTokenizer(model);
        int longId = neox.Tokens.Count;
        Assert.Equal(longToken, tok.Decode([longId]));
        int a = tok.Encode("a")[0];
        var gen = new ScriptedModel(Padded, [longId, a, longId, tok.EosId]);
        var pieces = new List<string>();
        var r = Generator.Run(gen, new GenerationRequest { Prompt = [tok.BosId], Sampling = Greedy, ValidVocab = tok.VocabSize, EosId = tok.EosId, Tokenizer = tok }, pieces.Add);
        Assert.Equal(longToken + "a" + longToken, r.Text);
        Assert.Equal([longToken, "a", longToken], pieces);
    }

    [Fact]
    public void SpecialTokensProduceNoText()
    {
        int padding = 1; // <|padding|>
        Assert.True(Tok.IsSpecial(padding));
        int[] hi = Tok.Encode("hi");
        var model = new ScriptedModel(Padded, [.. hi, padding, .. hi]);
        var r = Generator.Run(model, new GenerationRequest { Prompt = [0], Sampling = Greedy, ValidVocab = Tok.VocabSize, MaxTokens = 2 * hi.Length + 1, Tokenizer = Tok });
        Assert.Equal("hihi", r.Text);
    }
}
