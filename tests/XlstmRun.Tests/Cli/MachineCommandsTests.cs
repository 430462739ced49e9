using System.Text.Json;
using XlstmRun.Formats;
using XlstmRun.Tests.Support;
using Xunit;

namespace XlstmRun.Tests.Cli;

/// <summary>The machine-facing commands (convert, logits, generate --json, state files) through the executable.</summary>
public class MachineCommandsTests
{
    private static string Ids(int[] ids) => string.Join(",", ids);

    private static string Convert(string fixture, string type, string dir)
    {
        var o = Path.Combine(dir, $"{fixture}-{type}.gguf");
        var r = CliRunner.Run($"convert {CliRunner.Q(TestPaths.Fixture(fixture))} -o {CliRunner.Q(o)} --type {type}");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("convert: 100%", r.Stderr); // progress is reported
        return o;
    }

    [Theory]
    [InlineData("tiny-f32")]
    [InlineData("tiny-bf16")]
    [InlineData("tiny-fused")]
    public void LogitsAndGreedyThroughTheBinaryMatchReference(string fixture)
    {
        var dir = TestPaths.TempDir();
        var model = Convert(fixture, "f32", dir);
        var rf = new Reference(TestPaths.Fixture(fixture));
        var npy = Path.Combine(dir, "logits.npy");
        var r = CliRunner.Run($"logits -m {CliRunner.Q(model)} --ids {Ids(rf.InputIds)} -o {CliRunner.Q(npy)}");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var (data, shape) = Npy.Read(npy);
        Assert.Equal(new long[] { rf.InputIds.Length, rf.Shape("logits_prefill")[1] }, shape);
        Assert.InRange(Reference.RelErr(data, rf["logits_prefill"]), 0, 3e-5);

        var g = CliRunner.Run($"generate -m {CliRunner.Q(model)} --ids {Ids(rf.InputIds)} -n {rf.GreedyIds.Length} --temp 0 --json");
        Assert.True(g.ExitCode == 0, g.Stderr);
        using var doc = JsonDocument.Parse(g.Stdout);
        var ids = doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(rf.GreedyIds, ids);
    }

    [Fact]
    public void SavedStateContinuesExactlyLikeOneLongRun()
    {
        var dir = TestPaths.TempDir();
        var model = Convert("tiny-f32", "f32", dir);
        var rf = new Reference(TestPaths.Fixture("tiny-f32"));
        var prompt = rf.InputIds;
        var state = Path.Combine(dir, "after-prompt.state");
        // logits over the prompt, saving the state
        var r1 = CliRunner.Run($"logits -m {CliRunner.Q(model)} --ids {Ids(prompt)} -o {CliRunner.Q(Path.Combine(dir, "a.npy"))} --save-state {CliRunner.Q(state)}");
        Assert.True(r1.ExitCode == 0, r1.Stderr);
        // resume from the state with the continuation ids: must equal the reference's greedy logits
        var npy = Path.Combine(dir, "b.npy");
        var r2 = CliRunner.Run($"logits -m {CliRunner.Q(model)} --ids {Ids(rf.GreedyIds)} -o {CliRunner.Q(npy)} --load-state {CliRunner.Q(state)}");
        Assert.True(r2.ExitCode == 0, r2.Stderr);
        var (data, _) = Npy.Read(npy);
        Assert.InRange(Reference.RelErr(data, rf["greedy_logits"]), 0, 3e-5);
        // a generate run resumed from the state gives the reference greedy ids after the first one
        var g = CliRunner.Run($"generate -m {CliRunner.Q(model)} --ids {rf.GreedyIds[0]} -n {rf.GreedyIds.Length - 1} --temp 0 --json --load-state {CliRunner.Q(state)}");
        Assert.True(g.ExitCode == 0, g.Stderr);
        using var doc = JsonDocument.Parse(g.Stdout);
        Assert.Equal(rf.GreedyIds[1..], doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
    }

    [Fact]
    public void StateFileRejectsCorruptionAndOtherModels()
    {
        var dir = TestPaths.TempDir();
        var model = Convert("tiny-f32", "f32", dir);
        var other = Convert("tiny-fused", "f32", dir);
        var state = Path.Combine(dir, "s.state");
        Assert.Equal(0, CliRunner.Run($"generate -m {CliRunner.Q(model)} --ids 5,6,7 -n 1 --temp 0 --save-state {CliRunner.Q(state)}").ExitCode);
        var r = CliRunner.Run($"generate -m {CliRunner.Q(other)} --ids 5 -n 1 --temp 0 --load-state {CliRunner.Q(state)}");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("state is for a model with 2 blocks, 2 heads", r.Stderr);
        var bytes = File.ReadAllBytes(state);
        bytes[100] ^= 0x40;
        File.WriteAllBytes(state, bytes);
        r = CliRunner.Run($"generate -m {CliRunner.Q(model)} --ids 5 -n 1 --temp 0 --load-state {CliRunner.Q(state)}");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("checksum mismatch", r.Stderr);
    }

    [Fact]
    public void InitWritesAModelOfTheAskedShapeThatRuns()
    {
        var dir = TestPaths.TempDir();
        var m = Path.Combine(dir, "r.gguf");
        var r = CliRunner.Run($"init -o {CliRunner.Q(m)} --hidden 96 --blocks 3 --heads 3 --vocab 200 --type q8_0 --seed 5 -q");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var info = CliRunner.Run($"info -m {CliRunner.Q(m)}");
        Assert.Contains("hidden 96, blocks 3, heads 3 (qk head dim 16, v head dim 32), ffn 256, vocab 200", info.Stdout);
        Assert.Contains("q8_0", info.Stdout);
        // same seed → identical file; other seed → different weights
        var m2 = Path.Combine(dir, "r2.gguf");
        var m3 = Path.Combine(dir, "r3.gguf");
        Assert.Equal(0, CliRunner.Run($"init -o {CliRunner.Q(m2)} --hidden 96 --blocks 3 --heads 3 --vocab 200 --type q8_0 --seed 5 -q").ExitCode);
        Assert.Equal(0, CliRunner.Run($"init -o {CliRunner.Q(m3)} --hidden 96 --blocks 3 --heads 3 --vocab 200 --type q8_0 --seed 6 -q").ExitCode);
        Assert.Equal(File.ReadAllBytes(m), File.ReadAllBytes(m2));
        Assert.NotEqual(File.ReadAllBytes(m), File.ReadAllBytes(m3));
        var g = CliRunner.Run($"generate -m {CliRunner.Q(m)} --ids 1,2,3 -n 5 --temp 0 --json");
        Assert.True(g.ExitCode == 0, g.Stderr);
        Assert.Equal(5, JsonDocument.Parse(g.Stdout).RootElement.GetProperty("ids").GetArrayLength());
    }
}
