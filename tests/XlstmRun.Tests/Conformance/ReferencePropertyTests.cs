using XlstmRun.Conformance;
using XlstmRun.Conformance.Reference;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.Conformance;

/// <summary>
/// Property test: random small models (<see cref="RandomModels.Draw"/>: 1-8 heads, odd head sizes, 1-3 blocks, odd chunk
/// sizes, saturating input gates, closing or saturated forget gates) with random prompts (1-300 tokens, and up to 3000 for
/// every fifth model) on every device's F32 path against the float64 reference engine: prompt logits, the state after the
/// prompt and four decode steps after it, each within the F32 bound (<see cref="Bounds.F32VsReference"/>). Seeded; the
/// float64 results are computed once per model for all devices.
/// </summary>
[Collection("vulkan")]
public class ReferencePropertyTests
{
    private readonly ITestOutputHelper _out;
    public ReferencePropertyTests(ITestOutputHelper output) { _out = output; }

    public const int ModelCount = 12;
    private const int Steps = 4;

    private sealed record Case(RandomModelSpec Spec, string Path, int[] Ids, int Prompt, double[] Logits, double[] State, double[] StepLogits);

    private static readonly Dictionary<int, Case> Cache = new();

    private static Case Get(int index)
    {
        lock (Cache)
        {
            if (Cache.TryGetValue(index, out var c)) return c;
            var spec = RandomModels.Draw((ulong)index);
            var rng = new RandomModels.Normal((ulong)index + 99);
            int T = index % 5 == 0 ? rng.Int(1000, 3001) : rng.Int(1, 301);
            var ids = Enumerable.Range(0, T + Steps).Select(_ => rng.Int(0, spec.Vocab)).ToArray();
            string path = Path.Combine(TestPaths.TempDir(), $"random-{index}.gguf");
            RandomModels.Write(path, spec);
            using var file = GgufFile.Open(path);
            var e = new ReferenceEngine<double>(file);
            var logits = e.Logits(ids.AsSpan(0, T));
            var state = (double[])e.State.Clone();
            var steps = new double[Steps * spec.Vocab];
            for (int k = 0; k < Steps; k++) e.Forward(ids.AsSpan(T + k, 1), steps.AsSpan(k * spec.Vocab, spec.Vocab));
            return Cache[index] = new Case(spec, path, ids, T, logits, state, steps);
        }
    }

    public static TheoryData<int, string> Cases()
    {
        var d = new TheoryData<int, string>();
        for (int i = 0; i < ModelCount; i++)
            foreach (var dev in Shared.Devices.Where(x => x.Id != "cpu-int8" && x.Checks(GgmlType.F32) && (Shared.IsBase(x) || x.Id.EndsWith(":wg", StringComparison.Ordinal))))
                d.Add(i, dev.Id);
        return d;
    }

    [Theory, MemberData(nameof(Cases))]
    public void F32PathMatchesTheFloat64Engine(int model, string device)
    {
        var c = Get(model);
        int V = c.Spec.Vocab;
        using var file = GgufFile.Open(c.Path);
        using var be = Shared.Device(device).Create();
        var r = new ModelRunner(file, be);
        var logits = new float[c.Prompt * V];
        r.Forward(c.Ids.AsSpan(0, c.Prompt), LogitsMode.All, logits);
        var state = r.SaveState();
        var steps = new float[Steps * V];
        for (int k = 0; k < Steps; k++) r.Forward(c.Ids.AsSpan(c.Prompt + k, 1), LogitsMode.Last, steps.AsSpan(k * V, V));
        double eP = Metrics.RelErr(logits, c.Logits), eS = Metrics.RelErr(state, c.State), eT = Metrics.RelErr(steps, c.StepLogits);
        var rows = Metrics.RowErrors(logits, c.Logits.Select(x => (float)x).ToArray(), V);
        int worst = Array.IndexOf(rows, rows.Max());
        string line = $"model {model} ({c.Spec}), prompt {c.Prompt}: prompt logits {eP:E2} (worst position {worst}: {rows[worst]:E2}), state {eS:E2}, steps {eT:E2}";
        _out.WriteLine(line);
        Console.WriteLine($"[property] {device} " + line);
        Assert.InRange(eP, 0, Bounds.F32VsReference);
        Assert.InRange(eS, 0, Bounds.F32VsReference);
        Assert.InRange(eT, 0, Bounds.F32VsReference);
    }
}
