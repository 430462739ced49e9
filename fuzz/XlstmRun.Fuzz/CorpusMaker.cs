using System.Text;
using System.Text.Json;
using XlstmRun.Formats;
using XlstmRun.Model;
using XlstmRun.Model.Conversion;
using XlstmRun.Text;

namespace XlstmRun.Fuzz;

/// <summary>
/// Writes the seed corpus (fuzz/corpus/TARGET/*): small valid inputs of every kind the parsers accept, so that mutants
/// reach deep into them. Deterministic: the same files on every run.
/// </summary>
public static class CorpusMaker
{
    public static void Write(string root)
    {
        Directory.CreateDirectory(root);
        string Dir(string t) { var d = Path.Combine(root, t); Directory.CreateDirectory(d); return d; }

        var tokJson = TokenizerJson(pairs: false);
        File.WriteAllText(Path.Combine(Dir("tokenizer"), "small-bpe.json"), tokJson);
        File.WriteAllText(Path.Combine(Dir("tokenizer"), "small-bpe-pairs.json"), TokenizerJson(pairs: true));
        var tok = TokenizerGguf.FromJsonText(tokJson, "seed");

        string gg = Dir("gguf");
        Gguf(Path.Combine(gg, "tok-f32.gguf"), RandomModel.Shape(8, 1, 2, 320), GgmlType.F32, tok);
        Gguf(Path.Combine(gg, "tok-q8_0.gguf"), RandomModel.Shape(32, 1, 2, 320), GgmlType.Q8_0, tok);
        Gguf(Path.Combine(gg, "q4_0.gguf"), RandomModel.Shape(32, 2, 2, 64), GgmlType.Q4_0, null);
        Gguf(Path.Combine(gg, "bf16.gguf"), RandomModel.Shape(8, 2, 2, 64), GgmlType.BF16, null);
        Gguf(Path.Combine(gg, "f16-noout.gguf"), RandomModel.Shape(8, 1, 1, 32) with { AddOutNorm = false, ChunkSize = 16 }, GgmlType.F16, null);

        string st = Dir("safetensors");
        File.WriteAllBytes(Path.Combine(st, "single-f32.bin"), Checkpoint(8, 2, 1, 16, "single", "F32"));
        File.WriteAllBytes(Path.Combine(st, "fused-bf16.bin"), Checkpoint(8, 2, 1, 16, "fused", "BF16"));
        File.WriteAllBytes(Path.Combine(st, "single-f16-2blocks.bin"), Checkpoint(8, 1, 2, 16, "single", "F16"));

        string ss = Dir("state");
        var c = FuzzTargets.StateModel;
        var state = new float[c.StateFloats];
        for (int i = 0; i < state.Length; i++) state[i] = MathF.Sin(i);
        foreach (long pos in new long[] { 0, 7, 123456 })
        {
            var p = Path.Combine(ss, $"pos{pos}.state");
            StateFile.Save(p, c, state, pos);
        }
    }

    private static void Gguf(string path, ModelConfig c, GgmlType type, Text.Tokenization.TokenizerModel? tok) =>
        ModelWriter.Write(path, c, type, RandomModel.Sources(c, 7), w =>
        {
            w.AddString("general.name", Path.GetFileNameWithoutExtension(path));
            if (tok != null) TokenizerGguf.Write(w, tok);
        }, null, threads: 1);

