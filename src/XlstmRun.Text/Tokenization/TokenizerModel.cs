using System.Text.Json;

namespace XlstmRun.Text.Tokenization;

/// <summary>
/// The data of a byte-level BPE tokenizer (GPT-2 / GPT-NeoX style), independent of any file format.
/// Index = token id. Byte-level tokens are stored in their "Ġ" form; added tokens (<c>&lt;|endoftext|&gt;</c>, the
/// raw-space runs of GPT-NeoX) are stored as their literal content.
/// </summary>
public sealed class TokenizerModel
{
    /// <summary>GGUF token types (tokenizer.ggml.token_type).</summary>
    public const int TypeNormal = 1, TypeUnknown = 2, TypeControl = 3, TypeUserDefined = 4, TypeUnused = 5, TypeByte = 6;

    /// <summary>Most tokens a vocabulary may have (the largest real ones have ~260k).</summary>
    public const int MaxTokens = 1 << 22;

    private TokenizerModel(string[] tokens, string[] merges, int[] tokenTypes, int bos, int eos, int? pad, bool nfc)
    {
        Tokens = Array.AsReadOnly(tokens);
        Merges = Array.AsReadOnly(merges);
        TokenTypes = Array.AsReadOnly(tokenTypes);
        BosId = bos;
        EosId = eos;
        PadId = pad;
        Nfc = nfc;
    }

    /// <summary>Token strings, index = id. Count = the tokenizer's vocabulary size (not the model's padded row count).</summary>
    public IReadOnlyList<string> Tokens { get; }

    /// <summary>BPE merges in rank order, each "a b" (exactly one space).</summary>
    public IReadOnlyList<string> Merges { get; }

    /// <summary>GGUF token types: 1 normal, 3 control (special added tokens), 4 user-defined (non-special added tokens), 5 unused (id gaps).</summary>
    public IReadOnlyList<int> TokenTypes { get; }

    public int BosId { get; }

    public int EosId { get; }

    public int? PadId { get; }

    /// <summary>Whether input text is NFC-normalized before encoding.</summary>
    public bool Nfc { get; }

    /// <summary>A copy with other special ids (e.g. taken from the model's config.json).</summary>
    public TokenizerModel WithSpecialIds(int bos, int eos, int? pad)
    {
        CheckId(bos, Tokens.Count, "BOS");
        CheckId(eos, Tokens.Count, "EOS");
        if (pad is int p)
        {
            CheckId(p, Tokens.Count, "PAD");
        }
        return new TokenizerModel(Tokens.ToArray(), Merges.ToArray(), TokenTypes.ToArray(), bos, eos, pad, Nfc);
    }

    /// <summary>
    /// Builds the model from arrays, e.g. read back from GGUF metadata (tokenizer.ggml.tokens / merges / token_type).
    /// Trailing type-5 (unused) entries, such as "[PAD50277]" rows added by converters that pad to the model's
    /// embedding size, are dropped. Throws <see cref="InvalidDataException"/> on inconsistent data.
    /// </summary>
    public static TokenizerModel FromArrays(IReadOnlyList<string> tokens, IReadOnlyList<string> merges, IReadOnlyList<int> tokenTypes,
                                            int bos, int eos, int? pad, bool nfc)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(merges);
        ArgumentNullException.ThrowIfNull(tokenTypes);
        if (tokens.Count != tokenTypes.Count)
        {
            throw new InvalidDataException($"tokenizer: {tokens.Count} tokens but {tokenTypes.Count} token types");
        }
        int n = tokens.Count;
        while (n > 0 && tokenTypes[n - 1] == TypeUnused)
        {
            n--;
        }
        if (n == 0)
        {
            throw new InvalidDataException("tokenizer: the vocabulary is empty");
        }

        var tok = new string[n];
        var types = new int[n];
        for (int i = 0; i < n; i++)
        {
            tok[i] = tokens[i] ?? throw new InvalidDataException($"tokenizer: token {i} is null");
            int t = tokenTypes[i];
            if (t != TypeNormal && t != TypeControl && t != TypeUserDefined && t != TypeUnused)
            {
                throw new InvalidDataException($"tokenizer: token {i} has type {t}; a byte-level BPE tokenizer uses only types 1, 3, 4 and 5");
            }
            types[i] = t;
        }
        var mergeArr = new string[merges.Count];
        for (int i = 0; i < mergeArr.Length; i++)
        {
            mergeArr[i] = merges[i] ?? throw new InvalidDataException($"tokenizer: merge {i} is null");
        }

