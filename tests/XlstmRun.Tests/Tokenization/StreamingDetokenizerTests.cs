using System.Text;
using Xunit;
using XlstmRun.Text.Tokenization;

namespace XlstmRun.Tests.Tokenization;

public class StreamingDetokenizerTests
{
    private static (string Text, List<string> Pieces) Stream(XlstmTokenizer t, IEnumerable<int> ids, bool skipSpecial = false)
    {
        var d = new StreamingDetokenizer(t, skipSpecial);
        var pieces = new List<string>();
        foreach (int id in ids)
        {
            pieces.Add(d.Push(id));
        }
        pieces.Add(d.Flush());
        return (string.Concat(pieces), pieces);
    }

    [Fact]
    public void Golden_TokenByToken_EqualsFullDecode_WithoutReplacementChars()
    {
        XlstmTokenizer t = TokTestPaths.Neox;
        foreach (GoldenLine g in TokTestPaths.Golden)
        {
            var (text, pieces) = Stream(t, g.Ids);
            Assert.Equal(t.Decode(g.Ids), text);
            Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
        }
    }

    [Fact]
    public void Golden_ContainsTokensThatSplitUtf8Characters()
    {
        // guards the test above: it only means something if some golden tokens are incomplete UTF-8 on their own
        XlstmTokenizer t = TokTestPaths.Neox;
        int partial = TokTestPaths.Golden.SelectMany(g => g.Ids)
            .Count(id => Encoding.UTF8.GetString(t.TokenBytes(id)).Contains('\uFFFD'));
        Assert.True(partial > 5, $"only {partial} partial-UTF-8 tokens in golden");
    }

    [Fact]
    public void Emoji_SplitAcrossTokens_IsHeldUntilComplete()
    {
        XlstmTokenizer t = TokTestPaths.Neox;
        string s = "🤖🦙😀";
        int[] ids = t.Encode(s);
        Assert.True(ids.Length > 3, "expected the emoji to be split over several byte-level tokens");
        var d = new StreamingDetokenizer(t);
        var emitted = new StringBuilder();
        foreach (int id in ids)
        {
            string piece = d.Push(id);
            Assert.DoesNotContain('\uFFFD', piece);
            // every emitted piece is whole characters: never a lone surrogate
            for (int i = 0; i < piece.Length; i++)
            {
                if (char.IsHighSurrogate(piece[i]))
                {
                    Assert.True(i + 1 < piece.Length && char.IsLowSurrogate(piece[i + 1]));
                    i++;
                }
                else
                {
                    Assert.False(char.IsLowSurrogate(piece[i]));
                }
            }
            emitted.Append(piece);
        }
        Assert.Equal("", d.Flush());
        Assert.Equal(s, emitted.ToString());

        // feed the raw bytes of 🤖 (F0 9F A4 96) one byte-token at a time: nothing until the 4th byte
        int[] byteIds = new byte[] { 0xF0, 0x9F, 0xA4, 0x96 }.Select(ByteTokenId).ToArray();
        var d2 = new StreamingDetokenizer(t);
        Assert.Equal("", d2.Push(byteIds[0]));
        Assert.Equal("", d2.Push(byteIds[1]));
        Assert.Equal("", d2.Push(byteIds[2]));
        Assert.Equal("🤖", d2.Push(byteIds[3]));
    }

    [Fact]
    public void IncompleteTail_FlushesAsReplacementChar()
    {
        XlstmTokenizer t = TokTestPaths.Neox;
        var d = new StreamingDetokenizer(t);
        Assert.Equal("a", d.Push(ByteTokenId((byte)'a')));
        Assert.Equal("", d.Push(ByteTokenId(0xF0)));
        Assert.Equal("", d.Push(ByteTokenId(0x9F)));
        Assert.Equal("\uFFFD", d.Flush());
        Assert.Equal("b", d.Push(ByteTokenId((byte)'b'))); // state was reset by Flush
        // and the same as the full decode
        int[] ids = [ByteTokenId((byte)'a'), ByteTokenId(0xF0), ByteTokenId(0x9F)];
        Assert.Equal(t.Decode(ids), Stream(t, ids).Text);
    }

    [Fact]
    public void TokenLongerThan128Chars_Streams()
    {
        XlstmTokenizer t = TokTestPaths.Neox;
        IReadOnlyList<string> tokens = TokTestPaths.NeoxModel.Tokens;
        int longest = Enumerable.Range(0, tokens.Count).MaxBy(i => tokens[i].Length);
        Assert.True(tokens[longest].Length > 128, $"longest token has {tokens[longest].Length} chars");
        Assert.True(t.TokenBytes(longest).Length > 128);

        int[] ids = [.. t.Encode("é"), longest, .. t.Encode("🤖 end"), longest];
        var (text, pieces) = Stream(t, ids);
        Assert.Equal(t.Decode(ids), text);
        Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
        Assert.Contains(pieces, p => p.Length > 128);

        // an encoded string that produces a >128-byte token: " " followed by 256 dashes
        string dashes = "x " + new string('-', 256);
        int[] dashIds = t.Encode(dashes);
        Assert.Contains(dashIds, id => t.TokenBytes(id).Length > 128);
        Assert.Equal(dashes, Stream(t, dashIds).Text);
    }

    [Fact]
    public void SpecialTokens_GiveTextByDefault_AndCanBeSkipped()
    {
        XlstmTokenizer t = TokTestPaths.Neox;
        int[] ids = t.Encode("Hi<|endoftext|>there");
        Assert.Contains(0, ids);
        Assert.Equal("Hi<|endoftext|>there", Stream(t, ids).Text);
        Assert.Equal("Hithere", Stream(t, ids, skipSpecial: true).Text);
        // raw-space added tokens are not special: they are text
        Assert.Equal("a" + new string(' ', 24) + "b", Stream(t, [t.Encode("a")[0], 50254, t.Encode("b")[0]], skipSpecial: true).Text);
    }

    private static int ByteTokenId(byte b)
    {
        XlstmTokenizer t = TokTestPaths.Neox;
        IReadOnlyList<string> tokens = TokTestPaths.NeoxModel.Tokens;
        for (int id = 0; id < tokens.Count; id++)
        {
            if (tokens[id].Length == 1 && TokTestPaths.NeoxModel.TokenTypes[id] == 1)
            {
                byte[] bytes = t.TokenBytes(id);
                if (bytes.Length == 1 && bytes[0] == b)
                {
                    return id;
                }
            }
        }
        throw new InvalidOperationException($"no token for byte {b:X2}");
    }
}
