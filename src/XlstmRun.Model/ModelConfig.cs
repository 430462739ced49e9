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

    /// <summary>
    /// Sane bounds on every size, checked before anything is allocated from them. They are far above any real model of
    /// this architecture (xLSTM 7B: hidden 4096, 32 blocks, 8 heads, FFN 10944, vocab 50304) and keep every derived size
    /// (products of them) well inside 64-bit arithmetic and .NET's array limits.
    /// </summary>
    public const int MaxHidden = 1 << 16, MaxBlocks = 1024, MaxHeads = 1024, MaxProjDim = 1 << 18, MaxFfn = 1 << 20,
        MaxVocab = 1 << 22, MaxChunk = 1024;

    /// <summary>
    /// Memory that may be allocated whatever the weights (floats): the recurrent state and the activation buffers may
    /// each take this much, or as much as the model has weights, whichever is larger. Real models are far inside
    /// (7B: state 33.6 M floats, activations at a 512-token batch 59 M floats, 6.9 G weights); a small file whose
    /// header claims a huge shape is refused instead of allocating gigabytes.
    /// </summary>
    public const long FreeAllocationFloats = 64L << 20;

    /// <summary>The largest token batch any command runs (ModelRunner rounds up to the chunk size).</summary>
    public const int MaxBatchTokens = 512;

    /// <summary>Floats of the activation buffers ModelRunner allocates for a batch of <paramref name="batch"/> tokens.</summary>
    public long ActivationFloats(int batch)
    {
        long t = Math.Max(ChunkSize, batch);
        return t * (3L * Hidden + QkvoDim + 2L * Heads + 2L * VDim + 3L * FfnDim + Vocab);
    }

    public void Validate(string source)
    {
        void Check(bool ok, string what) { if (!ok) throw new BadInputException($"{source}: invalid model shape: {what}"); }
        Check(Hidden > 0 && Blocks > 0 && Heads > 0 && Vocab > 0 && FfnDim > 0, "sizes must be positive");
        Check(Hidden <= MaxHidden, $"hidden size {Hidden} is above {MaxHidden}");
        Check(Blocks <= MaxBlocks, $"{Blocks} blocks is above {MaxBlocks}");
        Check(Heads <= MaxHeads, $"{Heads} heads is above {MaxHeads}");
        Check(FfnDim <= MaxFfn, $"FFN size {FfnDim} is above {MaxFfn}");
        Check(Vocab <= MaxVocab, $"vocabulary {Vocab} is above {MaxVocab}");
        Check(QkDim > 0 && QkDim <= MaxProjDim && QkDim % Heads == 0, $"qk_dim {QkDim} is not a positive multiple of heads {Heads} up to {MaxProjDim}");
        Check(VDim > 0 && VDim <= MaxProjDim && VDim % Heads == 0, $"v_dim {VDim} is not a positive multiple of heads {Heads} up to {MaxProjDim}");
        Check(ChunkSize >= 1 && ChunkSize <= MaxChunk, $"chunk_size {ChunkSize} (1 to {MaxChunk})");
        Check(float.IsFinite(NormEps) && NormEps >= 0, $"norm epsilon {NormEps}");
        Check(float.IsFinite(CellEps) && CellEps >= 0, $"cell epsilon {CellEps}");
        Check(float.IsFinite(GateSoftCap) && GateSoftCap > 0, $"gate soft-cap {GateSoftCap}");
        Check(float.IsFinite(LogitSoftCap) && LogitSoftCap > 0, $"logit soft-cap {LogitSoftCap}");
        Check(BosId >= 0 && BosId < Vocab, $"BOS id {BosId} is outside the vocabulary (0 to {Vocab - 1})");
    }

    /// <summary>
    /// Refuses shapes whose state or activation buffers would be out of proportion with the weights actually present
    /// (<paramref name="weightElements"/>): see <see cref="FreeAllocationFloats"/>.
    /// </summary>
    public void CheckAllocations(string source, long weightElements)
    {
        long allowed = Math.Max(FreeAllocationFloats, weightElements);
        if (StateFloats > allowed)
            throw new BadInputException($"{source}: invalid model shape: the recurrent state would take {StateFloats * 4L >> 20} MiB for {weightElements} weights");
        long act = ActivationFloats(MaxBatchTokens);
        if (act > allowed)
            throw new BadInputException($"{source}: invalid model shape: the activation buffers would take {act * 4L >> 20} MiB for {weightElements} weights (vocabulary {Vocab}, hidden {Hidden}, chunk {ChunkSize})");
    }

    public static int RoundUpToMultiple(double x, int m) => (int)(Math.Floor((x + m - 1) / m) * m);

    /// <summary>Read a Hugging Face xLSTM config.json (transformers' xLSTMConfig field names, with the xlstm_large aliases).</summary>
    public static ModelConfig FromHfJson(string json, string source, out string weightMode, out bool tieEmbeddings)
    {
        var (cfg, mode, tied) = ParseGuard.Run(source, "config.json", () => { var c = ParseHfJson(json, source, out var m, out var t); return (c, m, t); });
        weightMode = mode;
        tieEmbeddings = tied;
        return cfg;
    }

    private static ModelConfig ParseHfJson(string json, string source, out string weightMode, out bool tieEmbeddings)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new BadInputException($"{source}: invalid JSON ({e.Message.Split('\n')[0]})"); }
        using (doc)
        {
            var r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object) throw new BadInputException($"{source}: config is not a JSON object");
            double Num(string a, string? b = null, double? def = null)
            {
                foreach (var key in b == null ? [a] : new[] { a, b })
                {
                    if (!r.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) continue;
                    if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double x) || !double.IsFinite(x))
                        throw new BadInputException($"{source}: field '{key}' is not a number");
                    return x;
                }
                return def ?? throw new BadInputException($"{source}: missing numeric field '{a}'");
            }
            int Int(string a, string? b, int? def, int min, int max)
            {
                double x = Num(a, b, def);
                if (x != Math.Floor(x) || x < min || x > max) throw new BadInputException($"{source}: field '{a}' = {x} is not an integer from {min} to {max}");
                return (int)x;
            }
            int Dim(string what, double x, int max)
            {
                if (!(x >= 1 && x <= max)) throw new BadInputException($"{source}: invalid model shape: {what} {x} (1 to {max})");
                return (int)x;
            }
            string? Str(string key)
            {
                if (!r.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
                return v.ValueKind == JsonValueKind.String ? JsonStrings.Value(v, source) : throw new BadInputException($"{source}: field '{key}' is not a string");
            }
            bool Flag(string a, bool def) => r.TryGetProperty(a, out var v) && (v.ValueKind is JsonValueKind.True or JsonValueKind.False) ? v.GetBoolean() : def;
            string? mt = Str("model_type");
            if (mt != null && mt != "xlstm") throw new BadInputException($"{source}: model_type is '{mt}', expected 'xlstm'");
            int d = Int("hidden_size", "embedding_dim", null, 1, MaxHidden);
            int heads = Int("num_heads", null, null, 1, MaxHeads);
            int blocks = Int("num_blocks", "num_hidden_layers", null, 1, MaxBlocks);
            double qkf = Num("qk_dim_factor", null, 0.5), vf = Num("v_dim_factor", null, 1.0);
            double ffnf = Num("ffn_proj_factor", null, 2.667);
            int ffnm = Int("ffn_round_up_to_multiple_of", null, 64, 1, 1 << 16);
            int vocab = Int("vocab_size", null, null, 1, MaxVocab);
            weightMode = Str("weight_mode") ?? "single";
            if (weightMode is not ("single" or "fused")) throw new BadInputException($"{source}: unknown weight_mode '{weightMode}'");
            if (Flag("use_bias", false)) throw new BadInputException($"{source}: use_bias=true is not supported (the xLSTM 7B architecture has no projection biases)");
            tieEmbeddings = Flag("tie_word_embeddings", false);
            var cfg = new ModelConfig
            {
                Hidden = d,
                Blocks = blocks,
                Heads = heads,
                QkDim = Dim("qk_dim", Math.Floor(d * qkf), MaxProjDim),
                VDim = Dim("v_dim", Math.Floor(d * vf), MaxProjDim),
                FfnDim = Dim("FFN size", Math.Floor((d * ffnf + ffnm - 1) / ffnm) * ffnm, MaxFfn),
                Vocab = vocab,
                NormEps = (float)Num("norm_eps", null, 1e-6),
                CellEps = (float)Num("eps", null, 1e-6),
                GateSoftCap = (float)Num("gate_soft_cap", null, 15.0),
                LogitSoftCap = (float)Num("output_logit_soft_cap", null, 30.0),
                ChunkSize = Int("chunk_size", null, 64, 1, MaxChunk),
                AddOutNorm = Flag("add_out_norm", true),
                BosId = Int("bos_token_id", null, 0, 0, MaxVocab),
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

    public static ModelConfig FromGguf(GgufFile f) => ParseGuard.Run(f.Path, "xLSTM model file", () => ParseGguf(f));

    private static ModelConfig ParseGguf(GgufFile f)
    {
        var m = f.Metadata;
        string arch = m.GetString("general.architecture");
        if (arch != Arch) throw new BadInputException($"{f.Path}: architecture is '{arch}', expected '{Arch}'");
        int I(string key, int max) => (int)m.GetInt(key, 1, max);
        var cfg = new ModelConfig
        {
            Hidden = I("xlstm.embedding_length", MaxHidden),
            Blocks = I("xlstm.block_count", MaxBlocks),
            FfnDim = I("xlstm.feed_forward_length", MaxFfn),
            Vocab = I("xlstm.vocab_size", MaxVocab),
            Heads = I("xlstm.mlstm.head_count", MaxHeads),
            QkDim = I("xlstm.mlstm.qk_dim", MaxProjDim),
            VDim = I("xlstm.mlstm.v_dim", MaxProjDim),
            NormEps = (float)m.GetFloat("xlstm.attention.layer_norm_rms_epsilon", 1e-6),
            LogitSoftCap = (float)m.GetFloat("xlstm.final_logit_softcapping", 30),
            GateSoftCap = (float)m.GetFloat("xlstm.mlstm.gate_soft_cap", 15),
            CellEps = (float)m.GetFloat("xlstm.mlstm.cell_epsilon", 1e-6),
            ChunkSize = (int)m.GetInt("xlstm.mlstm.chunk_size", 1, MaxChunk, 64),
            AddOutNorm = m.GetBool("xlstm.add_out_norm", true),
            BosId = (int)m.GetInt("tokenizer.ggml.bos_token_id", 0, MaxVocab, 0),
        };
        cfg.Validate(f.Path);
        // Cheap consistency checks before anything is allocated from the shape: each block has 9 tensors.
        long needed = 9L * cfg.Blocks + 1 + (cfg.AddOutNorm ? 1 : 0) + 1;
        if (f.TensorNames.Count < needed)
            throw new BadInputException($"{f.Path}: block_count {cfg.Blocks} needs {needed} tensors, the file has {f.TensorNames.Count}");
        long weights = 0;
        foreach (var n in f.TensorNames) weights += f.Tensor(n).Elements;
        cfg.CheckAllocations(f.Path, weights);
        return cfg;
    }
}
