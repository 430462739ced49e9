using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Formats.Safetensors;

namespace XlstmRun.Model.Conversion;

/// <summary>Hugging Face xLSTM checkpoint (single or fused weight mode, F32/F16/BF16, one file or shards) → GGUF.</summary>
public static class HfConverter
{
    /// <summary>Rows taken from several checkpoint tensors stacked along the row axis (how fused projections are built).</summary>
    private sealed class Stacked : IRowSource
    {
        private readonly SafeTensor[] _parts;
        // One read buffer per thread, shared by all sources, so memory does not grow with the number of tensors.
        [ThreadStatic] private static byte[]? _scratch;

        public Stacked(int cols, params SafeTensor[] parts)
        {
            _parts = parts;
            Cols = cols;
            Rows = parts.Sum(p => p.Rows);
        }

        public long Rows { get; }
        public int Cols { get; }

        public void Read(long row, int count, Span<float> dst)
        {
            int done = 0;
            long start = 0;
            foreach (var p in _parts)
            {
                long end = start + p.Rows;
                while (done < count && row + done < end)
                {
                    long local = row + done - start;
                    int n = (int)Math.Min(count - done, p.Rows - local);
                    long need = (long)n * Cols * p.ElementSize;
                    if (_scratch == null || _scratch.Length < need) _scratch = new byte[need];
                    p.ReadRows(local, n, dst.Slice(done * Cols, n * Cols), _scratch);
                    done += n;
                }
                start = end;
            }
        }
    }

    public static ModelConfig ReadConfig(HfCheckpoint ck, out string weightMode, out bool tied) =>
        ModelConfig.FromHfJson(ck.ConfigJson, Path.Combine(ck.Directory, "config.json"), out weightMode, out tied);

    /// <summary>Map every GGUF tensor to its checkpoint source, checking each checkpoint tensor's shape against the config.</summary>
    public static Func<string, IRowSource> Sources(HfCheckpoint ck, ModelConfig c, string weightMode, bool tied)
    {
        SafeTensor T(string name, params long[] shape)
        {
            var t = ck.Tensor(name);
            if (!t.Shape.SequenceEqual(shape))
                throw new BadInputException($"{ck.Directory}: tensor '{name}' has shape {t.ShapeString}, but config.json implies [{string.Join(", ", shape)}]");
            return t;
        }
        var map = new Dictionary<string, IRowSource>();
        int D = c.Hidden;
        map[TensorNames.TokenEmbd] = new Stacked(D, T("backbone.embeddings.weight", c.Vocab, D));
        for (int b = 0; b < c.Blocks; b++)
        {
            string p = $"backbone.blocks.{b}.";
            string ml = p + "mlstm_layer.";
            map[TensorNames.AttnNorm(b)] = new Stacked(D, T(p + "norm_mlstm.weight", D));
            if (weightMode == "fused")
            {
                map[TensorNames.Qkvo(b)] = new Stacked(D, T(ml + "qkv_opreact.weight", c.QkvoDim, D));
                map[TensorNames.Gates(b)] = new Stacked(D, T(ml + "ifgate_preact.weight", 2 * c.Heads, D));
                map[TensorNames.GatesBias(b)] = new Stacked(2 * c.Heads, T(ml + "ifgate_preact.bias", 2 * c.Heads));
                map[TensorNames.FfnGateUp(b)] = new Stacked(D, T(p + "ffn.proj_up_gate_z.weight", 2 * c.FfnDim, D));
            }
            else
            {
                map[TensorNames.Qkvo(b)] = new Stacked(D, T(ml + "q.weight", c.QkDim, D), T(ml + "k.weight", c.QkDim, D),
                    T(ml + "v.weight", c.VDim, D), T(ml + "ogate_preact.weight", c.VDim, D));
                map[TensorNames.Gates(b)] = new Stacked(D, T(ml + "igate_preact.weight", c.Heads, D), T(ml + "fgate_preact.weight", c.Heads, D));
                map[TensorNames.GatesBias(b)] = new BiasPair(T(ml + "igate_preact.bias", c.Heads), T(ml + "fgate_preact.bias", c.Heads));
                map[TensorNames.FfnGateUp(b)] = new Stacked(D, T(p + "ffn.proj_up_gate.weight", c.FfnDim, D), T(p + "ffn.proj_up.weight", c.FfnDim, D));
            }
            map[TensorNames.HeadNorm(b)] = new Stacked(c.VDim, T(ml + "multihead_norm.weight", c.VDim));
            map[TensorNames.Out(b)] = new Stacked(c.VDim, T(ml + "out_proj.weight", D, c.VDim));
            map[TensorNames.FfnNorm(b)] = new Stacked(D, T(p + "norm_ffn.weight", D));
            map[TensorNames.FfnDown(b)] = new Stacked(c.FfnDim, T(p + "ffn.proj_down.weight", D, c.FfnDim));
        }
        if (c.AddOutNorm) map[TensorNames.OutputNorm] = new Stacked(D, T("backbone.out_norm.weight", D));
        map[TensorNames.Output] = tied || !ck.Tensors.ContainsKey("lm_head.weight")
            ? (tied ? map[TensorNames.TokenEmbd] : throw new BadInputException($"{ck.Directory}: missing tensor 'lm_head.weight'"))
            : new Stacked(D, T("lm_head.weight", c.Vocab, D));
        return name => map[name];
    }

    /// <summary>Two 1-D bias vectors concatenated into one row.</summary>
    private sealed class BiasPair : IRowSource
    {
        private readonly SafeTensor _a, _b;
        public BiasPair(SafeTensor a, SafeTensor b) { _a = a; _b = b; }
        public long Rows => 1;
        public int Cols => (int)(_a.Cols + _b.Cols);
        public void Read(long row, int count, Span<float> dst)
        {
            _a.ReadAll().CopyTo(dst);
            _b.ReadAll().CopyTo(dst[(int)_a.Cols..]);
        }
    }
}
