using XlstmRun.Formats.Safetensors;

namespace XlstmRun.Tests.Support;

/// <summary>The reference outputs of a fixture (reference.safetensors).</summary>
public sealed class Reference
{
    private readonly Dictionary<string, float[]> _f = new();
    private readonly Dictionary<string, long[]> _shape = new();
    public int[] InputIds { get; }
    public int[] GreedyIds { get; }
    public int[] ContinueIds { get; }

    public Reference(string fixtureDir)
    {
        using var f = new SafetensorsFile(Path.Combine(fixtureDir, "reference.safetensors"));
        foreach (var (name, t) in f.Tensors)
        {
            _shape[name] = t.Shape;
            if (t.DType != SafeDType.I64) _f[name] = t.ReadAll();
        }
        InputIds = f.Tensors["input_ids"].ReadInt64().Select(x => (int)x).ToArray();
        GreedyIds = f.Tensors["greedy_ids"].ReadInt64().Select(x => (int)x).ToArray();
        ContinueIds = f.Tensors.TryGetValue("continue_ids", out var c) ? c.ReadInt64().Select(x => (int)x).ToArray() : [];
    }

    public float[] this[string name] => _f[name];
    public bool Has(string name) => _f.ContainsKey(name);
    public long[] Shape(string name) => _shape[name];

    /// <summary>‖a − b‖₂ / ‖b‖₂ in double precision.</summary>
    public static double RelErr(ReadOnlySpan<float> ours, ReadOnlySpan<float> reference)
    {
        if (ours.Length != reference.Length) throw new ArgumentException($"length {ours.Length} vs {reference.Length}");
        double num = 0, den = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            double d = (double)ours[i] - reference[i];
            num += d * d;
            den += (double)reference[i] * reference[i];
        }
        return Math.Sqrt(num / den);
    }
}
