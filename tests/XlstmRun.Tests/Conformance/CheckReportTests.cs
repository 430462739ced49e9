using XlstmRun.Conformance;
using Xunit;

namespace XlstmRun.Tests.Conformance;

/// <summary>The short table of `xlstm-run check --summary`: per cell the check closest to its bound, failures and near ties marked.</summary>
public class CheckReportTests
{
    [Fact]
    public void SummaryTablePicksTheCheckClosestToItsBoundAndMarksFailuresAndTies()
    {
        CheckRow R(string dev, string type, string q, double e, double b, bool pass = true) => new("tiny-f32", dev, type, q, "ref", e, b, pass);
        var rows = new List<CheckRow>
        {
            // f32 on cpu: the state (2e-5 of 3e-5) is closer to its bound than the larger logits error (5e-5 of 1e-3)
            R("cpu", "f32", "prompt logits", 5e-5, 1e-3),
            R("cpu", "f32", "state C", 2e-5, 3e-5),
            R("cpu", "f32", "prompt logits KL", 1.0, 1e-8, pass: true),    // KL rows are not relative errors: left out
            R("cpu", "f32", "greedy ids", 0, 0),
            // q4_0 on cpu: a failed check and an accepted near tie
            R("cpu", "q4_0", "step logits", 0.5, 0.25, pass: false),
            R("cpu", "q4_0", "greedy ids", 2, 0),
            // vulkan:0 has only f32
            R("vulkan:0", "f32", "prompt logits", 1e-6, 3e-5),
        };
        var lines = CheckReport.SummaryTable(rows).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("| fixture | device | f32 | q4_0 |", lines[0]);
        Assert.Equal(4, lines.Length);
        Assert.Equal("| tiny-f32 | cpu | 2.00e-05 (3.00e-05) | 5.00e-01 (2.50e-01) FAIL tie |", lines[2]);
        Assert.Equal("| tiny-f32 | vulkan:0 | 1.00e-06 (3.00e-05) |  |", lines[3]);
    }
}
