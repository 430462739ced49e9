using XlstmRun.Text.Sampling;
using Xunit;

namespace XlstmRun.Tests.Sampling;

public class StopStringsTests
{
    private static (string Printed, bool Stopped) Feed(StopStrings s, params string[] pieces)
    {
        var printed = "";
        foreach (var p in pieces)
        {
            printed += s.Push(p);
            if (s.Stopped) return (printed, true);
        }
        return (printed + s.Flush(), false);
    }

    [Fact]
    public void AStopStringSpanningPiecesIsNeitherPrintedNorPartlyPrinted()
    {
        var s = new StopStrings(["World"]);
        Assert.Equal("Hello ", s.Push("Hello Wo"));   // "Wo" is held
        Assert.False(s.Stopped);
        Assert.Equal("", s.Push("rl"));
        Assert.Equal("", s.Push("d and more"));
        Assert.True(s.Stopped);
        Assert.Equal("World", s.Matched);
        Assert.Equal("", s.Flush());
    }

    [Fact]
    public void AHeldPrefixThatDoesNotMatchIsReleased()
    {
        var s = new StopStrings(["World"]);
        Assert.Equal("Hello ", s.Push("Hello W"));
        Assert.Equal("Wow", s.Push("ow"));
        Assert.Equal(" ", s.Push(" W"));
        Assert.Equal("W", s.Flush());                   // generation ended: the held text was not a stop string
        Assert.False(s.Stopped);
    }

    [Fact]
    public void TextBeforeTheStopInTheSamePieceIsPrinted()
    {
        var (printed, stopped) = Feed(new StopStrings(["\n\n"]), "one", " two\n", "\nthree");
        Assert.True(stopped);
        Assert.Equal("one two", printed);
    }

    [Fact]
    public void TheEarliestOfSeveralStopStringsWins()
    {
        var s = new StopStrings(["cd", "b"]);
        Assert.Equal("a", s.Push("abcd"));
        Assert.Equal("b", s.Matched);
    }

    [Fact]
    public void WithoutStopStringsEverythingPassesAtOnce()
    {
        var s = new StopStrings([]);
        Assert.Equal("abc", s.Push("abc"));
        Assert.Equal("", s.Flush());
    }

    [Fact]
    public void RandomSplitsGiveTheTextBeforeTheFirstStop()
    {
        var rng = new Rng(5);
        string[] stops = ["<end>", "ab", "xyz"];
        for (int trial = 0; trial < 500; trial++)
        {
            // random text over a small alphabet so stop strings and near-misses are common
            const string alphabet = "abxyz<end> ";
            var chars = new char[(int)(rng.NextUInt64() % 40)];
            for (int i = 0; i < chars.Length; i++) chars[i] = alphabet[(int)(rng.NextUInt64() % (ulong)alphabet.Length)];
            string text = new(chars);
            var pieces = new List<string>();
            for (int i = 0; i < text.Length;)
            {
                int n = 1 + (int)(rng.NextUInt64() % 4);
                n = Math.Min(n, text.Length - i);
                pieces.Add(text.Substring(i, n));
                i += n;
            }
            var (printed, stopped) = Feed(new StopStrings(stops), pieces.ToArray());
            int first = stops.Select(st => text.IndexOf(st, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
            Assert.Equal(first >= 0, stopped);
            Assert.Equal(first >= 0 ? text[..first] : text, printed);
        }
    }
}
