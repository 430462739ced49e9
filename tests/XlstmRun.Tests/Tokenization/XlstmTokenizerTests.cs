using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;
using Xunit.Abstractions;
using XlstmRun.Text.Tokenization;

namespace XlstmRun.Tests.Tokenization;

public class XlstmTokenizerTests
{
    private readonly ITestOutputHelper _out;

    public XlstmTokenizerTests(ITestOutputHelper output) => _out = output;

    public static IEnumerable<object[]> GoldenIndices() => Enumerable.Range(0, TokTestPaths.Golden.Count).Select(i => new object[] { i });

    /// <summary>The expected decode of a golden line: its NFC form. The only non-NFC sequence in the file is e + U+0301.</summary>
    private static string ComposedByHand(string text) => text.Replace("e\u0301", "\u00e9", StringComparison.Ordinal);

    [Fact]
    public void GoldenFile_HasTheExpectedShape()
    {
        Assert.True(TokTestPaths.Golden.Count >= 20, $"only {TokTestPaths.Golden.Count} golden lines");
        Assert.Contains(TokTestPaths.Golden, g => g.Text.Contains("e\u0301", StringComparison.Ordinal));
        Assert.Contains(TokTestPaths.Golden, g => g.Text.Length == 0 && g.Ids.Length == 0);
    }

    [Theory]
    [MemberData(nameof(GoldenIndices))]
    public void Golden_EncodesToExactIds(int index)
    {
        GoldenLine g = TokTestPaths.Golden[index];
        int[] ids = TokTestPaths.Neox.Encode(g.Text);
        Assert.True(g.Ids.SequenceEqual(ids),
            $"line {g.LineNumber} {JsonValue.Create(g.Text).ToJsonString()}: expected [{string.Join(",", g.Ids)}] got [{string.Join(",", ids)}]");
    }

    [Theory]
    [MemberData(nameof(GoldenIndices))]
    public void Golden_DecodeGivesNfcText(int index)
    {
        GoldenLine g = TokTestPaths.Golden[index];
        Assert.Equal(ComposedByHand(g.Text), TokTestPaths.Neox.Decode(g.Ids));
    }

    [Fact]
    public void Golden_DecomposedLine_DecodesComposed()
    {
        GoldenLine g = TokTestPaths.Golden.First(x => x.Text.Contains("e\u0301", StringComparison.Ordinal));
        string decoded = TokTestPaths.Neox.Decode(g.Ids);
        Assert.DoesNotContain("\u0301", decoded);
        Assert.Contains("\u00e9", decoded);
        // without NFC, the decomposed text would encode differently (this is what the Nfc class is for)
        var noNfc = new XlstmTokenizer(TokenizerModel.FromArrays(TokTestPaths.NeoxModel.Tokens, TokTestPaths.NeoxModel.Merges,
            TokTestPaths.NeoxModel.TokenTypes, 0, 0, 1, nfc: false));
        Assert.False(g.Ids.SequenceEqual(noNfc.Encode(g.Text)));
    }

