using XlstmRun.Conformance;
using XlstmRun.Conformance.Reference;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.Conformance;

/// <summary>
/// The float64 reference engine (<see cref="ReferenceEngine{T}"/>, T = double) against transformers' float64 references:
/// it must match them to the float32 rounding of the stored references (~1e-7), in both cell forms, for every quantity.
/// </summary>
public class ReferenceEngineTests
{
    private readonly ITestOutputHelper _out;
    public ReferenceEngineTests(ITestOutputHelper output) { _out = output; }

    /// <summary>The stored references are float32 roundings of float64 results: 2⁻²⁴·√(mean square) ≈ 6e-8 relative.</summary>
    public const double Bound = 2e-7;

    public static TheoryData<string, CellForm> Cases()
    {
        var d = new TheoryData<string, CellForm>();
        foreach (var f in TestPaths.FixtureNames)
            foreach (var form in new[] { CellForm.Chunkwise, CellForm.Step })
                if (f != "tiny-long" || form == CellForm.Chunkwise) d.Add(f, form);
        return d;
    }

    [Theory, MemberData(nameof(Cases))]
    public void MatchesTheFixtureReferences(string fixture, CellForm form)
    {
        var rf = Shared.Fixture(fixture).Reference;
        using var file = GgufFile.Open(Models.Converted(fixture, GgmlType.F32));
        var e = new ReferenceEngine<double>(file) { Form = form };
        var c = e.Config;
        int V = c.Vocab;
        var prompt = e.Logits(rf.InputIds);
        var state = (double[])e.State.Clone();
        var greedy = new double[rf.GreedyIds.Length * V];
        for (int i = 0; i < rf.GreedyIds.Length; i++) e.Forward(rf.GreedyIds.AsSpan(i, 1), greedy.AsSpan(i * V, V));
        var cont = e.Logits(rf.ContinueIds);
        var errs = new List<(string, double)>
        {
            ("prompt", Metrics.RelErr(rf["logits_prefill"], prompt)),
            ("steps (reference's step form)", Metrics.RelErr(rf["logits_step"], prompt)),
            ("greedy", Metrics.RelErr(rf["greedy_logits"], greedy)),
            ("continuation", Metrics.RelErr(rf["logits_continue"], cont)),
        };
        int nc = c.Heads * c.DQk * c.DV, nn = c.Heads * c.DQk;
        for (int b = 0; b < c.Blocks; b++)
        {
            int o = (int)(b * c.StateFloatsPerBlock);
            errs.Add(($"state {b} C", Metrics.RelErr(rf[$"state.{b}.C"], state.AsSpan(o, nc))));
            errs.Add(($"state {b} n", Metrics.RelErr(rf[$"state.{b}.n"], state.AsSpan(o + nc, nn))));
            errs.Add(($"state {b} m", Metrics.RelErr(rf[$"state.{b}.m"], state.AsSpan(o + nc + nn, c.Heads))));
        }
        foreach (var (what, err) in errs)
        {
            _out.WriteLine($"{what}: {err:E2}");
            Assert.InRange(err, 0, Bound);
        }
        // greedy ids: the argmax of the engine's logits
        Assert.Equal(rf.GreedyIds[0], Metrics.ArgMax(prompt.AsSpan(prompt.Length - V).ToArray().Select(x => (float)x).ToArray()));
    }

    /// <summary>The two cell forms are the same function: in double they agree to rounding, whatever the chunk size.</summary>
    [Theory]
    [InlineData(64, 700)]
    [InlineData(7, 100)]
    [InlineData(1, 20)]
    public void ChunkwiseAndStepFormsAgreeInDouble(int chunk, int tokens)
    {
        var spec = new RandomModelSpec { Hidden = 40, Blocks = 2, Heads = 3, DQk = 7, DV = 11, Ffn = 50, Vocab = 60, ChunkSize = chunk,
            ForgetBiasLow = -20, ForgetBiasHigh = 10, InputBiasMean = 5, InputBiasStd = 8, Seed = (ulong)chunk };
        string path = Path.Combine(TestPaths.TempDir(), "m.gguf");
        RandomModels.Write(path, spec);
        using var file = GgufFile.Open(path);
        var rng = new RandomModels.Normal(3);
        var ids = Enumerable.Range(0, tokens).Select(_ => rng.Int(0, spec.Vocab)).ToArray();
        var a = new ReferenceEngine<double>(file) { Form = CellForm.Chunkwise };
        var b = new ReferenceEngine<double>(file) { Form = CellForm.Step };
        var la = a.Logits(ids);
        var lb = b.Logits(ids);
        double num = 0, den = 0;
        for (int i = 0; i < la.Length; i++) { num += (la[i] - lb[i]) * (la[i] - lb[i]); den += lb[i] * lb[i]; }
        double e = Math.Sqrt(num / den);
        _out.WriteLine($"chunk {chunk}: chunkwise vs step {e:E2}");
        Assert.InRange(e, 0, 1e-11);
        var sa = a.State;
        var sb = b.State;
        for (int i = 0; i < sa.Length; i++) Assert.InRange(Math.Abs(sa[i] - sb[i]), 0, 1e-9 * (1 + Math.Abs(sb[i])));
    }
}
