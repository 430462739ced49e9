using XlstmRun.Backends.Cpu;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Model.Conversion;
using XlstmRun.Tests.Support;
using Xunit;

namespace XlstmRun.Tests.Cpu;

/// <summary>Runs alone: the allocation counter is process-wide, so no other test may run meanwhile.</summary>
[CollectionDefinition(nameof(NotInParallel), DisableParallelization = true)]
public sealed class NotInParallel;

/// <summary>The backend's ops for one decode token allocate nothing once warm (on any thread).</summary>
[Collection(nameof(NotInParallel))]
public class CpuAllocationTests
{
    [Theory]
    [InlineData(GgmlType.Q4_0, true)]
    [InlineData(GgmlType.Q8_0, false)]
    [InlineData(GgmlType.F16, true)]
    public void DecodeStepOpsAllocateNothing(GgmlType type, bool int8)
    {
        var cfg = RandomModel.Shape(256, 2, 4, 512);
        var path = Path.Combine(TestPaths.TempDir(), "alloc.gguf");
        ModelWriter.Write(path, cfg, type, RandomModel.Sources(cfg, 3), _ => { }, null);
        using var f = GgufFile.Open(path);
        using var be = new CpuBackend(2, int8Activations: int8);
        var c = cfg;
        var shapes = TensorNames.All(c).ToDictionary(t => t.Name, t => t.Shape);
        IWeight W(string n) => be.LoadWeight(f.Tensor(n, shapes[n]));
        var embd = W(TensorNames.TokenEmbd); var outW = W(TensorNames.Output); var outNorm = W(TensorNames.OutputNorm);
        var blk = Enumerable.Range(0, c.Blocks).Select(b => new[]
        {
            W(TensorNames.AttnNorm(b)), W(TensorNames.Qkvo(b)), W(TensorNames.Gates(b)), W(TensorNames.GatesBias(b)), W(TensorNames.HeadNorm(b)),
            W(TensorNames.Out(b)), W(TensorNames.FfnNorm(b)), W(TensorNames.FfnGateUp(b)), W(TensorNames.FfnDown(b)),
        }).ToArray();
        var X = be.Alloc(4, c.Hidden); var A = be.Alloc(4, c.Hidden); var Q = be.Alloc(4, c.QkvoDim); var G = be.Alloc(4, 2 * c.Heads);
        var H = be.Alloc(4, c.VDim); var Gg = be.Alloc(4, c.VDim); var GU = be.Alloc(4, 2 * c.FfnDim); var S = be.Alloc(4, c.FfnDim);
        var XF = be.Alloc(4, c.Hidden); var L = be.Alloc(4, c.Vocab);
        var tok = be.AllocTokens(4); var idx = be.AllocIndices(4); var st = be.AllocState(c);
        var ids = new int[1];
        void Step(int id)
        {
            ids[0] = id;
            be.WriteTokens(tok, ids);
            ITensor x = be.Rows(X, 0, 1), a = be.Rows(A, 0, 1), q = be.Rows(Q, 0, 1), g = be.Rows(G, 0, 1), h = be.Rows(H, 0, 1);
            ITensor gg = be.Rows(Gg, 0, 1), gu = be.Rows(GU, 0, 1), s = be.Rows(S, 0, 1), xf = be.Rows(XF, 0, 1), l = be.Rows(L, 0, 1);
            be.Embed(embd, tok, x);
            for (int b = 0; b < c.Blocks; b++)
            {
                var w = blk[b];
                be.RmsNorm(x, w[0], a, c.NormEps);
                be.MatMul(w[1], a, q);
                be.MatMul(w[2], a, g, w[3]);
                be.MlstmCell(c, q, g, st, b, h);
                be.HeadNormGate(c, h, q, w[4], gg);
                be.MatMul(w[5], gg, x, accumulate: true);
                be.RmsNorm(x, w[6], a, c.NormEps);
                be.MatMul(w[7], a, gu);
                be.SwiGlu(gu, s);
                be.MatMul(w[8], s, x, accumulate: true);
            }
            be.RmsNorm(x, outNorm, xf, c.NormEps);
            be.MatMul(outW, xf, l);
            be.SoftCap(l, c.LogitSoftCap);
            be.Argmax(l, c.Vocab, idx);
        }
        for (int i = 0; i < 5; i++) Step(i);
        // The counter is process-wide and the test runner's own threads allocate now and then, so take the best of a few
        // trials: an op that allocates would allocate in every one of them.
        long best = long.MaxValue;
        for (int trial = 0; trial < 6 && best != 0; trial++)
        {
            long before = GC.GetTotalAllocatedBytes(precise: true);
            for (int i = 0; i < 20; i++) Step(i * 7 % 512);
            best = Math.Min(best, GC.GetTotalAllocatedBytes(precise: true) - before);
        }
        Assert.Equal(0, best);
    }
}