    [Fact]
    public void NeoxModel_Facts()
    {
        TokenizerModel m = TokTestPaths.NeoxModel;
        XlstmTokenizer t = TokTestPaths.Neox;
        Assert.Equal(50277, m.Tokens.Count);
        Assert.Equal(50277, t.VocabSize);
        Assert.Equal(50009, m.Merges.Count);
        Assert.Equal("\u0120 \u0120", m.Merges[0]);
        Assert.Equal("\u0120 t", m.Merges[1]);
        Assert.Equal("\u0120Out comes", m.Merges[^1]);
        Assert.Equal(0, m.BosId);
        Assert.Equal(0, m.EosId);
        Assert.Equal(1, m.PadId);
        Assert.True(m.Nfc);
        Assert.Equal("<|endoftext|>", m.Tokens[0]);
        Assert.Equal("<|padding|>", m.Tokens[1]);
        Assert.Equal(new string(' ', 24), m.Tokens[50254]);
        Assert.Equal("  ", m.Tokens[50276]);
        Assert.Equal(3, m.TokenTypes[0]);
        Assert.Equal(3, m.TokenTypes[1]);
        Assert.Equal(1, m.TokenTypes[2]);
        Assert.Equal(4, m.TokenTypes[50254]);
        Assert.Equal(4, m.TokenTypes[50276]);
        Assert.True(t.IsSpecial(0));
        Assert.True(t.IsSpecial(1));
        Assert.False(t.IsSpecial(2));
        Assert.False(t.IsSpecial(50270));
        Assert.False(t.IsSpecial(50300)); // padding row of the model: not a token at all
        Assert.Equal("<|endoftext|>"u8.ToArray(), t.TokenBytes(0));
        Assert.Equal(Encoding.ASCII.GetBytes(new string(' ', 24)), t.TokenBytes(50254));
        Assert.Equal(" world"u8.ToArray(), t.TokenBytes(1533)); // "Ġworld"
        Assert.Equal("\n"u8.ToArray(), t.TokenBytes(187));      // "Ċ"
        Assert.Throws<ArgumentOutOfRangeException>(() => t.TokenBytes(50277));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Decode([12092, -1]));
    }

    [Fact]
    public void ByteLevelTokens_MapBackToSingleBytes()
    {
        // the one-character byte-level tokens must map to distinct single bytes
        XlstmTokenizer t = TokTestPaths.Neox;
        var seen = new HashSet<byte>();
        for (int id = 0; id < t.VocabSize; id++)
        {
            string s = TokTestPaths.NeoxModel.Tokens[id];
            if (s.Length == 1 && TokTestPaths.NeoxModel.TokenTypes[id] == 1)
            {
                byte[] b = t.TokenBytes(id);
                Assert.Single(b);
                Assert.True(seen.Add(b[0]), $"byte {b[0]} twice");
            }
        }
        // GPT-NeoX has one-byte tokens for every byte that can occur in UTF-8: all but C0, C1 and F5..FF
        var expected = Enumerable.Range(0, 256).Where(b => b is not (0xC0 or 0xC1 or >= 0xF5)).Select(b => (byte)b);
        Assert.Equal(expected.ToHashSet(), seen);
    }

    [Theory]
    [InlineData("Hello, world!")]
    [InlineData("Grüße aus Köln – naïve café 日本語 🤖🦙 👨‍👩‍👧‍👦 🇩🇪")]
    [InlineData("𝕳𝖊𝖑𝖑𝖔 𐍈 \U0010FFFD")]
    [InlineData("tabs\t\t\tand\r\nCRLF\n\n\n\nnewlines")]
    [InlineData("text<|endoftext|>more text<|endoftext|><|endoftext|>")]
    [InlineData("<|padding|> <|endoftext|>")]
    [InlineData(" leading and trailing ")]
    [InlineData("\u00a0\u2003\u3000 unicode spaces")]
    [InlineData("ٱلْعَرَبِيَّة हिन्दी ไทย")]
    public void RoundTrip_Strings(string s)
    {
        XlstmTokenizer t = TokTestPaths.Neox;
        int[] ids = t.Encode(s);
        Assert.NotEmpty(ids);
        Assert.Equal(s, t.Decode(ids));
    }

    [Theory]
    [InlineData(' ', 1)]
    [InlineData(' ', 25)]
    [InlineData(' ', 100)]
    [InlineData(' ', 1000)]
    [InlineData('\t', 300)]
    [InlineData('\n', 300)]
    [InlineData('=', 300)]
    [InlineData('-', 513)]
    [InlineData('a', 1000)]
    public void RoundTrip_LongRuns(char c, int count)
    {
        XlstmTokenizer t = TokTestPaths.Neox;
        string s = "x" + new string(c, count) + "y";
        int[] ids = t.Encode(s);
        Assert.Equal(s, t.Decode(ids));
        Assert.True(ids.Length < s.Length || count == 1, "a long run should merge into fewer tokens than chars");
    }

    [Fact]
    public void Encode_SpaceRunsUseAddedTokens()
    {
        // HF splits added tokens (24..2 raw spaces, ids 50254..50276) before pre-tokenization, longest first
        XlstmTokenizer t = TokTestPaths.Neox;
        Assert.Equal(new[] { 50254, 50254 }, t.Encode(new string(' ', 48)));
        Assert.Equal(new[] { 50276 }, t.Encode("  "));
        Assert.Equal(new[] { 50275 }, t.Encode("   "));
        Assert.Equal(new[] { 0 }, t.Encode("<|endoftext|>"));
        Assert.Empty(t.Encode(""));
    }

    [Fact]
    public void Encode_LoneSurrogate_IsReplacementChar()
    {
        XlstmTokenizer t = TokTestPaths.Neox;
        Assert.Equal(t.Encode("a\uFFFDb"), t.Encode("a\ud800b"));
        Assert.Equal("a\uFFFDb", t.Decode(t.Encode("a\udc00b")));
        Assert.Equal("\U0001F916", t.Decode(t.Encode("\U0001F916"))); // a valid pair is untouched
    }

    [Fact]
    public void FromArrays_GivesIdenticalIdsOnGolden()
    {
        TokenizerModel m = TokTestPaths.NeoxModel;
        // copies, as read back from GGUF metadata
        var tokens = m.Tokens.ToList();
        var merges = m.Merges.ToList();
        var types = m.TokenTypes.ToList();
        var back = TokenizerModel.FromArrays(tokens, merges, types, m.BosId, m.EosId, m.PadId, m.Nfc);
        Assert.Equal(m.Tokens, back.Tokens);
        Assert.Equal(m.Merges, back.Merges);
        Assert.Equal(m.TokenTypes, back.TokenTypes);
        var t = new XlstmTokenizer(back);
        foreach (GoldenLine g in TokTestPaths.Golden)
        {
            Assert.True(g.Ids.SequenceEqual(t.Encode(g.Text)), $"line {g.LineNumber}");
            Assert.Equal(ComposedByHand(g.Text), t.Decode(g.Ids));
        }
    }

    [Fact]
    public void FromArrays_DropsTrailingUnusedPaddingRows()
    {
        TokenizerModel m = TokTestPaths.NeoxModel;
        var tokens = m.Tokens.ToList();
        var types = m.TokenTypes.ToList();
        for (int id = tokens.Count; id < 50304; id++)
        {
            tokens.Add($"[PAD{id}]");
            types.Add(5);
        }
        var back = TokenizerModel.FromArrays(tokens, m.Merges, types, 0, 0, 1, true);
        Assert.Equal(50277, back.Tokens.Count);
        Assert.Equal(50277, new XlstmTokenizer(back).VocabSize);
    }

    [Fact]
    public void FromArrays_RejectsInconsistentData()
    {
        TokenizerModel m = TokTestPaths.NeoxModel;
        Assert.Throws<InvalidDataException>(() => TokenizerModel.FromArrays(m.Tokens, m.Merges, m.TokenTypes.Take(10).ToList(), 0, 0, 1, true));
        Assert.Throws<InvalidDataException>(() => TokenizerModel.FromArrays(m.Tokens, m.Merges, m.TokenTypes, 60000, 0, 1, true));
        Assert.Throws<InvalidDataException>(() => TokenizerModel.FromArrays(m.Tokens, m.Merges.Append("Ġ nosuchtoken").ToList(), m.TokenTypes, 0, 0, 1, true));
        Assert.Throws<InvalidDataException>(() => TokenizerModel.FromArrays(m.Tokens, m.Merges.Append("Ġt").ToList(), m.TokenTypes, 0, 0, 1, true));
        var badTypes = m.TokenTypes.ToList();
        badTypes[5] = 6;
        Assert.Throws<InvalidDataException>(() => TokenizerModel.FromArrays(m.Tokens, m.Merges, badTypes, 0, 0, 1, true));
    }

    [Fact]
    public void FromHuggingFaceJson_MergesAsPairs_SameModel()
    {
        JsonNode root = JsonNode.Parse(TokTestPaths.NeoxJsonText)!;
        JsonArray merges = root["model"]!["merges"]!.AsArray();
        var pairs = new JsonArray();
        foreach (JsonNode? m in merges)
        {
            string[] parts = m!.GetValue<string>().Split(' ');
            pairs.Add((JsonNode)new JsonArray(parts[0], parts[1]));
        }
        root["model"]!["merges"] = pairs;
        TokenizerModel fromPairs = TokenizerModel.FromHuggingFaceJson(root.ToJsonString());
        Assert.Equal(TokTestPaths.NeoxModel.Merges, fromPairs.Merges);
        Assert.Equal(TokTestPaths.NeoxModel.Tokens, fromPairs.Tokens);
    }

    [Fact]
    public void FromHuggingFaceJson_LoadsQuickly()
    {
        string json = TokTestPaths.NeoxJsonText;
        new XlstmTokenizer(TokenizerModel.FromHuggingFaceJson(json)); // warm-up (JIT)
        var sw = Stopwatch.StartNew();
        var t = new XlstmTokenizer(TokenizerModel.FromHuggingFaceJson(json));
        sw.Stop();
        _out.WriteLine($"parse + build: {sw.Elapsed.TotalMilliseconds:F1} ms");
        Assert.Equal(new[] { 12092, 1533, 2 }, t.Encode("Hello world!"));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(2), $"load took {sw.Elapsed}");
    }
}
