using System.Text;

namespace XlstmRun.Text.Tokenization;

/// <summary>
/// Turns generated ids into text one id at a time without ever splitting a UTF-8 character: bytes of an incomplete
/// character are held until the next token completes it. Works on raw token bytes (no length limit per token).
/// The concatenation of all <see cref="Push"/> results and <see cref="Flush"/> equals <see cref="XlstmTokenizer.Decode"/>
/// of the same ids. Not thread-safe; use one instance per generation stream.
/// </summary>
public sealed class StreamingDetokenizer
{
    private readonly XlstmTokenizer _tokenizer;
    private readonly bool _skipSpecial;
    private readonly Decoder _decoder = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
    private char[] _chars = new char[256];

    /// <param name="tokenizer">The tokenizer whose ids are pushed.</param>
    /// <param name="skipSpecialTokens">When true, control tokens (<see cref="XlstmTokenizer.IsSpecial"/>) produce no text.
    /// Default false: they give their literal text, like <see cref="XlstmTokenizer.Decode"/>.</param>
    public StreamingDetokenizer(XlstmTokenizer tokenizer, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
        _skipSpecial = skipSpecialTokens;
    }

    /// <summary>Adds one id; returns the text that became complete (possibly empty).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is outside the tokenizer's vocabulary.</exception>
    public string Push(int id)
    {
        ReadOnlySpan<byte> bytes = _tokenizer.GetTokenBytes(id);
        if (bytes.IsEmpty || (_skipSpecial && _tokenizer.IsSpecial(id)))
        {
            return string.Empty;
        }
        return Run(bytes, flush: false);
    }

    /// <summary>Returns whatever is still held (an incomplete character becomes U+FFFD) and resets the state.</summary>
    public string Flush() => Run(ReadOnlySpan<byte>.Empty, flush: true);

    /// <summary>Drops any held bytes.</summary>
    public void Reset() => _decoder.Reset();

    private string Run(ReadOnlySpan<byte> bytes, bool flush)
    {
        int max = _decoder.GetCharCount(bytes, flush) + 4; // counts the held bytes too; +4 is slack
        if (_chars.Length < max)
        {
            _chars = new char[Math.Max(max, _chars.Length * 2)];
        }
        int n = _decoder.GetChars(bytes, _chars, flush);
        return n == 0 ? string.Empty : new string(_chars, 0, n);
    }
}