        CheckId(bos, n, "BOS");
        CheckId(eos, n, "EOS");
        if (pad is int p)
        {
            CheckId(p, n, "PAD");
        }
        var model = new TokenizerModel(tok, mergeArr, types, bos, eos, pad, nfc);
        model.Validate();
        return model;
    }

    /// <summary>
    /// Parses a Hugging Face tokenizer.json. Only byte-level BPE with the GPT-2 split (ByteLevel pre-tokenizer with its
    /// regex) and an NFC or absent normalizer is accepted; anything else throws <see cref="InvalidDataException"/>.
    /// BOS/EOS are not in tokenizer.json: they are taken from well-known added tokens (<c>&lt;|endoftext|&gt;</c> for
    /// GPT-NeoX, so both are 0), PAD from <c>&lt;|padding|&gt;</c> and similar. Use <see cref="WithSpecialIds"/> to override.
    /// </summary>
    public static TokenizerModel FromHuggingFaceJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"tokenizer.json is not valid JSON: {e.Message}", e);
        }

        using (doc)
        {
            try
            {
                return ParseHf(doc.RootElement);
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or KeyNotFoundException)
            {
                // wrong JSON value kinds (e.g. a number where a string is expected)
                throw new InvalidDataException("tokenizer.json has an unexpected structure (a value of the wrong JSON kind or out of range, or an invalid \\u escape)", e);
            }
        }
    }

    private static TokenizerModel ParseHf(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException("tokenizer.json: the top level is not an object");
        }
        if (!root.TryGetProperty("model", out JsonElement model) || model.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException("tokenizer.json: no 'model' object");
        }

        // ---- model: must be BPE without subword prefixes / byte fallback
        string? type = model.TryGetProperty("type", out JsonElement typeEl) && typeEl.ValueKind == JsonValueKind.String ? typeEl.GetString() : null;
        if (type is not null && type != "BPE")
        {
            throw new InvalidDataException($"tokenizer.json: model.type is '{type}'; only byte-level BPE is supported");
        }
        if (!model.TryGetProperty("vocab", out JsonElement vocabEl) || vocabEl.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException("tokenizer.json: model.vocab is missing or not an object (not a BPE model)");
        }
        if (!model.TryGetProperty("merges", out JsonElement mergesEl) || mergesEl.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidDataException("tokenizer.json: model.merges is missing or not an array (not a BPE model)");
        }
        if (NonEmptyString(model, "continuing_subword_prefix") is string csp)
        {
            throw new InvalidDataException($"tokenizer.json: model.continuing_subword_prefix '{csp}' is not supported (not GPT-style byte-level BPE)");
        }
        if (NonEmptyString(model, "end_of_word_suffix") is string eows)
        {
            throw new InvalidDataException($"tokenizer.json: model.end_of_word_suffix '{eows}' is not supported (not GPT-style byte-level BPE)");
        }
        if (model.TryGetProperty("byte_fallback", out JsonElement bf) && bf.ValueKind == JsonValueKind.True)
        {
            throw new InvalidDataException("tokenizer.json: model.byte_fallback is set (SentencePiece-style BPE); only byte-level BPE is supported");
        }

        // ---- pre-tokenizer: ByteLevel with the GPT-2 regex, no prefix space
        if (!root.TryGetProperty("pre_tokenizer", out JsonElement pre) || pre.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException("tokenizer.json: no ByteLevel pre_tokenizer (not byte-level BPE)");
        }
        if (pre.TryGetProperty("type", out JsonElement seqType) && seqType.ValueKind == JsonValueKind.String && seqType.GetString() == "Sequence"
            && pre.TryGetProperty("pretokenizers", out JsonElement seq)
            && seq.ValueKind == JsonValueKind.Array && seq.GetArrayLength() == 1)
        {
            pre = seq[0];
        }
        string? preType = pre.TryGetProperty("type", out JsonElement preTypeEl) ? preTypeEl.GetString() : null;
        if (preType != "ByteLevel")
        {
            throw new InvalidDataException($"tokenizer.json: pre_tokenizer type '{preType}' is not supported; only a single ByteLevel pre-tokenizer (GPT-2 split regex) is");
        }
        if (pre.TryGetProperty("use_regex", out JsonElement useRegex) && useRegex.ValueKind == JsonValueKind.False)
        {
            throw new InvalidDataException("tokenizer.json: ByteLevel pre_tokenizer with use_regex=false is not supported (custom split regex)");
        }
        if (pre.TryGetProperty("add_prefix_space", out JsonElement aps) && aps.ValueKind == JsonValueKind.True)
        {
            throw new InvalidDataException("tokenizer.json: ByteLevel pre_tokenizer with add_prefix_space=true is not supported");
        }

        // ---- normalizer: none or NFC
        bool nfc = false;
        if (root.TryGetProperty("normalizer", out JsonElement norm) && norm.ValueKind == JsonValueKind.Object)
        {
            nfc = ParseNormalizer(norm);
        }

        // ---- vocab
        var byId = new Dictionary<int, (string Content, int Type)>(vocabEl.GetPropertyCount() + 64);
        int maxId = -1;
        foreach (JsonProperty p in vocabEl.EnumerateObject())
        {
            int id = p.Value.GetInt32();
            if (id < 0)
            {
                throw new InvalidDataException($"tokenizer.json: vocab entry '{p.Name}' has negative id {id}");
            }
            if (!byId.TryAdd(id, (p.Name, TypeNormal)))
            {
                throw new InvalidDataException($"tokenizer.json: id {id} appears twice in model.vocab ('{byId[id].Content}' and '{p.Name}')");
            }
            maxId = Math.Max(maxId, id);
        }

        // ---- added tokens
        if (root.TryGetProperty("added_tokens", out JsonElement added) && added.ValueKind == JsonValueKind.Array)
        {
            foreach (JsonElement t in added.EnumerateArray())
            {
                int id = t.GetProperty("id").GetInt32();
                string content = t.GetProperty("content").GetString() ?? throw new InvalidDataException($"tokenizer.json: added token {id} has no content");
                if (id < 0 || content.Length == 0)
                {
                    throw new InvalidDataException($"tokenizer.json: added token {id} '{content}' is invalid");
                }
                foreach (string flag in (ReadOnlySpan<string>)["single_word", "lstrip", "rstrip"])
                {
                    if (t.TryGetProperty(flag, out JsonElement f) && f.ValueKind == JsonValueKind.True)
                    {
                        throw new InvalidDataException($"tokenizer.json: added token {id} '{content}' uses {flag}=true, which is not supported");
                    }
                }
                bool special = t.TryGetProperty("special", out JsonElement sp) && sp.ValueKind == JsonValueKind.True;
                int ttype = special ? TypeControl : TypeUserDefined;
                if (byId.TryGetValue(id, out var existing) && existing.Type == TypeNormal && existing.Content != content)
                {
                    throw new InvalidDataException($"tokenizer.json: added token {id} '{content}' conflicts with vocab token '{existing.Content}'");
                }
                byId[id] = (content, ttype);
                maxId = Math.Max(maxId, id);
            }
        }
        if (maxId < 0)
        {
            throw new InvalidDataException("tokenizer.json: empty vocabulary");
        }
        if (maxId >= MaxTokens || (long)maxId + 1 - byId.Count > Math.Max(65536, byId.Count))
        {
            throw new InvalidDataException($"tokenizer.json: token ids go up to {maxId} for only {byId.Count} tokens");
        }

        var tokens = new string[maxId + 1];
        var types = new int[maxId + 1];
        for (int id = 0; id <= maxId; id++)
        {
            if (byId.TryGetValue(id, out var e))
            {
                tokens[id] = e.Content;
                types[id] = e.Type;
            }
            else
            {
                tokens[id] = $"[PAD{id}]"; // hole inside the id range: never produced, decodes to nothing
                types[id] = TypeUnused;
            }
        }

        // ---- merges: "a b" strings or ["a","b"] pairs
        var merges = new string[mergesEl.GetArrayLength()];
        int mi = 0;
        foreach (JsonElement m in mergesEl.EnumerateArray())
        {
            if (m.ValueKind == JsonValueKind.String)
            {
                merges[mi] = m.GetString()!;
            }
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2
                     && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
            {
                string a = m[0].GetString()!, b = m[1].GetString()!;
                if (a.Contains(' ') || b.Contains(' '))
                {
                    throw new InvalidDataException($"tokenizer.json: merge {mi} has a part with a space ('{a}', '{b}'), which byte-level BPE never has");
                }
                merges[mi] = a + " " + b;
            }
            else
            {
                throw new InvalidDataException($"tokenizer.json: merge {mi} is neither \"a b\" nor [\"a\",\"b\"]");
            }
            mi++;
        }

        // ---- special ids (tokenizer.json does not carry them; take the usual suspects)
        int bos = FindAdded(tokens, types, "<|endoftext|>", "<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>") ?? FirstControl(types) ?? 0;
        int eos = FindAdded(tokens, types, "<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>") ?? FirstControl(types) ?? 0;
        int? pad = FindAdded(tokens, types, "<|padding|>", "<pad>", "<|pad|>", "[PAD]");

        var result = new TokenizerModel(tokens, merges, types, bos, eos, pad, nfc);
        result.Validate();
        return result;
    }

    private static bool ParseNormalizer(JsonElement norm)
    {
        string? t = norm.TryGetProperty("type", out JsonElement te) ? te.GetString() : null;
        if (t == "NFC")
        {
            return true;
        }
        if (t == "Sequence" && norm.TryGetProperty("normalizers", out JsonElement list) && list.ValueKind == JsonValueKind.Array)
        {
            bool any = false;
            foreach (JsonElement n in list.EnumerateArray())
            {
                any |= ParseNormalizer(n);
            }
            return any;
        }
        throw new InvalidDataException($"tokenizer.json: normalizer '{t}' is not supported (only NFC or none)");
    }

    private static string? NonEmptyString(JsonElement obj, string name)
        => obj.TryGetProperty(name, out JsonElement e) && e.ValueKind == JsonValueKind.String && e.GetString() is { Length: > 0 } s ? s : null;

    private static int? FindAdded(string[] tokens, int[] types, params string[] names)
    {
        foreach (string name in names)
        {
            for (int i = 0; i < tokens.Length; i++)
            {
                if ((types[i] == TypeControl || types[i] == TypeUserDefined) && tokens[i] == name)
                {
                    return i;
                }
            }
        }
        return null;
    }

    private static int? FirstControl(int[] types)
    {
        int i = Array.IndexOf(types, TypeControl);
        return i >= 0 ? i : null;
    }

    private static void CheckId(int id, int count, string what)
    {
        if ((uint)id >= (uint)count)
        {
            throw new InvalidDataException($"tokenizer: {what} id {id} is outside the vocabulary (0..{count - 1})");
        }
    }

    /// <summary>
    /// Checks what the BPE engine needs: unique token strings, a normal token for every byte-level char of a byte that
    /// can occur in UTF-8 (all but C0, C1, F5..FF), and every merge "a b" with a, b and ab in the vocabulary.
    /// </summary>
    private void Validate()
    {
        var index = new Dictionary<string, int>(Tokens.Count, StringComparer.Ordinal);
        for (int i = 0; i < Tokens.Count; i++)
        {
            int t = TokenTypes[i];
            if (t == TypeUnused)
            {
                continue;
            }
            if (!index.TryAdd(Tokens[i], i) && t == TypeNormal && TokenTypes[index[Tokens[i]]] == TypeNormal)
            {
                throw new InvalidDataException($"tokenizer: token '{Tokens[i]}' appears twice (ids {index[Tokens[i]]} and {i})");
            }
        }
        for (int b = 0; b < 256; b++)
        {
            if (b is 0xC0 or 0xC1 or >= 0xF5)
            {
                continue; // never occur in UTF-8, so vocabularies may lack them (GPT-NeoX does)
            }
            string s = ByteLevelAlphabet.ByteToChar[b].ToString();
            if (!index.TryGetValue(s, out int id) || TokenTypes[id] != TypeNormal)
            {
                throw new InvalidDataException($"tokenizer: the vocabulary has no byte-level token for byte 0x{b:X2} ('{s}'); not a byte-level BPE vocabulary");
            }
        }
        var seen = new HashSet<string>(Merges.Count, StringComparer.Ordinal);
        for (int i = 0; i < Merges.Count; i++)
        {
            string m = Merges[i];
            if (!seen.Add(m))
            {
                throw new InvalidDataException($"tokenizer: merge {i} '{m}' appears twice");
            }
            int sp = m.IndexOf(' ');
            if (sp <= 0 || sp == m.Length - 1 || m.IndexOf(' ', sp + 1) >= 0)
            {
                throw new InvalidDataException($"tokenizer: merge {i} '{m}' is not of the form \"a b\"");
            }
            if (!index.ContainsKey(m[..sp]) || !index.ContainsKey(m[(sp + 1)..]) || !index.ContainsKey(string.Concat(m.AsSpan(0, sp), m.AsSpan(sp + 1))))
            {
                throw new InvalidDataException($"tokenizer: merge {i} '{m}' refers to a token that is not in the vocabulary");
            }
        }
    }
}
