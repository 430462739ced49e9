using XlstmRun.Tests.Support;
using Xunit;

namespace XlstmRun.Tests.Cli;

/// <summary>
/// Bad input to the machine-facing commands: a one-line error naming the problem, exit code 2, no stack trace,
/// and no output file left behind.
/// </summary>
public class BadInputTests
{
    private static readonly Lazy<string> Dir = new(() =>
    {
        var d = TestPaths.TempDir();
        var good = Path.Combine(d, "good.gguf");
        var r = CliRunner.Run($"convert {CliRunner.Q(TestPaths.Fixture("tiny-f32"))} -o {CliRunner.Q(good)} --type f32 -q");
        Assert.Equal(0, r.ExitCode);
        return d;
    });

    private static string Good => Path.Combine(Dir.Value, "good.gguf");

    private static void AssertBadInput(CliRunner.Result r, string mustContain, string? outputThatMustNotExist = null)
    {
        Assert.Equal(2, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(mustContain, lines[0]);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.DoesNotContain("Exception", r.Stderr);
        if (outputThatMustNotExist != null)
        {
            Assert.False(File.Exists(outputThatMustNotExist), "output file was written");
            Assert.False(File.Exists(outputThatMustNotExist + ".tmp"), "temporary file was left behind");
        }
    }

    private string Corrupt(string name, Action<byte[]> change, int? truncateTo = null)
    {
        var bytes = File.ReadAllBytes(Good);
        if (truncateTo is int n) bytes = bytes[..n];
        change(bytes);
        var p = Path.Combine(Dir.Value, name);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    private string Logits(string model, string ids, out string output)
    {
        output = Path.Combine(Dir.Value, Guid.NewGuid().ToString("N") + ".npy");
        return $"logits -m {CliRunner.Q(model)} --ids {ids} -o {CliRunner.Q(output)}";
    }

    [Fact]
    public void MissingModelFile()
    {
        var r = CliRunner.Run(Logits(Path.Combine(Dir.Value, "nope.gguf"), "1,2", out var o));
        AssertBadInput(r, "file not found", o);
    }

    [Fact]
    public void WrongMagic()
    {
        var p = Corrupt("magic.gguf", b => b[0] = (byte)'X');
        AssertBadInput(CliRunner.Run(Logits(p, "1,2", out var o)), "bad magic", o);
    }

    [Fact]
    public void TruncatedFile()
    {
        var len = (int)new FileInfo(Good).Length;
        var p = Corrupt("trunc.gguf", _ => { }, len - 1000);
        AssertBadInput(CliRunner.Run(Logits(p, "1,2", out var o)), "truncated", o);
    }

    [Fact]
    public void TruncatedHeader()
    {
        var p = Corrupt("trunc-header.gguf", _ => { }, 200);
        AssertBadInput(CliRunner.Run(Logits(p, "1,2", out var o)), "truncated", o);
    }

    /// <summary>Locate a tensor's info record (name, n_dims, dims, type, offset) in the header.</summary>
    private static int TensorInfoEnd(byte[] b, string name)
    {
        var key = System.Text.Encoding.UTF8.GetBytes(name);
        for (int i = 8; i < b.Length - key.Length; i++)
        {
            if (BitConverter.ToUInt64(b, i - 8) == (ulong)key.Length && b.AsSpan(i, key.Length).SequenceEqual(key))
            {
                int p = i + key.Length;
                uint nd = BitConverter.ToUInt32(b, p);
                if (nd is < 1 or > 4) continue;
                return p + 4 + 8 * (int)nd; // position of the type field
            }
        }
        throw new InvalidOperationException("tensor info not found: " + name);
    }

    [Fact]
    public void TensorOffsetPastTheEnd()
    {
        var p = Corrupt("offset.gguf", b =>
        {
            int t = TensorInfoEnd(b, "output.weight");
            BitConverter.GetBytes((ulong)b.Length * 2).CopyTo(b, t + 4);
        });
        AssertBadInput(CliRunner.Run(Logits(p, "1,2", out var o)), "past the end", o);
    }

    [Fact]
    public void UnknownTensorType()
    {
        var p = Corrupt("type.gguf", b => BitConverter.GetBytes(77u).CopyTo(b, TensorInfoEnd(b, "blk.0.ffn_down.weight")));
        AssertBadInput(CliRunner.Run(Logits(p, "1,2", out var o)), "unknown or unsupported type 77", o);
    }

    [Fact]
    public void MissingTensor()
    {
        // rename a tensor in place (same length) so that the expected name is missing
        var p = Corrupt("missing.gguf", b =>
        {
            var key = System.Text.Encoding.UTF8.GetBytes("blk.1.ffn_norm.weight");
            int i = b.AsSpan().IndexOf(key);
            b[i + 4] = (byte)'X';
        });
        AssertBadInput(CliRunner.Run(Logits(p, "1,2", out var o)), "missing tensor 'blk.1.ffn_norm.weight'", o);
    }

    [Fact]
    public void ShapeMismatchInCheckpoint()
    {
        // a checkpoint whose config.json claims a different hidden size than its tensors
        var d = Path.Combine(Dir.Value, "badshape");
        Directory.CreateDirectory(d);
        File.Copy(Path.Combine(TestPaths.Fixture("tiny-f32"), "model.safetensors"), Path.Combine(d, "model.safetensors"), true);
        var cfg = File.ReadAllText(Path.Combine(TestPaths.Fixture("tiny-f32"), "config.json")).Replace("\"num_heads\": 2", "\"num_heads\": 4")
            .Replace("\"hidden_size\": 64", "\"hidden_size\": 128").Replace("\"embedding_dim\": 64", "\"embedding_dim\": 128");
        File.WriteAllText(Path.Combine(d, "config.json"), cfg);
        var o = Path.Combine(Dir.Value, "badshape.gguf");
        AssertBadInput(CliRunner.Run($"convert {CliRunner.Q(d)} -o {CliRunner.Q(o)}"), "has shape [512, 64], but config.json implies [512, 128]", o);
    }

    [Fact]
    public void UnreadableConfig()
    {
        var d = Path.Combine(Dir.Value, "badcfg");
        Directory.CreateDirectory(d);
        File.WriteAllText(Path.Combine(d, "config.json"), "{ this is not json");
        File.Copy(Path.Combine(TestPaths.Fixture("tiny-f32"), "model.safetensors"), Path.Combine(d, "model.safetensors"), true);
        var o = Path.Combine(Dir.Value, "badcfg.gguf");
        AssertBadInput(CliRunner.Run($"convert {CliRunner.Q(d)} -o {CliRunner.Q(o)}"), "invalid JSON", o);
    }

    [Fact]
    public void MissingConfig()
    {
        var d = Path.Combine(Dir.Value, "nocfg");
        Directory.CreateDirectory(d);
        var o = Path.Combine(Dir.Value, "nocfg.gguf");
        AssertBadInput(CliRunner.Run($"convert {CliRunner.Q(d)} -o {CliRunner.Q(o)}"), "config.json", o);
    }

    [Fact]
    public void IdsAtOrAboveVocab()
    {
        AssertBadInput(CliRunner.Run(Logits(Good, "1,512", out var o)), "token id 512 is out of range (vocabulary size 512)", o);
        AssertBadInput(CliRunner.Run($"generate -m {CliRunner.Q(Good)} --ids 3,9999 -n 2 --temp 0 --json"), "out of range");
    }

    [Fact]
    public void EmptyOrMalformedIds()
    {
        AssertBadInput(CliRunner.Run(Logits(Good, "\",\"", out var o)), "no token ids", o);
        AssertBadInput(CliRunner.Run(Logits(Good, "1,x", out o)), "'x' is not a token id", o);
        var empty = Path.Combine(Dir.Value, "empty-ids.txt");
        File.WriteAllText(empty, "\n");
        var o2 = Path.Combine(Dir.Value, "e.npy");
        AssertBadInput(CliRunner.Run($"logits -m {CliRunner.Q(Good)} --ids-file {CliRunner.Q(empty)} -o {CliRunner.Q(o2)}"), "no token ids", o2);
    }

    [Fact]
    public void ConvertNeverOverwritesWithoutForce()
    {
        var o = Path.Combine(Dir.Value, "exists.gguf");
        File.WriteAllText(o, "precious");
        AssertBadInput(CliRunner.Run($"convert {CliRunner.Q(TestPaths.Fixture("tiny-f32"))} -o {CliRunner.Q(o)}"), "already exists");
        Assert.Equal("precious", File.ReadAllText(o));
        var r = CliRunner.Run($"convert {CliRunner.Q(TestPaths.Fixture("tiny-f32"))} -o {CliRunner.Q(o)} --force -q");
        Assert.Equal(0, r.ExitCode);
        Assert.NotEqual("precious", File.ReadAllText(o));
    }

    [Fact]
    public void BadStateFile()
    {
        var s = Path.Combine(Dir.Value, "bad.state");
        File.WriteAllText(s, "not a state");
        AssertBadInput(CliRunner.Run($"generate -m {CliRunner.Q(Good)} --ids 3 -n 1 --temp 0 --load-state {CliRunner.Q(s)}"), "not an xlstm-run state file");
    }
}
