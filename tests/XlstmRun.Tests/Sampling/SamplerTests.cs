using XlstmRun.Formats;
using XlstmRun.Text.Sampling;
using Xunit;

namespace XlstmRun.Tests.Sampling;

/// <summary>The sampler steps on hand-made distributions, the penalty arithmetic, the PRNG and the whole chain.</summary>
public class SamplerTests
{
    private static Candidates Cands(params double[] probs)
    {
        var c = new Candidates();
        c.Set(Enumerable.Range(0, probs.Length).ToArray(), probs.Select(p => (float)Math.Log(p)).ToArray());
        return c;
    }

    private static Candidates Logits(params float[] logits)
    {
        var c = new Candidates();
        c.Fill(logits);
        return c;
    }

    [Fact]
    public void TopKKeepsTheKLargestSorted()
    {
        var c = Logits(1f, 5f, 3f, 4f, 2f);
        SamplerSteps.TopK(c, 2);
        Assert.Equal([1, 3], c.Ids.ToArray());
        Assert.Equal([5f, 4f], c.Logits.ToArray());
        Assert.True(c.Sorted);
    }

    [Fact]
    public void TopKBreaksTiesByLowerId()
    {
        var c = Logits(2f, 1f, 2f, 2f, 0f);
        SamplerSteps.TopK(c, 2);
        Assert.Equal([0, 2], c.Ids.ToArray());
    }

    [Fact]
    public void TopKZeroIsOffAndLargeKKeepsAll()
    {
        var c = Logits(1f, 5f, 3f);
        SamplerSteps.TopK(c, 0);
        Assert.Equal([0, 1, 2], c.Ids.ToArray());
        SamplerSteps.TopK(c, 10);
        Assert.Equal([1, 2, 0], c.Ids.ToArray());
    }

    [Fact]
    public void TopKOnALargeVocabularyMatchesAFullSort()
    {
        var rng = new Rng(3);
        var logits = Enumerable.Range(0, 50_000).Select(_ => (float)(rng.NextDouble() * 20 - 10)).ToArray();
        var c = Logits(logits);
        SamplerSteps.TopK(c, 40);
        var want = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ThenBy(i => i).Take(40).ToArray();
        Assert.Equal(want, c.Ids.ToArray());
    }

    [Theory]
    [InlineData(0.40f, new[] { 2 })]        // 0.5 ≥ 0.4 at the first token
    [InlineData(0.75f, new[] { 2, 0 })]     // 0.5 + 0.3 = 0.8 ≥ 0.75
    [InlineData(0.81f, new[] { 2, 0, 3 })]  // 0.95 ≥ 0.81
    [InlineData(0.99f, new[] { 2, 0, 3, 1 })]
    [InlineData(1.00f, new[] { 0, 1, 2, 3 })] // off: untouched, unsorted
    public void TopPKeepsTheSmallestSetReachingP(float p, int[] expected)
    {
        var c = Cands(0.3, 0.05, 0.5, 0.15);
        SamplerSteps.TopP(c, p);
        Assert.Equal(expected, c.Ids.ToArray());
    }

    [Theory]
    [InlineData(0.00f, new[] { 0, 1, 2, 3 })] // off
    [InlineData(0.05f, new[] { 0, 1, 2, 3 })] // threshold 0.025: all pass
    [InlineData(0.20f, new[] { 0, 2, 3 })]    // threshold 0.10: 0.05 dropped
    [InlineData(0.50f, new[] { 0, 2 })]       // threshold 0.25
    [InlineData(0.70f, new[] { 2 })]          // threshold 0.35
    [InlineData(1.00f, new[] { 2 })]          // only the most likely
    public void MinPKeepsTokensAtLeastPTimesTheMostLikelyInOrder(float p, int[] expected)
    {
        var c = Cands(0.3, 0.05, 0.5, 0.15);
        SamplerSteps.MinP(c, p);
        Assert.Equal(expected, c.Ids.ToArray());
    }

    [Fact]
    public void TemperatureDividesLogitsAndZeroKeepsTheArgmax()
    {
        var c = Logits(1f, 4f, -2f);
        SamplerSteps.Temperature(c, 2f);
        Assert.Equal([0.5f, 2f, -1f], c.Logits.ToArray());
        SamplerSteps.Temperature(c, 0f);
        Assert.Equal([1], c.Ids.ToArray());
    }

    [Fact]
    public void PenaltiesDividePositiveAndMultiplyNegativeLogits()
    {
        float[] l = [2f, -2f, 0.5f, 3f, 0f];
        var counts = new Dictionary<int, int> { [0] = 1, [1] = 2, [2] = 1, [4] = 3, [99] = 1 };
        SamplerSteps.ApplyPenalties(l, counts, repeat: 2f, frequency: 0.1f, presence: 0.5f);
        Assert.Equal(2f / 2 - (0.1f + 0.5f), l[0], 5);
        Assert.Equal(-2f * 2 - (0.2f + 0.5f), l[1], 5);
        Assert.Equal(0.5f / 2 - (0.1f + 0.5f), l[2], 5);
        Assert.Equal(3f, l[3]);                          // not in the window
        Assert.Equal(0f * 2 - (0.3f + 0.5f), l[4], 5);   // zero counts as "not positive": multiplied
    }

