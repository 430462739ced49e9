using System.Diagnostics;
using System.Security.Cryptography;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Formats.IO;
using XlstmRun.Tests.Support;
using Xunit;
using static XlstmRun.Tests.Support.CliRunner;

namespace XlstmRun.Tests.Hostile;

/// <summary>Inputs and files for the CLI tests: a small model, a checkpoint, a FIFO, hostile models.</summary>
public sealed class HostileCliFiles : IDisposable
{
    public string Dir { get; } = TestPaths.TempDir();
    public string Model { get; }
    public string Fifo { get; }
    public string HugeVocab { get; }
    public string EscapeArch { get; }

    public HostileCliFiles()
    {
        Model = HostileFiles.ModelFile(Dir, "m.gguf");
        Fifo = Path.Combine(Dir, "fifo");
        MkFifo(Fifo);
        HugeVocab = HostileFiles.ModelFile(Dir, "huge-vocab.gguf", shape: HostileFiles.HugeVocabShape());
        EscapeArch = HostileFiles.ModelFile(Dir, "escape.gguf", w => w.AddString("general.architecture", "\u001b[2Jevil\u0007"));
    }

    public static void MkFifo(string path)
    {
        using var p = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    /// <summary>A fresh empty folder that must stay empty (no output, no temporary file).</summary>
    public string Out()
    {
        var d = Path.Combine(Dir, "out-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(d);
        return d;
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, true); } catch { }
    }
}

/// <summary>
/// Issue 15 through the binary: every hostile input ends quickly with exit 2 and one line of our words; no input, device
/// or FIFO is ever replaced; temporary files are unique and never collide; untrusted strings are escaped.
/// </summary>
public class HostileCliTests(HostileCliFiles f) : IClassFixture<HostileCliFiles>
{
    private const int Quick = 60_000; // a hang detector, not a speed measurement

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    private string A(string args, string outDir) => args.Replace("{model}", Q(f.Model)).Replace("{fifo}", Q(f.Fifo))
        .Replace("{ckpt}", Q(TestPaths.Fixture("tiny-f32"))).Replace("{out}", outDir);

    [Theory]
    [InlineData("-m {model} -f /dev/zero", "the prompt file must be a regular file")]
    [InlineData("logits -m {model} --ids-file /dev/zero -o {out}/l.npy", "the ids file must be a regular file")]
    [InlineData("generate -m {model} --ids 1 --load-state /dev/zero", "the state file must be a regular file")]
    [InlineData("convert {ckpt} -o {out}/c.gguf --tokenizer /dev/zero", "the tokenizer file must be a regular file")]
    [InlineData("tokenize --tokenizer /dev/zero -p hi", "the tokenizer file must be a regular file")]
    [InlineData("info -m /dev/zero", "the model file must be a regular file")]
    [InlineData("perplexity -m {model} -f /dev/zero", "the text file must be a regular file")]
    [InlineData("-m {model} -f {fifo}", "is a FIFO")]
    [InlineData("logits -m {model} --ids-file {fifo} -o {out}/l.npy", "is a FIFO")]
    [InlineData("generate -m {model} --ids 1 --load-state {fifo}", "is a FIFO")]
    [InlineData("info -m {fifo}", "is a FIFO")]
    public void DevicesAndFifosAreRefusedWithoutReading(string args, string message)
    {
        var o = f.Out();
        var line = OneErrorLine(Run(A(args, o), timeoutMs: Quick), args);
        Assert.Contains(message, line);
        Assert.Empty(Directory.EnumerateFileSystemEntries(o));
    }

    [Fact]
    public void ConvertWithAFifoAsTheCheckpointDoesNotBlock()
    {
        var d = Path.Combine(f.Dir, "fifo-ckpt");
        Directory.CreateDirectory(d);
        File.Copy(Path.Combine(TestPaths.Fixture("tiny-f32"), "config.json"), Path.Combine(d, "config.json"), true);
        HostileCliFiles.MkFifo(Path.Combine(d, "model.safetensors"));
        var o = f.Out();
        var line = OneErrorLine(Run($"convert {Q(d)} -o {Q(Path.Combine(o, "c.gguf"))}", timeoutMs: Quick), "convert with a FIFO");
        Assert.Contains("is a FIFO", line);
        Assert.Empty(Directory.EnumerateFileSystemEntries(o));
    }

