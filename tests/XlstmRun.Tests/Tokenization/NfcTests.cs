using Xunit;
using XlstmRun.Text.Tokenization;

namespace XlstmRun.Tests.Tokenization;

public class NfcTests
{
    [Theory]
    [InlineData("e\u0301", "\u00e9")]                         // e + combining acute -> é
    [InlineData("A\u030a", "\u00c5")]                         // A + ring above -> Å
    [InlineData("\u212b", "\u00c5")]                          // ANGSTROM SIGN (singleton) -> Å
    [InlineData("\u2126", "\u03a9")]                          // OHM SIGN (singleton) -> Greek capital omega
    [InlineData("\u1100\u1161", "\uac00")]                    // Hangul L + V -> 가
    [InlineData("\u1100\u1161\u11a8", "\uac01")]              // L + V + T -> 각
    [InlineData("\uac00\u11a8", "\uac01")]                    // LV + T -> 각
    [InlineData("\u0958", "\u0915\u093c")]                    // DEVANAGARI QA: composition exclusion, stays decomposed
    [InlineData("\u0915\u093c", "\u0915\u093c")]              // ... and is not composed from its parts
    [InlineData("\u0344", "\u0308\u0301")]                    // non-starter decomposition
    [InlineData("s\u0307\u0323", "\u1e69")]                   // reordered (dot below ccc 220 before dot above 230), then composed
    [InlineData("s\u0323\u0307", "\u1e69")]
    [InlineData("\u1e0b\u0323", "\u1e0d\u0307")]              // ḋ + dot below -> ḍ + dot above
    [InlineData("A\u0301\u0316", "\u00c1\u0316")]             // acute composes across grave-below (lower ccc, reordered first)
    [InlineData("a\u0301\u0301", "\u00e1\u0301")]             // second acute is blocked by the first
    [InlineData("\U0001D15E", "\U0001D157\U0001D165")]        // MUSICAL SYMBOL HALF NOTE: exclusion (non-BMP)
    [InlineData("\U00011099\U000110BA", "\U0001109A")]        // KAITHI: non-BMP composite
    [InlineData("caf\u00e9 na\u00efve \uac01", "caf\u00e9 na\u00efve \uac01")]  // already NFC
    public void Normalize_HandCheckedPairs(string input, string expected)
    {
        Assert.Equal(Hex(expected), Hex(Nfc.Normalize(input)));
    }

    [Theory]
    [InlineData("plain ASCII text")]
    [InlineData("caf\u00e9 \u65e5\u672c\u8a9e \U0001F916")]
    [InlineData("")]
    public void Normalize_AlreadyNfc_ReturnsSameInstance(string s)
    {
        Assert.Same(s, Nfc.Normalize(s));
        Assert.True(Nfc.IsQuickNfc(s));
    }

    [Fact]
    public void QuickCheck_FlagsDecomposedInput()
    {
        Assert.False(Nfc.IsQuickNfc("e\u0301"));
        Assert.False(Nfc.IsQuickNfc("\u0958"));
        Assert.False(Nfc.IsQuickNfc("\u1100\u1161"));
    }

    [Fact]
    public void LoneSurrogates_PassThrough()
    {
        Assert.Equal(Hex("a\ud800\u00e9\udc00"), Hex(Nfc.Normalize("a\ud800e\u0301\udc00")));
    }

    [Fact]
    public void StringNormalize_IsNoOpUnderInvariantGlobalization()
    {
        // documents why Nfc exists: if this starts failing, the runtime composes by itself
        Assert.Equal("e\u0301", "e\u0301".Normalize(System.Text.NormalizationForm.FormC));
    }

    private static string Hex(string s) => string.Join(" ", s.Select(c => ((int)c).ToString("X4")));
}
