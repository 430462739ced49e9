using System.Buffers;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace XlstmRun.Text.Tokenization;

/// <summary>
/// Byte-level BPE tokenizer (GPT-NeoX-20B family, as used by xLSTM 7B) on top of Microsoft.ML.Tokenizers'
/// <see cref="BpeTokenizer"/>; ids match Hugging Face tokenizers. Encoding adds no BOS: prepend <see cref="BosId"/> yourself.
/// Decoding is done here from raw token bytes (not by the library). Thread-safe after construction.
/// </summary>
public sealed partial class XlstmTokenizer
{
    // GPT-2 / Hugging Face ByteLevel(use_regex=true) split. [GeneratedRegex] is AOT-friendly.
    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    private static partial Regex Gpt2Split();

    private readonly BpeTokenizer _bpe;
    private readonly byte[][] _bytes;
    private readonly int[] _types;

    public XlstmTokenizer(TokenizerModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        Model = model;
        int n = model.Tokens.Count;
        _types = model.TokenTypes.ToArray();
        _bytes = new byte[n][];

        // BPE vocabulary: normal tokens first, then added tokens whose text is not already there (each string and id once).
        var vocab = new Dictionary<string, int>(n, StringComparer.Ordinal);
        for (int id = 0; id < n; id++)
        {
            if (_types[id] == TokenizerModel.TypeNormal)
            {
                vocab.TryAdd(model.Tokens[id], id);
            }
        }
        // All added tokens (special or not) are split out before pre-tokenization, as Hugging Face does. Longest
        // first: the library matches them with a regex alternation (first alternative wins), HF matches leftmost-longest.
        var added = new List<(string Content, int Id)>();
        for (int id = 0; id < n; id++)
        {
            int t = _types[id];
            string s = model.Tokens[id];
            switch (t)
            {
                case TokenizerModel.TypeNormal:
                    _bytes[id] = ByteLevelAlphabet.TokenToBytes(s);
                    break;
                case TokenizerModel.TypeControl:
                case TokenizerModel.TypeUserDefined:
                    _bytes[id] = Encoding.UTF8.GetBytes(s);
                    vocab.TryAdd(s, id);
                    added.Add((s, id));
                    break;
                default:
                    _bytes[id] = []; // unused id (gap): never produced by Encode
                    break;
            }
        }
        var special = new Dictionary<string, int>(added.Count, StringComparer.Ordinal);
        foreach (var (content, id) in added.OrderByDescending(a => a.Content.Length).ThenBy(a => a.Id))
        {
            special.TryAdd(content, id);
        }

        try
        {
            _bpe = BpeTokenizer.Create(new BpeOptions(vocab)
            {
                Merges = model.Merges,
                SpecialTokens = special.Count > 0 ? special : null,
                ByteLevel = true,
                PreTokenizer = new RegexPreTokenizer(Gpt2Split(), special.Count > 0 ? special : null),
            });
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            throw new InvalidDataException($"tokenizer: cannot build the BPE tokenizer: {e.Message}", e);
        }
    }

    /// <summary>The data this tokenizer was built from.</summary>
    public TokenizerModel Model { get; }

    /// <summary>Number of token ids the tokenizer knows (50,277 for GPT-NeoX; the model's embedding has more rows).</summary>
    public int VocabSize => _bytes.Length;

    public int BosId => Model.BosId;

    public int EosId => Model.EosId;

    public int? PadId => Model.PadId;

    /// <summary>Encodes text to ids (NFC first when the model asks for it; lone surrogates count as U+FFFD). Added tokens
    /// written literally in the text (e.g. "&lt;|endoftext|&gt;") are recognised. No BOS is added.</summary>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0)
        {
            return [];
        }
        text = ReplaceLoneSurrogates(text);
        if (Model.Nfc)
        {
            text = Nfc.Normalize(text);
        }
        IReadOnlyList<int> ids = _bpe.EncodeToIds(text, considerPreTokenization: true, considerNormalization: false);
        var result = new int[ids.Count];
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = ids[i];
        }
        return result;
    }

    /// <summary>Lone surrogates become U+FFFD (what UTF-8 encoding does; the library would emit 3 invalid bytes instead).</summary>
    private static string ReplaceLoneSurrogates(string text)
    {
        int i = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (i < 0)
        {
            return text;
        }
        char[]? copy = null;
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(c))
            {
                copy ??= text.ToCharArray();
                copy[i] = '\uFFFD';
            }
        }
        return copy is null ? text : new string(copy);
    }

    /// <summary>Decodes ids to text, skipping nothing (special tokens give their text). Invalid UTF-8 becomes U+FFFD.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside 0..VocabSize-1.</exception>
    public string Decode(ReadOnlySpan<int> ids)
    {
        int total = 0;
        foreach (int id in ids)
        {
            total += GetTokenBytes(id).Length;
        }
        byte[] rented = ArrayPool<byte>.Shared.Rent(Math.Max(total, 1));
        try
        {
            int pos = 0;
            foreach (int id in ids)
            {
                ReadOnlySpan<byte> b = _bytes[id];
                b.CopyTo(rented.AsSpan(pos));
                pos += b.Length;
            }
            return Encoding.UTF8.GetString(rented, 0, total);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>The raw bytes a token stands for (byte-level tokens mapped back through GPT-2's table; added tokens as UTF-8). A copy.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is outside 0..VocabSize-1.</exception>
    public byte[] TokenBytes(int id) => GetTokenBytes(id).ToArray();

    /// <summary>The raw bytes a token stands for, without copying.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is outside 0..VocabSize-1.</exception>
    public ReadOnlySpan<byte> GetTokenBytes(int id)
    {
        if ((uint)id >= (uint)_bytes.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the tokenizer's vocabulary (0..{_bytes.Length - 1})");
        }
        return _bytes[id];
    }

    /// <summary>True for control tokens (special added tokens such as &lt;|endoftext|&gt;, &lt;|padding|&gt;); false for
    /// ordinary tokens, non-special added tokens (GPT-NeoX's raw-space runs) and ids outside the vocabulary.</summary>
    public bool IsSpecial(int id) => (uint)id < (uint)_types.Length && _types[id] == TokenizerModel.TypeControl;
}