    [Theory]
    [InlineData("""{"w": 5}""", "header entry that is not an object")]
    [InlineData("""{"w": {"shape": [2], "data_offsets": [0, 8]}}""", "has no dtype string")]
    [InlineData("""{"w": {"dtype": "F32", "shape": [1e30], "data_offsets": [0, 8]}}""", "shape that is not a list of sizes")]
    [InlineData("""{"\ud800": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""", "invalid \\u escape")]
    public void BrokenCheckpointsAreExit2InOurWords(string header, string message)
    {
        var d = Path.Combine(f.Dir, "ckpt-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(d);
        File.Copy(Path.Combine(TestPaths.Fixture("tiny-f32"), "config.json"), Path.Combine(d, "config.json"));
        var hb = System.Text.Encoding.UTF8.GetBytes(header);
        File.WriteAllBytes(Path.Combine(d, "model.safetensors"), [.. BitConverter.GetBytes((ulong)hb.Length), .. hb, .. new byte[8]]);
        var o = f.Out();
        Assert.Contains(message, OneErrorLine(Run($"convert {Q(d)} -o {Q(Path.Combine(o, "c.gguf"))}", timeoutMs: Quick), header));
        Assert.Empty(Directory.EnumerateFileSystemEntries(o));
    }

    [Fact]
    public void OutputsNeverReplaceTheModelOrAnotherInput()
    {
        string before = Sha(f.Model);
        var o = f.Out();
        Assert.Contains("is the model this run reads", OneErrorLine(Run($"logits -m {Q(f.Model)} --ids 1,2 -o {Q(f.Model)} --force"), "logits -o MODEL"));
        Assert.Contains("is the model this run reads", OneErrorLine(Run($"generate -m {Q(f.Model)} --ids 1 -n 1 --save-state {Q(f.Model)} --force"), "--save-state MODEL"));
        // the same file under another name: a hard link and a symbolic link
        var hard = Path.Combine(o, "hard.gguf");
        using (var ln = Process.Start(new ProcessStartInfo("ln", [f.Model, hard]) { UseShellExecute = false })!) ln.WaitForExit();
        Assert.True(File.Exists(hard));
        Assert.Contains("is the model this run reads", OneErrorLine(Run($"logits -m {Q(f.Model)} --ids 1 -o {Q(hard)} --force"), "hard link"));
        var sym = Path.Combine(o, "sym.state");
        File.CreateSymbolicLink(sym, f.Model);
        Assert.Contains("is the model this run reads", OneErrorLine(Run($"generate -m {Q(f.Model)} --ids 1 -n 1 --save-state {Q(sym)} --force"), "symlink"));
        // the ids file, and two outputs naming one file
        var ids = Path.Combine(o, "ids.txt");
        File.WriteAllText(ids, "1,2,3");
        Assert.Contains("is the ids file this run reads", OneErrorLine(Run($"logits -m {Q(f.Model)} --ids-file {Q(ids)} -o {Q(ids)} --force"), "-o IDS"));
        Assert.Equal("1,2,3", File.ReadAllText(ids));
        var x = Path.Combine(o, "x");
        Assert.Contains("name the same output", OneErrorLine(Run($"logits -m {Q(f.Model)} --ids 1 -o {Q(x)} --save-state {Q(x)}"), "same output twice"));
        Assert.Equal(before, Sha(f.Model));
        Assert.Equal(["hard.gguf", "ids.txt", "sym.state"], Directory.GetFileSystemEntries(o).Select(p => Path.GetFileName(p)!).Order().ToArray());
    }

    [Fact]
    public void FifosAndDeviceNodesAreNeverReplacedByOutputs()
    {
        var o = f.Out();
        var nodes = new List<string>();
        var fifo = Path.Combine(o, "out-fifo");
        HostileCliFiles.MkFifo(fifo);
        nodes.Add(fifo);
        if (Environment.UserName == "root")
        {
            // as root, rename(2) over a device node replaces it (the audit replaced a machine's /dev/full): use a node of our own
            var dev = Path.Combine(o, "full");
            using var p = Process.Start(new ProcessStartInfo("mknod", [dev, "c", "1", "7"]) { UseShellExecute = false })!;
            p.WaitForExit();
            Assert.Equal(0, p.ExitCode);
            nodes.Add(dev);
        }
        foreach (var n in nodes)
        {
            var type = UnixFile.Stat(n).Type;
            Assert.Contains("only writes regular files", OneErrorLine(Run($"logits -m {Q(f.Model)} --ids 1 -o {Q(n)} --force", timeoutMs: Quick), "-o node"));
            Assert.Contains("only writes regular files", OneErrorLine(Run($"generate -m {Q(f.Model)} --ids 1 -n 1 --save-state {Q(n)} --force", timeoutMs: Quick), "--save-state node"));
            Assert.Contains("only writes regular files", OneErrorLine(Run($"convert {Q(TestPaths.Fixture("tiny-f32"))} -o {Q(n)} --force -q", timeoutMs: Quick), "convert -o node"));
            Assert.Contains("only writes regular files", OneErrorLine(Run($"init -o {Q(n)} --force -q", timeoutMs: Quick), "init -o node"));
            Assert.Equal(type, UnixFile.Stat(n).Type);
        }
        Assert.Equal(nodes.Count, Directory.GetFileSystemEntries(o).Length);
    }

    [Fact]
    public void AnExistingTmpFileIsNeverTouched()
    {
        var o = f.Out();
        var outPath = Path.Combine(o, "out.gguf");
        File.WriteAllText(outPath + ".tmp", "precious");
        var r = Run($"convert {Q(TestPaths.Fixture("tiny-f32"))} -o {Q(outPath)} -q");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("precious", File.ReadAllText(outPath + ".tmp"));
        using (var g = GgufFile.Open(outPath)) Assert.True(g.TensorNames.Count > 0);
        Assert.Equal(["out.gguf", "out.gguf.tmp"], Directory.GetFileSystemEntries(o).Select(p => Path.GetFileName(p)!).Order().ToArray());
    }

    [Fact]
    public void ConcurrentWritersOfOneOutputDoNotDestroyEachOther()
    {
        var o = f.Out();
        var outPath = Path.Combine(o, "same.gguf");
        var (file, prefix) = Binary();
        var procs = Enumerable.Range(0, 3).Select(i => Process.Start(new ProcessStartInfo(file, $"{prefix}init -q -o {Q(outPath)} --force --hidden 64 --blocks 2 --heads 2 --vocab 256 --seed {i}")
        {
            RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false,
        })!).ToArray();
        foreach (var p in procs)
        {
            string err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, err);
        }
        using (var g = GgufFile.Open(outPath)) Assert.Equal(21, g.TensorNames.Count);
        Assert.Equal(["same.gguf"], Directory.GetFileSystemEntries(o).Select(p => Path.GetFileName(p)!).ToArray());
    }