    [Fact]
    public void RepeatPenaltyChangesTheGreedyChoiceAndOnlyWithinTheWindow()
    {
        float[] logits = [1f, 3f, 2.5f, 0f];
        var s = new Sampler(new SamplingParams { Temperature = 0, RepeatPenalty = 1.5f, RepeatLastN = 2 }, 4);
        Assert.Equal(1, s.Sample(logits));
        s.Accept(1);                       // 3 / 1.5 = 2 < 2.5
        Assert.Equal(2, s.Sample(logits));
        s.Accept(3);
        s.Accept(3);                       // id 1 left the 2-token window
        Assert.Equal(1, s.Sample(logits));
        Assert.Equal(new Dictionary<int, int> { [3] = 2 }, s.WindowCounts);
    }

    [Fact]
    public void RngMatchesTheReferenceXoshiro256StarStar()
    {
        // values from an independent Python implementation (SplitMix64 seeding, then xoshiro256**)
        var r = new Rng(0);
        Assert.Equal(0x99ec5f36cb75f2b4UL, r.NextUInt64());
        Assert.Equal(0xbf6e1f784956452aUL, r.NextUInt64());
        Assert.Equal(0x1a5f849d4933e6e0UL, r.NextUInt64());
        r = new Rng(42);
        Assert.Equal(0x15780b2e0c2ec716UL, r.NextUInt64());
        Assert.Equal(0x6104d9866d113a7eUL, r.NextUInt64());
    }

    private static float[] RandomLogits(int n, ulong seed)
    {
        var r = new Rng(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 6)).ToArray();
    }

    private static int[] Sequence(SamplingParams p, float[] logits, int n)
    {
        var s = new Sampler(p, logits.Length);
        var res = new int[n];
        for (int i = 0; i < n; i++)
        {
            res[i] = s.Sample(logits);
            s.Accept(res[i]);
        }
        return res;
    }

    [Fact]
    public void AFixedSeedRepeatsAndDifferentSeedsDiffer()
    {
        var logits = RandomLogits(1000, 1);
        var p = new SamplingParams { Temperature = 1.0f, TopK = 0, TopP = 1, MinP = 0, Seed = 1234 };
        var a = Sequence(p, logits, 64);
        var b = Sequence(p, logits, 64);
        var c = Sequence(p with { Seed = 1235 }, logits, 64);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.True(a.Distinct().Count() > 10, "a near-flat distribution should give many different tokens");
    }

    [Fact]
    public void TemperatureZeroIsArgmaxWhateverTheSeed()
    {
        var logits = RandomLogits(500, 2);
        int argmax = Array.IndexOf(logits, logits.Max());
        foreach (ulong seed in new ulong[] { 0, 1, 99 })
        {
            var s = new Sampler(new SamplingParams { Temperature = 0, Seed = seed }, logits.Length);
            for (int i = 0; i < 5; i++) Assert.Equal(argmax, s.Sample(logits));
        }
    }

    [Fact]
    public void DrawFrequenciesFollowTheProbabilities()
    {
        double[] probs = [0.5, 0.3, 0.15, 0.05];
        var logits = probs.Select(p => (float)Math.Log(p)).ToArray();
        var s = new Sampler(new SamplingParams { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = 7 }, 4);
        var counts = new int[4];
        const int N = 40_000;
        for (int i = 0; i < N; i++) counts[s.Sample(logits)]++;
        for (int i = 0; i < 4; i++) Assert.InRange(counts[i] / (double)N, probs[i] - 0.015, probs[i] + 0.015);
    }

    [Fact]
    public void TheChainOnlyDrawsWhatTopKTopPAndMinPKeep()
    {
        // probs 0.4, 0.25, 0.2, 0.1, 0.05: top-k 4 drops id 4; top-p 0.8 keeps 0.4+0.25+0.2 (renormalised over 4:
        // 0.421, 0.263, 0.211 → 0.895 ≥ 0.8 at the third); min-p 0.6 drops 0.2 (< 0.6·0.4 = 0.24).
        double[] probs = [0.4, 0.25, 0.2, 0.1, 0.05];
        var logits = probs.Select(p => (float)Math.Log(p)).ToArray();
        var s = new Sampler(new SamplingParams { Temperature = 1, TopK = 4, TopP = 0.8f, MinP = 0.6f, Seed = 11 }, 5);
        var seen = new HashSet<int>();
        for (int i = 0; i < 2000; i++) seen.Add(s.Sample(logits));
        Assert.Equal(new HashSet<int> { 0, 1 }, seen);
    }

    [Fact]
    public void IdsBeyondTheValidVocabularyAreNeverSampled()
    {
        // 16 logits (the model's padded vocabulary) but only 10 valid ids; the padding rows hold the largest values
        var logits = new float[16];
        for (int i = 10; i < 16; i++) logits[i] = 50f;
        foreach (var p in new[] { new SamplingParams { Temperature = 0 }, new SamplingParams { Temperature = 2, TopK = 0, TopP = 1, MinP = 0 } })
        {
            var s = new Sampler(p, 10);
            for (int i = 0; i < 500; i++) Assert.InRange(s.Sample(logits), 0, 9);
        }
    }

    [Fact]
    public void ValidateNamesTheBadValue()
    {
        var e = Assert.Throws<BadInputException>(() => new SamplingParams { TopP = 1.5f }.Validate(n => "--" + n));
        Assert.Contains("--top_p", e.Message);
        Assert.Throws<BadInputException>(() => new SamplingParams { Temperature = -1 }.Validate());
        Assert.Throws<BadInputException>(() => new SamplingParams { RepeatPenalty = 0 }.Validate());
        Assert.Throws<BadInputException>(() => new SamplingParams { RepeatLastN = -2 }.Validate());
        Assert.Throws<BadInputException>(() => new SamplingParams { TopK = -1 }.Validate());
    }
}
