using XlstmRun.Backends.OpenCL;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Tests.Support;
using Xunit;

namespace XlstmRun.Tests.OpenCL;

/// <summary>
/// OpenCL-specific model-level tests (PoCL in CI). The fixture checks every backend shares are in
/// Conformance/FixtureConformanceTests.cs (the work-group kernels as the device variant opencl:N:wg).
/// </summary>
public class OpenClFixtureTests
{
    /// <summary>Weights split into many small device buffers give the same logits as whole weights.</summary>
    [Fact]
    public void SplitWeightsGiveTheSameLogits()
    {
        var rf = new Reference(TestPaths.Fixture("tiny-f32"));
        using var f = GgufFile.Open(Models.Converted("tiny-f32", GgmlType.Q8_0));
        float[] Logits(OpenClBackend be)
        {
            using var _ = be;
            var r = new ModelRunner(f, be);
            var l = new float[rf.InputIds.Length * r.Config.Vocab];
            r.Forward(rf.InputIds, LogitsMode.All, l);
            return l;
        }
        var whole = Logits(new OpenClBackend());
        var small = new OpenClBackend(-1, 4096);
        var w = (ClWeight)small.LoadWeight(f.Tensor(TensorNames.Output));
        Assert.True(w.PartCount > 1, $"output weight in {w.PartCount} part(s)");
        var split = Logits(small);
        Assert.Equal(whole, split);
    }
}