    [Fact]
    public void OverwritingNeedsForceEverywhereAndStdoutIsDash()
    {
        var o = f.Out();
        var npy = Path.Combine(o, "l.npy");
        File.WriteAllText(npy, "old");
        Assert.Contains("already exists (use --force", OneErrorLine(Run($"logits -m {Q(f.Model)} --ids 1,2 -o {Q(npy)}"), "logits overwrite"));
        Assert.Equal("old", File.ReadAllText(npy));
        var r = Run($"logits -m {Q(f.Model)} --ids 1,2 -o {Q(npy)} --force");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var (data, shape) = Npy.Read(npy);
        Assert.Equal([2L, 128L], shape);
        Assert.Equal(256, data.Length);
        // -o - streams the same .npy to stdout
        var so = Run($"logits -m {Q(f.Model)} --ids 1,2 -o -");
        Assert.True(so.ExitCode == 0, so.Stderr);
        Assert.Contains("NUMPY", so.Stdout);
        Assert.Contains("'shape': (2, 128)", so.Stdout);
        // --save-state: an existing file needs --force, except the --load-state file itself (updated in place)
        var st = Path.Combine(o, "s.state");
        Assert.Equal(0, Run($"generate -m {Q(f.Model)} --ids 1,2 -n 1 --save-state {Q(st)}").ExitCode);
        Assert.Contains("already exists (use --force", OneErrorLine(Run($"generate -m {Q(f.Model)} --ids 3 -n 1 --save-state {Q(st)}"), "save-state overwrite"));
        string first = Sha(st);
        var up = Run($"generate -m {Q(f.Model)} --ids 3 -n 1 --load-state {Q(st)} --save-state {Q(st)}");
        Assert.True(up.ExitCode == 0, up.Stderr);
        Assert.NotEqual(first, Sha(st));
        Assert.Equal(["l.npy", "s.state"], Directory.GetFileSystemEntries(o).Select(p => Path.GetFileName(p)!).Order().ToArray());
    }

