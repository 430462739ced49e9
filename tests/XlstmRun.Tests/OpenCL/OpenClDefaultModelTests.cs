using XlstmRun.Backends.Cpu;
using XlstmRun.Backends.OpenCL;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.OpenCL;

/// <summary>The trained default model (F16 and Q8_0) on the OpenCL engine: transformers' greedy ids, and logits close to the CPU engine.</summary>
public class OpenClDefaultModelTests
{
    private readonly ITestOutputHelper _out;
    public OpenClDefaultModelTests(ITestOutputHelper o) { _out = o; }

    private static string ModelPath(string file) => Path.Combine(TestPaths.RepoRoot, "models", "default", file);

    // Same prompt and ids as DefaultModelTests (transformers 5.17, float32): [0] + "In the beginning", 64 greedy tokens.
    private static readonly int[] PromptIds = [0, 1130, 260, 2046];
    private static readonly int[] TransformersGreedy =
    [
        270, 260, 2773, 446, 270, 389, 15, 200, 297, 310, 387, 319, 338, 13, 305, 392, 342, 460, 438, 839, 27, 321, 305, 396,
        342, 1190, 260, 603, 499, 864, 13, 441, 397, 396, 342, 1190, 260, 603, 499, 1630, 15, 200, 297, 337, 387, 13, 1747,
        396, 320, 1061, 653, 1295, 341, 365, 15, 200, 297, 337, 387, 13, 1747, 396, 320, 1061,
    ];

    [Theory]
    [InlineData("default.gguf")]
    [InlineData("default-q8_0.gguf")]
    public void GreedyIdsMatchTransformers(string file)
    {
        using var f = GgufFile.Open(ModelPath(file));
        using var be = new OpenClBackend();
        var r = new ModelRunner(f, be);
        var ids = new List<int> { r.ForwardGreedy(PromptIds, r.Config.Vocab) };
        while (ids.Count < TransformersGreedy.Length) ids.Add(r.StepGreedy(ids[^1], r.Config.Vocab));
        Assert.Equal(TransformersGreedy, ids);
    }

    /// <summary>68 tokens in one prefill (a full chunk of 64 plus a partial one of 4): logits within 1e-5 of the CPU engine.</summary>
    [Theory]
    [InlineData("default.gguf")]
    [InlineData("default-q8_0.gguf")]
    public void PrefillLogitsMatchCpu(string file)
    {
        using var f = GgufFile.Open(ModelPath(file));
        int[] ids = [.. PromptIds, .. TransformersGreedy];
        float[] Logits(IBackend be)
        {
            var r = new ModelRunner(f, be);
            var l = new float[ids.Length * r.Config.Vocab];
            r.Forward(ids, LogitsMode.All, l);
            return l;
        }
        var cpu = Logits(new CpuBackend(2, int8Activations: false));
        using var cl = new OpenClBackend();
        var gpu = Logits(cl);
        double e = Reference.RelErr(gpu, cpu);
        _out.WriteLine($"{file}: relative error vs CPU {e:E2}");
        Assert.InRange(e, 0, 1e-5);
    }
}
