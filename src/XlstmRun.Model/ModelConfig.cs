using System.Text.Json;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;

namespace XlstmRun.Model;

/// <summary>
/// Shape and constants of an xLSTM-Large model (the xLSTM 7B architecture), whatever its size.
/// Sizes follow the reference code: qk_dim = int(D·qk_dim_factor), v_dim = int(D·v_dim_factor),
/// FFN = round_up(D·ffn_proj_factor, ffn_round_up_to_multiple_of) with the reference's float floor-division.
/// </summary>
public sealed record ModelConfig
{
    public required int Hidden { get; init; }
    public required int Blocks { get; init; }
    public required int Heads { get; init; }
    public required int QkDim { get; init; }
    public required int VDim { get; init; }
    public required int FfnDim { get; init; }
    public required int Vocab { get; init; }
    public float NormEps { get; init; } = 1e-6f;
    public float CellEps { get; init; } = 1e-6f;
    public float GateSoftCap { get; init; } = 15f;
    public float LogitSoftCap { get; init; } = 30f;
    public int ChunkSize { get; init; } = 64;
    public bool AddOutNorm { get; init; } = true;
    public int BosId { get; init; } = 0;

    public int DQk => QkDim / Heads;
    public int DV => VDim / Heads;
    /// <summary>Rows of the fused q|k|v|o projection.</summary>
    public int QkvoDim => 2 * QkDim + 2 * VDim;
    public int OOffset => 2 * QkDim + VDim;

    /// <summary>Floats of the recurrent state of one block: C [NH, dqk, dv], n [NH, dqk], m [NH].</summary>
    public long StateFloatsPerBlock => (long)Heads * DQk * DV + (long)Heads * DQk + Heads;
    public long StateFloats => StateFloatsPerBlock * Blocks;

    public void Validate(string source)
    {
        void Check(bool ok, string what) { if (!ok) throw new BadInputException($"{source}: invalid model shape: {what}"); }
        Check(Hidden > 0 && Blocks > 0 && Heads > 0 && Vocab > 0 && FfnDim > 0, "sizes must be positive");
        Check(QkDim > 0 && QkDim % Heads == 0, $"qk_dim {QkDim} is not a positive multiple of heads {Heads}");
        Check(VDim > 0 && VDim % Heads == 0, $"v_dim {VDim} is not a positive multiple of heads {Heads}");
        Check(ChunkSize >= 1 && ChunkSize <= 1024, $"chunk_size {ChunkSize}");
    }

    public static int RoundUpToMultiple(double x, int m) => (int)(Math.Floor((x + m - 1) / m) * m);

