using XlstmRun.Backends.Cpu;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.Cpu;

/// <summary>
/// The CPU side of the multi-sequence engine: <see cref="CpuBackend.MlstmStepRows"/> (every (row, head) pair in one
/// parallel region) against the one-sequence cell on each slot, and whole batched decode steps with 8-bit activations
/// over packed weights (the GEMM over B rows) against the same sequences decoded alone (the matrix-vector kernels).
/// </summary>
public class CpuBatchStepTests(ITestOutputHelper output)
{
    private static string Model(GgmlType type) => CpuBackendPathTests.Model(type);

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void StepRowsEqualsTheCellOnEachSlot(int threads)
    {
        using var f = GgufFile.Open(Model(GgmlType.F32));
        var c = ModelConfig.FromGguf(f);
        const int B = 5;
        var rnd = new Random(3);
        float[] Rand(long n, float scale) => Enumerable.Range(0, (int)n).Select(_ => (float)(rnd.NextDouble() * 2 - 1) * scale).ToArray();
        var qkvo = Rand((long)B * c.QkvoDim, 1f);
        var gates = Rand((long)B * 2 * c.Heads, 4f);
        // a non-trivial state in every slot (m finite, as after some tokens)
        var init = Rand(c.StateFloats * B, 0.5f);

        using var be = new CpuBackend(threads, int8Activations: false);
        var all = be.AllocState(c, B);
        be.WriteState(all, init);
        var X = be.Alloc(B, c.QkvoDim);
        var G = be.Alloc(B, 2 * c.Heads);
        var H = be.Alloc(B, c.VDim);
        ((CpuTensor)X).Span.Clear();
        qkvo.CopyTo(((CpuTensor)X).Span);
        gates.CopyTo(((CpuTensor)G).Span);
        for (int block = 0; block < c.Blocks; block++) be.MlstmStepRows(c, X, G, all, block, H);
        var gotState = new float[c.StateFloats * B];
        be.ReadState(all, gotState);
        var gotH = ((CpuTensor)H).Span.ToArray();

        // each slot alone, through the one-sequence cell
        for (int r = 0; r < B; r++)
        {
            var one = be.AllocState(c);
            be.WriteState(one, init.AsSpan((int)(r * c.StateFloats), (int)c.StateFloats));
            var h1 = be.Alloc(1, c.VDim);
            for (int block = 0; block < c.Blocks; block++) be.MlstmCell(c, be.Rows(X, r, 1), be.Rows(G, r, 1), one, block, h1);
            var s1 = new float[c.StateFloats];
            be.ReadState(one, s1);
            Assert.Equal(s1, gotState.AsSpan((int)(r * c.StateFloats), (int)c.StateFloats).ToArray());
            Assert.Equal(((CpuTensor)h1).Span.ToArray(), gotH.AsSpan(r * c.VDim, c.VDim).ToArray());
            // the other slots' storage is not this one's: the slot view reads back exactly slot r
            var view = new float[c.StateFloats];
            be.ReadState(be.StateSlot(all, r), view);
            Assert.Equal(s1, view);
        }
    }

    [Theory]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q8_0)]
    public void BatchedStepsWithInt8ActivationsMatchSequencesAlone(GgmlType type)
    {
        using var f = GgufFile.Open(Model(type));
        using var be = new CpuBackend(2);
        var w = new ModelWeights(f, be);
        int V = w.Config.Vocab;
        // five sequences (a full token tile of the GEMM and one more), prompts of different lengths
        const int B = 5, Steps = 6;
        int[][] prompts = Enumerable.Range(0, B).Select(s => Enumerable.Range(0, 1 + 17 * s).Select(i => (i * 31 + 7 * s + 3) % V).ToArray()).ToArray();
        int[][] feed = Enumerable.Range(0, B).Select(s => Enumerable.Range(0, Steps).Select(i => (i * 53 + 11 * s + 1) % V).ToArray()).ToArray();

        var want = new float[B][][];
        for (int s = 0; s < B; s++)
        {
            using var r = new ModelRunner(w, null);
            var l = new float[V];
            r.Forward(prompts[s], LogitsMode.Last, l);
            want[s] = new float[Steps][];
            for (int i = 0; i < Steps; i++)
            {
                r.Forward(feed[s].AsSpan(i, 1), LogitsMode.Last, l);
                want[s][i] = (float[])l.Clone();
            }
        }

        using var br = new BatchRunner(w, B);
        var pl = new float[V];
        for (int s = 0; s < B; s++)
        {
            br.Reset(s);
            br.Slot(s).Forward(prompts[s], LogitsMode.Last, pl);
        }
        var argmax = new int[B];
        var logits = new float[B * V];
        double worst = 0;
        for (int i = 0; i < Steps; i++)
        {
            br.Step(Enumerable.Range(0, B).Select(s => feed[s][i]).ToArray(), V, argmax, logits);
            for (int s = 0; s < B; s++)
            {
                double e = Reference.RelErr(logits.AsSpan(s * V, V), want[s][i]);
                worst = Math.Max(worst, e);
                // the same 8-bit activations and integer block sums: only the float summation order of the blocks differs
                Assert.True(e <= 2e-5, $"{type} sequence {s} step {i}: relative error {e:E2} against the sequence alone");
            }
        }
        output.WriteLine($"{type}: worst relative error of batched logits against single sequences {worst:E2}");
    }
}