    [Fact]
    public void TheAuditCrashModelIsRefusedWithExit2()
    {
        var o = f.Out();
        Assert.Contains("activation buffers would take", OneErrorLine(Run($"logits -m {Q(f.HugeVocab)} --ids 1 -o {Q(Path.Combine(o, "l.npy"))}", timeoutMs: Quick), "logits"));
        Assert.Contains("activation buffers would take", OneErrorLine(Run($"generate -m {Q(f.HugeVocab)} --ids 1 -n 1", timeoutMs: Quick), "generate"));
        Assert.Empty(Directory.EnumerateFileSystemEntries(o));
    }

    [Fact]
    public void EscapeSequencesFromTheFileAreNotPrinted()
    {
        var line = OneErrorLine(Run($"info -m {Q(f.EscapeArch)}", timeoutMs: Quick), "info");
        Assert.Contains("architecture is '\\x1b[2Jevil\\x07'", line);
    }

    [Fact]
    public void HostileHeadersEndQuicklyWithExit2()
    {
        var o = f.Out();
        var blocks = HostileFiles.ModelFile(o, "blocks.gguf", w => w.AddU32("xlstm.block_count", int.MaxValue));
        Assert.Contains("xlstm.block_count", OneErrorLine(Run($"generate -m {Q(blocks)} --ids 1 -n 1", timeoutMs: Quick), "block_count"));
        var million = HostileFiles.ModelFile(o, "blocks-1m.gguf", w => w.AddU32("xlstm.block_count", 1_000_000));
        Assert.Contains("xlstm.block_count", OneErrorLine(Run($"generate -m {Q(million)} --ids 1 -n 1", timeoutMs: Quick), "block_count 1M"));
        var array = new HostileFiles.RawGguf().Add("junk", GgufValueType.Array, w => { w.Write((uint)GgufValueType.U8); w.Write(40_000_000UL); w.Write(new byte[40_000_000]); })
            .WriteTo(Path.Combine(o, "array.gguf"));
        Assert.Contains("implausible array length 40000000", OneErrorLine(Run($"info -m {Q(array)}", timeoutMs: Quick), "40M array"));
        var align = new HostileFiles.RawGguf().String("general.alignment", "32").WriteTo(Path.Combine(o, "align.gguf"));
        Assert.Contains("'general.alignment' is not an integer", OneErrorLine(Run($"info -m {Q(align)}", timeoutMs: Quick), "alignment"));
        var big = HostileFiles.ModelFile(o, "u64.gguf", w => w.AddU64("xlstm.vocab_size", ulong.MaxValue));
        Assert.Contains("is out of range", OneErrorLine(Run($"info -m {Q(big)}", timeoutMs: Quick), "u64"));
        var raw = new HostileFiles.RawGguf().String("general.architecture", "xlstm");
        for (int i = 0; i < 80_000; i++) raw.Tensor($"t.{i}", GgmlType.F32, [1], (ulong)i * 32);
        raw.DataBytes = 80_000L * 32;
        var many = raw.WriteTo(Path.Combine(o, "many.gguf"));
        Assert.Contains("missing metadata key", OneErrorLine(Run($"info -m {Q(many)}", timeoutMs: Quick), "80k tensors"));
    }
}
