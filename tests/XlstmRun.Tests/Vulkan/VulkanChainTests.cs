using XlstmRun.Backends.Vulkan;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.Vulkan;

/// <summary>
/// Chained dispatches (shaders/chain.glsl, CommandStream's links): the decode step's matvecs and step kernels wait in
/// the shader for the dispatch before them instead of behind a barrier. The arithmetic is unchanged, so a chained step
/// must give the same bits as one with barriers; and the host must link only ops whose predecessor since the last
/// barrier is a link (an op outside the chain ends it). lavapipe runs dispatches one after the other, so here every
/// wait is already satisfied: these tests check what is recorded and that the kernels compute the same with the chain
/// fields set; the H200 conformance check (`check --variants`, device vulkan:0:chain) checks the concurrency.
/// </summary>
[Collection("vulkan")]
public class VulkanChainTests
{
    private readonly ITestOutputHelper _out;
    public VulkanChainTests(ITestOutputHelper output) { _out = output; }

    private static float[][] Decode(VulkanBackend be, GgmlType type, int[] prompt, int steps, out int blocks)
    {
        using var file = GgufFile.Open(Models.Converted("tiny-fused", type));
        var w = new ModelWeights(file, be);
        using var r = new ModelRunner(w, null);
        int V = w.Config.Vocab;
        blocks = w.Config.Blocks;
        var res = new List<float[]>();
        var l = new float[V];
        r.Forward(prompt, LogitsMode.Last, l);
        res.Add((float[])l.Clone());
        for (int i = 0; i < steps; i++)
        {
            r.Forward([l.AsSpan().IndexOf(l.AsSpan().ToArray().Max())], LogitsMode.Last, l);
            res.Add((float[])l.Clone());
        }
        return res.ToArray();
    }

    [Theory]
    [InlineData(GgmlType.F32, false)]
    [InlineData(GgmlType.F16, false)]
    [InlineData(GgmlType.Q4_0, true)]   // int8 matvecs: the producers that quantize for the next norm (M_QOUT) are links
    [InlineData(GgmlType.Q8_0, true)]
    public void ChainedDecodeStepsAreTheSameBitsAsBarriers(GgmlType type, bool intDot)
    {
        var rf = new Reference(TestPaths.Fixture("tiny-fused"));
        var prompt = rf.InputIds.ToArray();
        var opts = new VulkanOptions { IntDot = intDot ? true : null };
        using var plain = VulkanTestDevice.NewBackend(options: opts with { Chain = false });
        using var chained = VulkanTestDevice.NewBackend(options: opts with { Chain = true });
        var want = Decode(plain, type, prompt, 6, out _);
        var got = Decode(chained, type, prompt, 6, out int blocks);
        for (int s = 0; s < want.Length; s++)
            Assert.True(want[s].AsSpan().SequenceEqual(got[s]), $"step {s}: chained logits differ from the barrier ones");
        Assert.Equal(0, plain.ChainedOps);
        // the decode step is a chain: each block's q|k|v|o matvec, step kernel, out, gate|up and down link to the op
        // before them (the first block's matvec follows the embedding, which is not a link)
        Assert.True(chained.ChainedOps >= 4L * blocks, $"{chained.ChainedOps} links recorded, expected at least {4 * blocks}");
        Assert.True(chained.Barriers < plain.Barriers, $"barriers: chained {chained.Barriers}, plain {plain.Barriers}");
        _out.WriteLine($"{GgmlTypes.Name(type)}: links {chained.ChainedOps}, barriers {chained.Barriers} vs {plain.Barriers}");
    }

    [Fact]
    public void AnOpOutsideTheChainEndsIt()
    {
        using var p = new OpPair(5, options: new VulkanOptions { Chain = true });
        int n = 96;
        var (w1c, w1v) = p.Weight(GgmlType.F32, n, n);
        var (w2c, w2v) = p.Weight(GgmlType.F32, n, n);
        var (xc, xv) = p.Tensor(1, n);
        var (d1c, d1v) = p.Tensor(1, n);
        var (d2c, d2v) = p.Tensor(1, n);
        // two dependent matvecs: the second is a link waiting for the first
        p.Vk.MatMul(w1v, xv, d1v);
        p.Vk.MatMul(w2v, d1v, d2v);
        p.ReadVk(d2v);
        Assert.Equal(1, p.Vk.ChainedOps);
        // a soft-cap (not a link) between them: the second matvec needs a barrier, not a wait
        long barriers = p.Vk.Barriers;
        p.Vk.MatMul(w1v, xv, d1v);
        p.Vk.SoftCap(d1v, 2f);
        p.Vk.MatMul(w2v, d1v, d2v);
        Assert.Equal(1, p.Vk.ChainedOps);
        p.Cpu.MatMul(w1c, xc, d1c);
        p.Cpu.SoftCap(d1c, 2f);
        p.Cpu.MatMul(w2c, d1c, d2c);
        Assert.InRange(Reference.RelErr(p.ReadVk(d2v), p.ReadCpu(d2c)), 0, VulkanOpTests.OpTolerance);
        Assert.True(p.Vk.Barriers >= barriers + 2, "the soft-cap and the matvec after it each follow a barrier");
    }
}
