using System.Text;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Formats.IO;
using XlstmRun.Formats.Safetensors;
using XlstmRun.Fuzz;
using XlstmRun.Model;
using XlstmRun.Text;
using Xunit;
using static XlstmRun.Tests.Hostile.HostileFiles;

namespace XlstmRun.Tests.Hostile;

/// <summary>
/// Issue 15's hostile inputs fed to the parsers in-process: each is refused with a <see cref="BadInputException"/> in our
/// words (never a .NET message, never an exception of another type), before anything large is allocated.
/// </summary>
public class HostileParserTests
{
    private static readonly string Dir = TempDir();

    private static BadInputException Refused(Action a, string mustContain)
    {
        var e = Assert.Throws<BadInputException>(a);
        Assert.False(ParseGuard.IsUnexpected(e), $"an unexpected {e.InnerException?.GetType().Name} reached the guard: {e.InnerException}");
        Assert.Contains(mustContain, e.Message);
        return e;
    }

    private static void RefusedGguf(byte[] bytes, string mustContain) =>
        Refused(() => { using var f = GgufFile.FromMemory(bytes, "h.gguf"); ModelConfig.FromGguf(f); }, mustContain);

    private static ModelConfig ConfigOf(string path)
    {
        using var f = GgufFile.Open(path);
        return ModelConfig.FromGguf(f);
    }

