namespace XlstmRun.Model.Conversion;

/// <summary>
/// Random weights for a model of any shape (tests and benchmarks), in the spirit of the reference initialisation:
/// matrices with variance 1/fan_in, norm weights 1, input-gate bias −10 and forget-gate biases spread over [3, 6]
/// so the cell starts stable (forget gate ≈ 1, small input gate). Deterministic for a seed, and each row is generated
/// from its own counter-based stream so rows can be produced in any order and in parallel.
/// </summary>
public static class RandomModel
{
    public static Func<string, IRowSource> Sources(ModelConfig c, ulong seed)
    {
        var shapes = TensorNames.All(c).ToDictionary(t => t.Name, t => t.Shape);
        int index = 0;
        var ids = shapes.Keys.ToDictionary(k => k, _ => index++);
        return name =>
        {
            var shape = shapes[name];
            long rows = shape.Length == 1 ? 1 : shape[0];
            int cols = (int)shape[^1];
            ulong tseed = Mix(seed * 0x9E3779B97F4A7C15UL + (ulong)ids[name]);
            if (name.EndsWith("norm.weight")) return new Const(rows, cols, (_, _) => 1f);
            if (name.EndsWith("mlstm_if.bias"))
                return new Const(rows, cols, (_, j) => j < c.Heads ? -10f : c.Heads == 1 ? 4.5f : 3f + 3f * (j - c.Heads) / (c.Heads - 1));
            float std = name == TensorNames.TokenEmbd ? 1f : name.EndsWith("mlstm_if.weight") ? 0.02f : 1f / MathF.Sqrt(cols);
            return new Uniform(rows, cols, tseed, std);
        };
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private sealed class Const : IRowSource
    {
        private readonly Func<long, int, float> _f;
        public Const(long rows, int cols, Func<long, int, float> f) { Rows = rows; Cols = cols; _f = f; }
        public long Rows { get; }
        public int Cols { get; }
        public void Read(long row, int count, Span<float> dst)
        {
            for (int i = 0; i < count; i++)
                for (int j = 0; j < Cols; j++) dst[i * Cols + j] = _f(row + i, j);
        }
    }

    /// <summary>Uniform in [−√3·std, √3·std] (variance std²), from a per-row xorshift stream.</summary>
    private sealed class Uniform : IRowSource
    {
        private readonly ulong _seed;
        private readonly float _half;
        public Uniform(long rows, int cols, ulong seed, float std) { Rows = rows; Cols = cols; _seed = seed; _half = std * MathF.Sqrt(3f); }
        public long Rows { get; }
        public int Cols { get; }
        public void Read(long row, int count, Span<float> dst)
        {
            for (int i = 0; i < count; i++)
            {
                ulong s = Mix(_seed ^ (ulong)(row + i) * 0xD1B54A32D192ED03UL) | 1;
                var d = dst.Slice(i * Cols, Cols);
                float scale = 2f * _half / (1 << 24);
                for (int j = 0; j < Cols; j++)
                {
                    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                    d[j] = (int)(s >> 40) * scale - _half;
                }
            }
        }
    }

    public static ModelConfig Preset(string name) => name switch
    {
        "tiny" => Shape(64, 2, 2, 512),
        "1b" => Shape(2048, 24, 4, 50304),
        "7b" => Shape(4096, 32, 8, 50304),
        _ => throw new Formats.BadInputException($"unknown preset '{name}' (expected tiny, 1b or 7b)"),
    };

    /// <summary>A config with the 7B ratios (qk 0.5, v 1.0, FFN 2.667 rounded up to 64).</summary>
    public static ModelConfig Shape(int hidden, int blocks, int heads, int vocab)
    {
        var c = new ModelConfig
        {
            Hidden = hidden,
            Blocks = blocks,
            Heads = heads,
            QkDim = (int)(hidden * 0.5),
            VDim = hidden,
            FfnDim = ModelConfig.RoundUpToMultiple(hidden * 2.667, 64),
            Vocab = vocab,
        };
        c.Validate("init");
        return c;
    }
}
