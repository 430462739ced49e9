using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
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
        if (!File.Exists(path)) throw new BadInputException($"{path}: tokenizer file not found");
        try { return TokenizerModel.FromHuggingFaceJson(File.ReadAllText(path)); }
        catch (InvalidDataException e) { throw new BadInputException($"{path}: {e.Message}"); }
        catch (System.Text.Json.JsonException e) { throw new BadInputException($"{path}: invalid JSON ({e.Message.Split('\n')[0]})"); }
    }

    public static bool Has(GgufFile f) => f.Metadata.Has("tokenizer.ggml.tokens");

    public static TokenizerModel Read(GgufFile f)
    {
        var m = f.Metadata;
        if (m.TryGetString("tokenizer.ggml.model") is string kind && kind != "gpt2")
            throw new BadInputException($"{f.Path}: tokenizer type '{kind}' is not supported (byte-level BPE 'gpt2' is)");
        var tokens = m.TryGetArray("tokenizer.ggml.tokens") ?? throw new BadInputException($"{f.Path}: the model has no tokenizer (convert with a tokenizer.json beside the checkpoint or --tokenizer)");
        var merges = m.TryGetArray("tokenizer.ggml.merges") ?? throw new BadInputException($"{f.Path}: missing tokenizer.ggml.merges");
        var types = m.TryGetArray("tokenizer.ggml.token_type") ?? throw new BadInputException($"{f.Path}: missing tokenizer.ggml.token_type (needed to split added tokens)");
        var tok = tokens.Items.Select(o => o as string ?? throw new BadInputException($"{f.Path}: tokenizer.ggml.tokens has a non-string item")).ToArray();
        var mer = merges.Items.Select(o => o as string ?? throw new BadInputException($"{f.Path}: tokenizer.ggml.merges has a non-string item")).ToArray();
        var ty = types.Items.Select(o => Convert.ToInt32(o)).ToArray();
        int bos = (int)m.GetInt("tokenizer.ggml.bos_token_id", 0), eos = (int)m.GetInt("tokenizer.ggml.eos_token_id", 0);
        int? pad = m.Has("tokenizer.ggml.padding_token_id") ? (int)m.GetInt("tokenizer.ggml.padding_token_id") : null;
        try { return TokenizerModel.FromArrays(tok, mer, ty, bos, eos, pad, m.GetBool("xlstm.tokenizer.nfc", true)); }
        catch (InvalidDataException e) { throw new BadInputException($"{f.Path}: {e.Message}"); }
    }
}