    /// <summary>Read a Hugging Face xLSTM config.json (transformers' xLSTMConfig field names, with the xlstm_large aliases).</summary>
    public static ModelConfig FromHfJson(string json, string source, out string weightMode, out bool tieEmbeddings)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new BadInputException($"{source}: invalid JSON ({e.Message.Split('\n')[0]})"); }
        using (doc)
        {
            var r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object) throw new BadInputException($"{source}: config is not a JSON object");
            string? mt = r.TryGetProperty("model_type", out var mtv) ? mtv.GetString() : null;
            if (mt != null && mt != "xlstm") throw new BadInputException($"{source}: model_type is '{mt}', expected 'xlstm'");
            double Num(string a, string? b = null, double? def = null)
            {
                if (r.TryGetProperty(a, out var v) && v.ValueKind == JsonValueKind.Number) return v.GetDouble();
                if (b != null && r.TryGetProperty(b, out v) && v.ValueKind == JsonValueKind.Number) return v.GetDouble();
                return def ?? throw new BadInputException($"{source}: missing numeric field '{a}'");
            }
            bool Flag(string a, bool def) => r.TryGetProperty(a, out var v) && (v.ValueKind is JsonValueKind.True or JsonValueKind.False) ? v.GetBoolean() : def;
            int d = (int)Num("hidden_size", "embedding_dim");
            int heads = (int)Num("num_heads");
            int blocks = (int)Num("num_blocks", "num_hidden_layers");
            double qkf = Num("qk_dim_factor", null, 0.5), vf = Num("v_dim_factor", null, 1.0);
            double ffnf = Num("ffn_proj_factor", null, 2.667);
            int ffnm = (int)Num("ffn_round_up_to_multiple_of", null, 64);
            weightMode = r.TryGetProperty("weight_mode", out var wm) ? wm.GetString() ?? "single" : "single";
            if (weightMode is not ("single" or "fused")) throw new BadInputException($"{source}: unknown weight_mode '{weightMode}'");
            if (Flag("use_bias", false)) throw new BadInputException($"{source}: use_bias=true is not supported (the xLSTM 7B architecture has no projection biases)");
            tieEmbeddings = Flag("tie_word_embeddings", false);
            var cfg = new ModelConfig
            {
                Hidden = d,
                Blocks = blocks,
                Heads = heads,
                QkDim = (int)(d * qkf),
                VDim = (int)(d * vf),
                FfnDim = RoundUpToMultiple(d * ffnf, ffnm),
                Vocab = (int)Num("vocab_size"),
                NormEps = (float)Num("norm_eps", null, 1e-6),
                CellEps = (float)Num("eps", null, 1e-6),
                GateSoftCap = (float)Num("gate_soft_cap", null, 15.0),
                LogitSoftCap = (float)Num("output_logit_soft_cap", null, 30.0),
                ChunkSize = (int)Num("chunk_size", null, 64),
                AddOutNorm = Flag("add_out_norm", true),
                BosId = (int)Num("bos_token_id", null, 0),
            };
            cfg.Validate(source);
            return cfg;
        }
    }

    public const string Arch = "xlstm";

    public void WriteGguf(GgufWriter w)
    {
        w.AddString("general.architecture", Arch);
        w.AddU32("xlstm.context_length", 0);
        w.AddU32("xlstm.embedding_length", (uint)Hidden);
        w.AddU32("xlstm.block_count", (uint)Blocks);
        w.AddU32("xlstm.feed_forward_length", (uint)FfnDim);
        w.AddU32("xlstm.vocab_size", (uint)Vocab);
        w.AddF32("xlstm.attention.layer_norm_rms_epsilon", NormEps);
        w.AddF32("xlstm.final_logit_softcapping", LogitSoftCap);
        w.AddU32("xlstm.mlstm.head_count", (uint)Heads);
        w.AddU32("xlstm.mlstm.qk_dim", (uint)QkDim);
        w.AddU32("xlstm.mlstm.v_dim", (uint)VDim);
        w.AddF32("xlstm.mlstm.gate_soft_cap", GateSoftCap);
        w.AddF32("xlstm.mlstm.cell_epsilon", CellEps);
        w.AddU32("xlstm.mlstm.chunk_size", (uint)ChunkSize);
        w.AddBool("xlstm.add_out_norm", AddOutNorm);
    }

    public static ModelConfig FromGguf(GgufFile f)
    {
        var m = f.Metadata;
        string arch = m.GetString("general.architecture");
        if (arch != Arch) throw new BadInputException($"{f.Path}: architecture is '{arch}', expected '{Arch}'");
        var cfg = new ModelConfig
        {
            Hidden = (int)m.GetInt("xlstm.embedding_length"),
            Blocks = (int)m.GetInt("xlstm.block_count"),
            FfnDim = (int)m.GetInt("xlstm.feed_forward_length"),
            Vocab = (int)m.GetInt("xlstm.vocab_size"),
            Heads = (int)m.GetInt("xlstm.mlstm.head_count"),
            QkDim = (int)m.GetInt("xlstm.mlstm.qk_dim"),
            VDim = (int)m.GetInt("xlstm.mlstm.v_dim"),
            NormEps = (float)m.GetFloat("xlstm.attention.layer_norm_rms_epsilon", 1e-6),
            LogitSoftCap = (float)m.GetFloat("xlstm.final_logit_softcapping", 30),
            GateSoftCap = (float)m.GetFloat("xlstm.mlstm.gate_soft_cap", 15),
            CellEps = (float)m.GetFloat("xlstm.mlstm.cell_epsilon", 1e-6),
            ChunkSize = (int)m.GetInt("xlstm.mlstm.chunk_size", 64),
            AddOutNorm = m.GetBool("xlstm.add_out_norm", true),
            BosId = (int)m.GetInt("tokenizer.ggml.bos_token_id", 0),
        };
        cfg.Validate(f.Path);
        return cfg;
    }
}
