using XlstmRun.Formats;
using XlstmRun.Tests.Support;
using Xunit;

namespace XlstmRun.Tests.Vulkan;

/// <summary>`--backend vulkan|auto`, `--profile` and `info --devices` through the executable (lavapipe here).</summary>
[Collection("vulkan")]
public class VulkanCliTests
{
    private static string Ids(int[] ids) => string.Join(",", ids);

    [Fact]
    public void LogitsAndGenerateWithBackendVulkanMatchReferenceAndCpu()
    {
        var rf = new Reference(TestPaths.Fixture("tiny-f32"));
        string model = Models.Converted("tiny-f32", GgmlType.F32);
        string npy = Path.Combine(TestPaths.TempDir(), "l.npy");
        var r = CliRunner.Run($"logits -m {CliRunner.Q(model)} --backend vulkan --ids {Ids(rf.InputIds)} -o {CliRunner.Q(npy)}");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var (data, _) = Npy.Read(npy);
        Assert.InRange(Reference.RelErr(data, rf["logits_prefill"]), 0, VulkanFixtureTests.Tolerance);

        string args = $"generate -m {CliRunner.Q(model)} --ids {Ids(rf.InputIds)} -n 16";
        var v = CliRunner.Run(args + " --backend vulkan");
        var c = CliRunner.Run(args + " --backend cpu");
        Assert.True(v.ExitCode == 0, v.Stderr);
        Assert.True(c.ExitCode == 0, c.Stderr);
        Assert.Equal(c.Stdout, v.Stdout);
        Assert.Contains(Ids(rf.GreedyIds[..16]), v.Stdout);
    }

    [Fact]
    public void MissingDriverIsAOneLineErrorForVulkanAndASilentCpuFallbackForAuto()
    {
        string model = Models.Converted("tiny-fused", GgmlType.Q8_0);
        var noDriver = new Dictionary<string, string> { ["VK_DRIVER_FILES"] = "/nonexistent/icd.json", ["VK_ICD_FILENAMES"] = "/nonexistent/icd.json" };
        string args = $"generate -m {CliRunner.Q(model)} --ids 1,2,3 -n 4";
        var v = CliRunner.Run(args + " --backend vulkan", env: noDriver);
        Assert.Equal(2, v.ExitCode);
        var lines = v.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: --backend vulkan: no Vulkan driver found", lines[0]);
        var a = CliRunner.Run(args + " --backend auto", env: noDriver);
        var c = CliRunner.Run(args + " --backend cpu");
        Assert.True(a.ExitCode == 0, a.Stderr);
        Assert.Equal(c.Stdout, a.Stdout);
        Assert.DoesNotContain("error", a.Stderr);
        var info = CliRunner.Run("info --devices", env: noDriver);
        Assert.Equal(0, info.ExitCode);
        Assert.Contains("vulkan: none (no Vulkan driver found", info.Stdout);
    }