    /// <summary>A byte-level BPE tokenizer.json: the 256 byte tokens, a few merges, &lt;|endoftext|&gt; and &lt;|padding|&gt;.</summary>
    public static string TokenizerJson(bool pairs)
    {
        var byteChar = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            byteChar[b] = printable ? (char)b : (char)(0x100 + next++);
        }
        var vocab = new List<string>();
        vocab.Add("<|endoftext|>");
        vocab.Add("<|padding|>");
        for (int b = 0; b < 256; b++) vocab.Add(byteChar[b].ToString());
        string[][] merges = [["Ġ", "t"], ["h", "e"], ["Ġt", "he"], ["i", "n"], ["a", "n"], ["e", "r"], ["o", "n"], ["Ġ", "a"], ["r", "e"], ["Ġ", "w"], ["o", "r"], ["Ġw", "or"], ["l", "d"], ["Ġwor", "ld"], ["e", "n"], ["Ġa", "n"], ["Ġan", "d"]];
        foreach (var m in merges) vocab.Add(m[0] + m[1]);
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteNull("padding");
            w.WriteStartArray("added_tokens");
            for (int i = 0; i < 2; i++)
            {
                w.WriteStartObject();
                w.WriteNumber("id", i);
                w.WriteString("content", vocab[i]);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("lstrip", false);
                w.WriteBoolean("rstrip", false);
                w.WriteBoolean("normalized", false);
                w.WriteBoolean("special", true);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartObject("normalizer");
            w.WriteString("type", "NFC");
            w.WriteEndObject();
            w.WriteStartObject("pre_tokenizer");
            w.WriteString("type", "ByteLevel");
            w.WriteBoolean("add_prefix_space", false);
            w.WriteBoolean("trim_offsets", true);
            w.WriteBoolean("use_regex", true);
            w.WriteEndObject();
            w.WriteStartObject("decoder");
            w.WriteString("type", "ByteLevel");
            w.WriteEndObject();
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            w.WriteNull("unk_token");
            w.WriteString("continuing_subword_prefix", "");
            w.WriteString("end_of_word_suffix", "");
            w.WriteBoolean("fuse_unk", false);
            w.WriteBoolean("byte_fallback", false);
            w.WriteStartObject("vocab");
            for (int i = 0; i < vocab.Count; i++) w.WriteNumber(vocab[i], i);
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var m in merges)
            {
                if (pairs)
                {
                    w.WriteStartArray();
                    w.WriteStringValue(m[0]);
                    w.WriteStringValue(m[1]);
                    w.WriteEndArray();
                }
                else w.WriteStringValue(m[0] + " " + m[1]);
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>A packed Hugging Face checkpoint (config.json + model.safetensors) for the safetensors target.</summary>
    public static byte[] Checkpoint(int d, int heads, int blocks, int vocab, string mode, string dtype)
    {
        int qk = d / 2, v = d, ffn = ModelConfig.RoundUpToMultiple(d * 2.667, 64);
        var tensors = new List<(string Name, long[] Shape)> { ("backbone.embeddings.weight", [vocab, d]) };
        for (int b = 0; b < blocks; b++)
        {
            string p = $"backbone.blocks.{b}.", ml = p + "mlstm_layer.";
            tensors.Add((p + "norm_mlstm.weight", [d]));
            if (mode == "fused")
            {
                tensors.Add((ml + "qkv_opreact.weight", [2 * qk + 2 * v, d]));
                tensors.Add((ml + "ifgate_preact.weight", [2 * heads, d]));
                tensors.Add((ml + "ifgate_preact.bias", [2 * heads]));
                tensors.Add((p + "ffn.proj_up_gate_z.weight", [2 * ffn, d]));
            }
            else
            {
                tensors.Add((ml + "q.weight", [qk, d]));
                tensors.Add((ml + "k.weight", [qk, d]));
                tensors.Add((ml + "v.weight", [v, d]));
                tensors.Add((ml + "ogate_preact.weight", [v, d]));
                tensors.Add((ml + "igate_preact.weight", [heads, d]));
                tensors.Add((ml + "fgate_preact.weight", [heads, d]));
                tensors.Add((ml + "igate_preact.bias", [heads]));
                tensors.Add((ml + "fgate_preact.bias", [heads]));
                tensors.Add((p + "ffn.proj_up_gate.weight", [ffn, d]));
                tensors.Add((p + "ffn.proj_up.weight", [ffn, d]));
            }
            tensors.Add((ml + "multihead_norm.weight", [v]));
            tensors.Add((ml + "out_proj.weight", [d, v]));
            tensors.Add((p + "norm_ffn.weight", [d]));
            tensors.Add((p + "ffn.proj_down.weight", [d, ffn]));
        }
        tensors.Add(("backbone.out_norm.weight", [d]));
        tensors.Add(("lm_head.weight", [vocab, d]));
        int es = dtype == "F32" ? 4 : 2;
        var header = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
        long off = 0;
        foreach (var (name, shape) in tensors)
        {
            long n = shape.Aggregate(1L, (a, b) => a * b) * es;
            header.Append($",\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{string.Join(",", shape)}],\"data_offsets\":[{off},{off + n}]}}");
            off += n;
        }
        header.Append('}');
        var hb = Encoding.UTF8.GetBytes(header.ToString());
        var st = new byte[8 + hb.Length + off];
        BitConverter.GetBytes((ulong)hb.Length).CopyTo(st, 0);
        hb.CopyTo(st, 8);
        var rng = new Mutator(1);
        for (long i = 8 + hb.Length; i < st.Length; i += es)
        {
            float f = (rng.Below(2001) - 1000) / 4000f;
            if (es == 4) BitConverter.GetBytes(f).CopyTo(st, i);
            else
            {
                ushort h = dtype == "F16" ? BitConverter.HalfToUInt16Bits((Half)f) : (ushort)(BitConverter.SingleToUInt32Bits(f) >> 16);
                BitConverter.GetBytes(h).CopyTo(st, i);
            }
        }
        string config = $$"""
        {
          "add_out_norm": true,
          "bos_token_id": 0,
          "chunk_size": 64,
          "embedding_dim": {{d}},
          "eos_token_id": 2,
          "eps": 1e-06,
          "ffn_proj_factor": 2.667,
          "ffn_round_up_to_multiple_of": 64,
          "gate_soft_cap": 15.0,
          "hidden_size": {{d}},
          "model_type": "xlstm",
          "norm_eps": 1e-06,
          "num_blocks": {{blocks}},
          "num_heads": {{heads}},
          "num_hidden_layers": {{blocks}},
          "output_logit_soft_cap": 30.0,
          "qk_dim_factor": 0.5,
          "tie_word_embeddings": false,
          "use_bias": false,
          "v_dim_factor": 1.0,
          "vocab_size": {{vocab}},
          "weight_mode": "{{mode}}"
        }
        """;
        return FuzzTargets.PackCheckpoint(Encoding.UTF8.GetBytes(config), st);
    }
}
