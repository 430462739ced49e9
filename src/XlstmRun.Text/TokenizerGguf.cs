using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Formats.IO;
using XlstmRun.Text.Tokenization;

namespace XlstmRun.Text;

/// <summary>Stores a tokenizer in GGUF metadata (tokenizer.ggml.* keys, llama.cpp's layout for GPT-2-style BPE) and reads it back.</summary>
public static class TokenizerGguf
{
    /// <param name="padTo">Pad the token list to this many entries (the model's embedding rows) with unused "[PADi]"
    /// tokens, as llama.cpp's converter does, so that generic GGUF tools see one token per row; reading drops them.</param>
    public static void Write(GgufWriter w, TokenizerModel t, int padTo = 0)
    {
        var tokens = t.Tokens.ToList();
        var types = t.TokenTypes.ToList();
        for (int i = tokens.Count; i < padTo; i++)
        {
            tokens.Add($"[PAD{i}]");
            types.Add(TokenizerModel.TypeUnused);
        }
        w.AddString("tokenizer.ggml.model", "gpt2");
        w.AddString("tokenizer.ggml.pre", "gpt-2");
        w.AddStringArray("tokenizer.ggml.tokens", tokens);
        w.AddI32Array("tokenizer.ggml.token_type", types);
        w.AddStringArray("tokenizer.ggml.merges", t.Merges);
        w.AddU32("tokenizer.ggml.bos_token_id", (uint)t.BosId);
        w.AddU32("tokenizer.ggml.eos_token_id", (uint)t.EosId);
        if (t.PadId is int p) w.AddU32("tokenizer.ggml.padding_token_id", (uint)p);
        w.AddBool("tokenizer.ggml.add_bos_token", true);
        w.AddBool("xlstm.tokenizer.nfc", t.Nfc);
    }

    /// <summary>Load a tokenizer.json file (one-line errors on bad input).</summary>
    public static TokenizerModel LoadJson(string path)
    {
        string text = InputFiles.ReadAllText(path, InputKind.TokenizerJson, "tokenizer file");
        return FromJsonText(text, path);
    }

    /// <summary>Parse tokenizer.json text; every problem becomes a one-line <see cref="BadInputException"/> naming <paramref name="name"/>.</summary>
    public static TokenizerModel FromJsonText(string text, string name) => ParseGuard.Run(name, "tokenizer.json", () =>
    {
        try { return TokenizerModel.FromHuggingFaceJson(text); }
        catch (InvalidDataException e) { throw new BadInputException($"{name}: {e.Message.Split('\n')[0]}"); }
        catch (System.Text.Json.JsonException e) { throw new BadInputException($"{name}: invalid JSON ({e.Message.Split('\n')[0]})"); }
    });

    /// <summary>The tokenizer built from <paramref name="model"/>; a model the BPE engine cannot use is bad input of <paramref name="name"/>.</summary>
    public static XlstmTokenizer Build(TokenizerModel model, string name) => ParseGuard.Run(name, "tokenizer", () =>
    {
        try { return new XlstmTokenizer(model); }
        catch (InvalidDataException e) { throw new BadInputException($"{name}: {e.Message.Split('\n')[0]}"); }
    });

    public static bool Has(GgufFile f) => f.Metadata.Has("tokenizer.ggml.tokens");

    public static TokenizerModel Read(GgufFile f) => ParseGuard.Run(f.Path, "tokenizer in GGUF metadata", () => ReadInner(f));

    private static TokenizerModel ReadInner(GgufFile f)
    {
        var m = f.Metadata;
        if (m.TryGetString("tokenizer.ggml.model") is string kind && kind != "gpt2")
            throw new BadInputException($"{f.Path}: tokenizer type '{kind}' is not supported (byte-level BPE 'gpt2' is)");
        var tokens = m.TryGetArray("tokenizer.ggml.tokens") ?? throw new BadInputException($"{f.Path}: the model has no tokenizer (convert with a tokenizer.json beside the checkpoint or --tokenizer)");
        var merges = m.TryGetArray("tokenizer.ggml.merges") ?? throw new BadInputException($"{f.Path}: missing tokenizer.ggml.merges");
        var types = m.TryGetArray("tokenizer.ggml.token_type") ?? throw new BadInputException($"{f.Path}: missing tokenizer.ggml.token_type (needed to split added tokens)");
        var tok = tokens.Items as string[] ?? throw new BadInputException($"{f.Path}: tokenizer.ggml.tokens is not an array of strings");
        var mer = merges.Items as string[] ?? throw new BadInputException($"{f.Path}: tokenizer.ggml.merges is not an array of strings");
        if (tok.Length > TokenizerModel.MaxTokens) throw new BadInputException($"{f.Path}: tokenizer.ggml.tokens has {tok.Length} tokens (at most {TokenizerModel.MaxTokens})");
        var ty = new int[types.Count];
        for (int i = 0; i < ty.Length; i++)
        {
            long? v = types.IntAt(i);
            if (v is not long t || t < int.MinValue || t > int.MaxValue) throw new BadInputException($"{f.Path}: tokenizer.ggml.token_type is not an array of integers");
            ty[i] = (int)t;
        }
        int bos = (int)m.GetInt("tokenizer.ggml.bos_token_id", 0, int.MaxValue, 0), eos = (int)m.GetInt("tokenizer.ggml.eos_token_id", 0, int.MaxValue, 0);
        int? pad = m.Has("tokenizer.ggml.padding_token_id") ? (int)m.GetInt("tokenizer.ggml.padding_token_id", 0, int.MaxValue) : null;
        try { return TokenizerModel.FromArrays(tok, mer, ty, bos, eos, pad, m.GetBool("xlstm.tokenizer.nfc", true)); }
        catch (InvalidDataException e) { throw new BadInputException($"{f.Path}: {e.Message}"); }
    }
}
