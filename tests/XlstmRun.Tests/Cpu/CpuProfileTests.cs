using System.Text.RegularExpressions;
using XlstmRun.Backends.Cpu;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Model.Conversion;
using XlstmRun.Tests.Support;
using Xunit;

namespace XlstmRun.Tests.Cpu;

/// <summary>The CPU backend's per-op-class profile (`--profile`): every op counted in the right phase and class.</summary>
public class CpuProfileTests
{
    [Fact]
    public void ProfileCountsEveryOpByPhaseAndClass()
    {
        var cfg = RandomModel.Shape(256, 2, 4, 512);
        var path = Path.Combine(TestPaths.TempDir(), "profile-q4_0.gguf");
        ModelWriter.Write(path, cfg, GgmlType.Q4_0, RandomModel.Sources(cfg, 5), _ => { }, null);
        using var f = GgufFile.Open(path);
        using var be = new CpuBackend(2, profile: true);
        var r = new ModelRunner(f, be, maxBatch: 64);
        var prompt = Enumerable.Range(0, 80).Select(i => (i * 13 + 1) % 512).ToArray();
        r.Forward(prompt, LogitsMode.Last, new float[cfg.Vocab]);         // two batches: 64 + 16 tokens
        for (int i = 0; i < 3; i++) r.StepGreedy(i + 7, cfg.Vocab);       // three decode tokens
        string rep = be.ProfileReport();

        Assert.Contains("prefill: 2 batches, 80 tokens", rep);
        Assert.Contains("decode: 3 tokens", rep);
        int Calls(string phase, string op)
        {
            // the rows of one phase: from its header to the next blank-free header or the end
            int at = rep.IndexOf(phase + ":", StringComparison.Ordinal);
            int end = rep.IndexOf(phase == "prefill" ? "decode:" : "prefill:", at + 1, StringComparison.Ordinal);
            string part = end > at ? rep[at..end] : rep[at..];
            var m = Regex.Match(part, "  " + Regex.Escape(op) + @"\s+(\d+)\s");
            Assert.True(m.Success, $"no '{op}' row in the {phase} part of:\n{rep}");
            return int.Parse(m.Groups[1].Value);
        }
        // per block: 4 quantized matrix products, one cell, two norms; the head once per pass with logits
        Assert.Equal(3 * cfg.Blocks, Calls("decode", "matvec mlstm_qkvo q4_0"));
        Assert.Equal(3 * cfg.Blocks, Calls("decode", "matvec ffn_down q4_0"));
        Assert.Equal(3, Calls("decode", "matvec output q4_0"));
        Assert.Equal(3 * cfg.Blocks, Calls("decode", "mlstm cell"));
        Assert.Equal(3 * (2 * cfg.Blocks + 1), Calls("decode", "rms_norm"));
        Assert.Equal(3, Calls("decode", "argmax"));
        Assert.Equal(2 * cfg.Blocks, Calls("prefill", "matmul ffn_gate_up q4_0"));
        Assert.Equal(2 * cfg.Blocks, Calls("prefill", "mlstm cell"));
        Assert.Contains("between ops", rep);
        // matrix products report the bytes they read per second
        Assert.Matches(@"matvec ffn_down q4_0\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+ %\s+[\d.]+", rep);
    }

    [Fact]
    public void NoProfileUnlessAsked()
    {
        using var be = new CpuBackend(1);
        Assert.Equal("", be.ProfileReport());
    }
}