    [Fact]
    public void HugeVocabularyWithHiddenOneIsRefusedBeforeAllocating()
    {
        // The audit's out-of-bounds write: 1024 x 2,097,216 overflowed int in CpuBackend.Alloc.
        var p = ModelFile(Dir, "huge-vocab.gguf", shape: HugeVocabShape());
        long before = GC.GetAllocatedBytesForCurrentThread();
        Refused(() => ConfigOf(p), "activation buffers would take");
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 << 20);
    }

    [Fact]
    public void CpuAllocComputesItsSizeIn64Bits()
    {
        using var be = new Backends.Cpu.CpuBackend(1);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => be.Alloc(1024, 2_097_216));
        Assert.Contains("too large", e.Message);
    }

    [Theory]
    [InlineData(2147483647u, "out of range")]
    [InlineData(1000000u, "out of range")]
    [InlineData(1000u, "needs 9003 tensors, the file has 21")]
    public void ImplausibleBlockCountIsRefusedAtOnce(uint blocks, string message)
    {
        var p = ModelFile(Dir, $"blocks-{blocks}.gguf", w => w.AddU32("xlstm.block_count", blocks));
        Refused(() => ConfigOf(p), message);
    }

    [Fact]
    public void IntegersOf2To63AndAboveAreOutOfRange()
    {
        var p = ModelFile(Dir, "u64.gguf", w => w.AddU64("xlstm.block_count", 1UL << 63));
        Refused(() => ConfigOf(p), "'xlstm.block_count' = 9223372036854775808 is out of range");
        var q = ModelFile(Dir, "u64-vocab.gguf", w => w.AddU64("xlstm.vocab_size", ulong.MaxValue));
        Refused(() => ConfigOf(q), "out of range");
    }

    [Fact]
    public async Task ManyTensorInfosParseInLinearTime()
    {
        // 160,000 tensor infos took 66 s with the quadratic duplicate check; the hash set makes it a fraction of a second.
        var raw = new RawGguf().String("general.architecture", "xlstm");
        for (int i = 0; i < 160_000; i++) raw.Tensor($"t.{i}", GgmlType.F32, [1], (ulong)i * 32);
        raw.DataBytes = 160_000L * 32;
        var bytes = raw.Bytes();
        var task = Task.Run(() =>
        {
            using var f = GgufFile.FromMemory(bytes, "many.gguf");
            return f.TensorNames.Count;
        });
        // a hang detector (30 s), not a speed measurement
        Assert.Equal(160_000, await task.WaitAsync(TimeSpan.FromSeconds(30)));
        // and a duplicate among them is found
        raw.Tensor("t.5", GgmlType.F32, [1], 0);
        RefusedGguf(raw.Bytes(), "duplicate tensor 't.5'");
    }

    [Fact]
    public void LargeNumericArrayCostsItsDataSizeOnly()
    {
        // The audit's 40M-item u8 array took 1.28 GB as boxed objects: now above the item limit, it is refused;
        // below the limit a typed array costs its data size (10 MB here), not 32 bytes per item.
        var audit = new RawGguf().Add("junk", GgufValueType.Array, w => { w.Write((uint)GgufValueType.U8); w.Write(40_000_000UL); w.Write(new byte[40_000_000]); }).Bytes();
        RefusedGguf(audit, "implausible array length 40000000");
        const int n = 10_000_000;
        var bytes = new RawGguf().Add("junk", GgufValueType.Array, w => { w.Write((uint)GgufValueType.U8); w.Write((ulong)n); w.Write(new byte[n]); })
            .String("general.architecture", "xlstm").Bytes();
        long before = GC.GetAllocatedBytesForCurrentThread();
        using (var f = GgufFile.FromMemory(bytes, "array.gguf"))
        {
            Assert.Equal(n, ((GgufArray)f.Metadata.Values["junk"]).Count);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 2L * n, $"parsing allocated {allocated >> 20} MiB for a {n >> 20} MiB array");
    }

    [Fact]
    public void ArrayOrCountLargerThanTheFileIsRefusedWithoutAllocating()
    {
        var arr = new RawGguf().Add("junk", GgufValueType.Array, w => { w.Write((uint)GgufValueType.String); w.Write(10_000_000UL); }).Bytes();
        RefusedGguf(arr, "array length 10000000 does not fit in the file");
        var tensors = new RawGguf { TensorCountOverride = 900_000 }.String("general.architecture", "xlstm").Bytes();
        RefusedGguf(tensors, "tensor count 900000 does not fit in the file");
        var kvs = new RawGguf { KvCountOverride = ulong.MaxValue }.Bytes();
        RefusedGguf(kvs, "implausible metadata count");
    }

    [Fact]
    public void AlignmentMustBeAnInteger()
    {
        var asArray = new RawGguf().Add("general.alignment", GgufValueType.Array, w => { w.Write((uint)GgufValueType.U32); w.Write(1UL); w.Write(32u); }).Bytes();
        RefusedGguf(asArray, "'general.alignment' is not an integer");
        var asString = new RawGguf().String("general.alignment", "32").Bytes();
        RefusedGguf(asString, "'general.alignment' is not an integer");
        var huge = new RawGguf().U64("general.alignment", 1UL << 40).Bytes();
        RefusedGguf(huge, "not a power of two between 1 and");
    }

    [Fact]
    public void DuplicateMetadataKeyIsRefused()
    {
        RefusedGguf(new RawGguf().U32("a", 1).U32("a", 2).Bytes(), "metadata key 'a' appears twice");
    }

    [Fact]
    public void TensorLargerThanTheFileIsRefusedWithoutOverflow()
    {
        var raw = new RawGguf().Tensor("big", GgmlType.F32, [1, int.MaxValue, int.MaxValue, int.MaxValue], 0);
        RefusedGguf(raw.Bytes(), "runs past the end of the file");
        var row = new RawGguf().Tensor("row", GgmlType.F32, [int.MaxValue], 0);
        RefusedGguf(row.Bytes(), "at most 2 GiB per row");
    }

    [Fact]
    public void WrongTypesAndNonFiniteConstantsAreRefused()
    {
        var p = ModelFile(Dir, "arch-int.gguf", w => w.AddU32("general.architecture", 7));
        Refused(() => ConfigOf(p), "'general.architecture' is not a string");
        var q = ModelFile(Dir, "eps-nan.gguf", w => w.AddF32("xlstm.final_logit_softcapping", float.NaN));
        Refused(() => ConfigOf(q), "logit soft-cap");
        var r = ModelFile(Dir, "tok-types.gguf", w =>
        {
            w.AddStringArray("tokenizer.ggml.tokens", ["a", "b"]);
            w.AddStringArray("tokenizer.ggml.merges", []);
            w.AddStringArray("tokenizer.ggml.token_type", ["x", "y"]);
        });
        using var f = GgufFile.Open(r);
        Refused(() => TokenizerGguf.Read(f), "token_type is not an array of integers");
    }

    // ---- safetensors and config.json

    private static string Checkpoint(string name, string header, string? config = null)
    {
        var d = Path.Combine(Dir, name);
        Directory.CreateDirectory(d);
        var hb = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + hb.Length + 64];
        BitConverter.GetBytes((ulong)hb.Length).CopyTo(bytes, 0);
        hb.CopyTo(bytes, 8);
        File.WriteAllBytes(Path.Combine(d, "model.safetensors"), bytes);
        File.WriteAllText(Path.Combine(d, "config.json"), config ?? """{"model_type": "xlstm", "hidden_size": 8, "num_heads": 2, "num_blocks": 1, "vocab_size": 16}""");
        return d;
    }

    [Theory]
    [InlineData("entry not an object", """{"w": 5}""", "header entry that is not an object")]
    [InlineData("entry an array", """{"w": [1, 2]}""", "header entry that is not an object")]
    [InlineData("missing dtype", """{"w": {"shape": [2], "data_offsets": [0, 8]}}""", "has no dtype string")]
    [InlineData("dtype a number", """{"w": {"dtype": 7, "shape": [2], "data_offsets": [0, 8]}}""", "has no dtype string")]
    [InlineData("shape beyond Int64", """{"w": {"dtype": "F32", "shape": [1e30], "data_offsets": [0, 8]}}""", "shape that is not a list of sizes")]
    [InlineData("shape 2^63", """{"w": {"dtype": "F32", "shape": [9223372036854775808], "data_offsets": [0, 8]}}""", "shape that is not a list of sizes")]
    [InlineData("shape overflowing", """{"w": {"dtype": "F32", "shape": [2147483647, 2147483647, 2147483647], "data_offsets": [0, 8]}}""", "is larger than the file")]
    [InlineData("offsets strings", """{"w": {"dtype": "F32", "shape": [2], "data_offsets": ["0", "8"]}}""", "has no data_offsets")]
    [InlineData("offsets reversed", """{"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}""", "data offsets that do not match")]
    [InlineData("duplicate tensor", """{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""", "appears twice")]
    [InlineData("header an array", """[1, 2]""", "header is not a JSON object")]
    [InlineData("lone surrogate name", """{"\ud800": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""", "invalid \\u escape")]
    [InlineData("lone surrogate dtype", """{"w": {"dtype": "\udfff", "shape": [2], "data_offsets": [0, 8]}}""", "invalid \\u escape")]
    [InlineData("unknown dtype", """{"w": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}""", "unsupported dtype U8")]
    public void BadSafetensorsHeaderIsRefusedInOurWords(string what, string header, string message)
    {
        var d = Checkpoint("st-" + what.Replace(' ', '-'), header);
        Refused(() => new HfCheckpoint(d).Dispose(), message);
    }

    [Theory]
    [InlineData("""{"model_type": 5}""", "field 'model_type' is not a string")]
    [InlineData("""{"hidden_size": "8", "num_heads": 2, "num_blocks": 1, "vocab_size": 16}""", "field 'hidden_size' is not a number")]
    [InlineData("""{"hidden_size": 1e400, "num_heads": 2, "num_blocks": 1, "vocab_size": 16}""", "field 'hidden_size' is not a number")]
    [InlineData("""{"hidden_size": 9223372036854775808, "num_heads": 2, "num_blocks": 1, "vocab_size": 16}""", "field 'hidden_size' = ")]
    [InlineData("""{"hidden_size": 8, "num_heads": 2, "num_blocks": 2147483647, "vocab_size": 16}""", "field 'num_blocks' = 2147483647 is not an integer from 1 to 1024")]
    [InlineData("""{"hidden_size": 8.5, "num_heads": 2, "num_blocks": 1, "vocab_size": 16}""", "is not an integer")]
    [InlineData("""{"hidden_size": 8, "num_heads": 2, "num_blocks": 1, "vocab_size": 16, "qk_dim_factor": 1e12}""", "qk_dim")]
    [InlineData("""{"hidden_size": 8, "num_heads": 2, "num_blocks": 1, "vocab_size": 16, "weight_mode": ["fused"]}""", "field 'weight_mode' is not a string")]
    [InlineData("""[1]""", "config is not a JSON object")]
    [InlineData("""{"model_type": "\ud800"}""", "invalid \\u escape")]
    public void BadConfigJsonIsRefusedInOurWords(string config, string message)
    {
        Refused(() => ModelConfig.FromHfJson(config, "config.json", out _, out _), message);
    }

    [Fact]
    public void ShardIndexEntriesMustBePlainFileNames()
    {
        var d = Checkpoint("index-bad", """{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""");
        File.WriteAllText(Path.Combine(d, "model.safetensors.index.json"), """{"weight_map": {"w": 5}}""");
        Refused(() => new HfCheckpoint(d).Dispose(), "weight_map entry 'w' is not a file name");
        File.WriteAllText(Path.Combine(d, "model.safetensors.index.json"), """{"weight_map": {"w": ".."}}""");
        Refused(() => new HfCheckpoint(d).Dispose(), "must be a plain file name");
        File.WriteAllText(Path.Combine(d, "model.safetensors.index.json"), """[]""");
        Refused(() => new HfCheckpoint(d).Dispose(), "no weight_map object");
    }

    [Fact]
    public void TokenizerWithHugeIdsIsRefusedBeforeAllocating()
    {
        string json = CorpusMaker.TokenizerJson(pairs: false).Replace("\"id\": 1,", "\"id\": 2000000000,");
        Refused(() => TokenizerGguf.FromJsonText(json, "t.json"), "token ids go up to 2000000000");
    }

    [Fact]
    public void TokenizerWithALoneSurrogateIsBadInput()
    {
        string json = CorpusMaker.TokenizerJson(pairs: false);
        Assert.Contains("\"vocab\": {", json);
        json = json.Replace("\"vocab\": {", "\"vocab\": {\"\\ud800\": 999,");
        Refused(() => TokenizerGguf.FromJsonText(json, "t.json"), "invalid \\u escape");
    }

    [Fact]
    public void TokenizerWithADuplicateMergeIsBadInput()
    {
        // found by the fuzzer: the BPE engine threw ArgumentException ("An item with the same key has already been added")
        string json = CorpusMaker.TokenizerJson(pairs: false).Replace("\"l d\",", "\"l d\",\n\"h e\",");
        Refused(() => TokenizerGguf.FromJsonText(json, "t.json"), "merge 13 'h e' appears twice");
    }

    // ---- state files

    [Fact]
    public void StateFileMustHaveTheExactSize()
    {
        var c = FuzzTargets.StateModel;
        var good = File.ReadAllBytes(Path.Combine(Support.TestPaths.RepoRoot, "fuzz", "corpus", "state", "pos7.state"));
        Assert.Equal(StateFile.FileBytes(c), good.Length);
        var s = StateFile.FromBytes(good, c, "s", out long pos);
        Assert.Equal(7, pos);
        Assert.Equal(c.StateFloats, s.Length);
        Refused(() => StateFile.FromBytes([.. good, 0], c, "s", out _), "wrong size");
        var wrongCount = (byte[])good.Clone();
        BitConverter.GetBytes(long.MaxValue).CopyTo(wrongCount, 36);
        Refused(() => StateFile.FromBytes(wrongCount, c, "s", out _), "state file holds 9223372036854775807 floats");
        var flipped = (byte[])good.Clone();
        flipped[100] ^= 1;
        Refused(() => StateFile.FromBytes(flipped, c, "s", out _), "checksum mismatch");
    }

    // ---- the safety rules themselves

    [Fact]
    public void UntrustedTextIsEscapedForTheTerminal()
    {
        Assert.Equal("arch \\x1b[2J x", TerminalText.OneLine("arch \u001b[2J x"));
        Assert.Equal("a b \\x07\\x9b \\u{202e}z \\u{d800}", TerminalText.OneLine("a\nb \u0007\u009b \u202ez \ud800"));
        Assert.Equal("日本語 ✓ 😀", TerminalText.OneLine("日本語 ✓ 😀"));
        var longLine = TerminalText.OneLine(new string('x', 100_000));
        Assert.True(longLine.Length <= TerminalText.MaxLine + 40);
        Assert.Contains("characters …]", longLine);
    }

    [Fact]
    public void FileTypesAreToldApart()
    {
        Assert.Equal(FileType.CharDevice, UnixFile.Stat("/dev/zero").Type);
        Assert.Equal(FileType.Directory, UnixFile.Stat(Dir).Type);
        Assert.Equal(FileType.Missing, UnixFile.Stat(Path.Combine(Dir, "nope")).Type);
        var f = Path.Combine(Dir, "regular.txt");
        File.WriteAllText(f, "x");
        var link = Path.Combine(Dir, "link.txt");
        File.CreateSymbolicLink(link, f);
        Assert.True(UnixFile.Stat(f).SameFileAs(UnixFile.Stat(link)));
        Assert.Equal(FileType.Regular, UnixFile.Stat(link).Type);
        var e = Assert.Throws<BadInputException>(() => InputFiles.ReadAllBytes("/dev/zero", InputKind.PromptText, "prompt file"));
        Assert.Contains("is a character device, not a regular file", e.Message);
    }
}