    /// <summary>`bench --op mma` needs matrix units: on lavapipe (none) and on the CPU it is a one-line error.</summary>
    [Fact]
    public void MatrixPeakWithoutMatrixUnitsIsAOneLineError()
    {
        foreach (var backend in new[] { "vulkan", "cpu" })
        {
            var r = CliRunner.Run($"bench --op mma --backend {backend}");
            Assert.Equal(2, r.ExitCode);
            var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith("bench --op:")).ToArray();
            Assert.Single(lines);
            Assert.StartsWith("error: --op mma: needs a device with matrix units", lines[0]);
            Assert.Equal("", r.Stdout);
        }
    }

    /// <summary>`bench --op alu`: one line with positive rates of packed int8 dot products (lavapipe has the instruction)
    /// and float FMAs on Vulkan; the CPU backend gets a one-line error.</summary>
    [Fact]
    public void AluBenchPrintsTheDotProductAndFmaRates()
    {
        var r = CliRunner.Run("bench --op alu --backend vulkan");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var m = System.Text.RegularExpressions.Regex.Match(r.Stdout, @"^alu: packed int8 dot products \(4 MACs each\) (\d+) G/s \(([\d.]+) T int8 MACs/s\); float FMAs (\d+) G/s",
            System.Text.RegularExpressions.RegexOptions.Multiline);
        Assert.True(m.Success, r.Stdout);
        Assert.True(double.Parse(m.Groups[1].Value) > 0 && double.Parse(m.Groups[3].Value) > 0, r.Stdout);
        var e = CliRunner.Run("bench --op alu --backend cpu");
        Assert.Equal(2, e.ExitCode);
        Assert.StartsWith("error: --op alu: needs a device with timestamps", e.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last());
        Assert.Equal("", e.Stdout);
    }

    /// <summary>`bench --op matmul --overlap`: one row per type with the dependent and the independent time per product
    /// (positive), on Vulkan and the CPU; with an op that is not a product it is a one-line error.</summary>
    [Fact]
    public void OverlapBenchTimesDependentAndIndependentProducts()
    {
        foreach (var backend in new[] { "vulkan", "cpu" })
        {
            var r = CliRunner.Run($"bench --op matmul --overlap --type f16,q4_0 --rows 64 --cols 96 -r 2 --backend {backend}");
            Assert.True(r.ExitCode == 0, r.Stderr);
            foreach (var type in new[] { "f16", "q4_0" })
            {
                var row = r.Stdout.Split('\n').Single(l => l.StartsWith("|  (64x96) | " + type + " |"));
                var cells = row.Split('|', StringSplitOptions.TrimEntries);
                double dep = double.Parse(cells[4], System.Globalization.CultureInfo.InvariantCulture);
                double ind = double.Parse(cells[5], System.Globalization.CultureInfo.InvariantCulture);
                Assert.True(dep > 0 && ind > 0, row);
            }
        }
        var e = CliRunner.Run("bench --op cell --overlap --backend cpu");
        Assert.Equal(2, e.ExitCode);
        Assert.StartsWith("error: --overlap: times matrix products", e.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last(l => !l.StartsWith("bench --op:")));
    }

    [Fact]
    public void InfoDevicesListsTheVulkanDeviceAndProfilePrintsOpTimes()
    {
        var info = CliRunner.Run("info --devices");
        Assert.True(info.ExitCode == 0, info.Stderr);
        Assert.Matches(@"vulkan 0: .+, subgroup \d+, ", info.Stdout);
        Assert.Contains("--backend auto uses", info.Stdout);

        string model = Models.Converted("tiny-bf16", GgmlType.F16);
        var p = CliRunner.Run($"generate -m {CliRunner.Q(model)} --ids 1,2,3,4,5 -n 6 --backend vulkan --profile");
        Assert.True(p.ExitCode == 0, p.Stderr);
        Assert.Contains("GPU profile, replayed decode steps:", p.Stderr);
        Assert.Contains("matvec.f16", p.Stderr);
        Assert.Contains("mlstm.step", p.Stderr);
        Assert.Contains("vulkan wall clock:", p.Stderr);
        var cpu = CliRunner.Run($"generate -m {CliRunner.Q(model)} --ids 1,2,3,4,5 -n 6 --backend cpu --profile");
        Assert.True(cpu.ExitCode == 0, cpu.Stderr);
        Assert.Contains("cpu profile", cpu.Stderr);       // the CPU backend times its ops by class (Cpu/CpuProfileTests.cs)
    }

    [Fact]
    public void BenchComparesGpuDecodeWithTheDeviceCopyBandwidth()
    {
        string model = Models.Converted("tiny-fused", GgmlType.Q4_0);
        var v = CliRunner.Run($"bench -m {CliRunner.Q(model)} --backend vulkan -p 8 -n 4 -r 1 --probe-mib 32");
        Assert.True(v.ExitCode == 0, v.Stderr);
        Assert.Contains("| vulkan |", v.Stdout);
        Assert.Contains("device memory bandwidth (probe: 32 MiB device-to-device copy, read + write", v.Stdout);
        Assert.Contains("vkCmdCopyBuffer", v.Stdout);
        Assert.Matches(@"\| tg4 \| [0-9.]+ ± [0-9.]+ \| [0-9.]+ (B|KiB|MiB|GiB) \| [0-9.]+ \| [0-9.]+ %( \*)? \|", v.Stdout);
        var j = CliRunner.Run($"bench -m {CliRunner.Q(model)} --backend vulkan -p 0 -n 4 -r 1 --probe-mib 32 -o json");
        Assert.True(j.ExitCode == 0, j.Stderr);
        Assert.Contains("\"probe_kind\":\"device\"", j.Stdout);
        var c = CliRunner.Run($"bench -m {CliRunner.Q(model)} --backend cpu -p 0 -n 4 -r 1 --probe-mib 32 -o json");
        Assert.True(c.ExitCode == 0, c.Stderr);
        Assert.Contains("\"probe_kind\":\"host\"", c.Stdout);
        Assert.Contains("read bandwidth (probe before and after the tests: ", c.Stdout);
    }
}
