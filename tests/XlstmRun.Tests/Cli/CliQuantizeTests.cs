using System.Text.Json;
using System.Text.Json.Nodes;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Tests.Support;
using Xunit;
using static XlstmRun.Tests.Support.CliRunner;

namespace XlstmRun.Tests.Cli;

/// <summary>
/// `quantize` through the binary, against `convert --type` from the same checkpoint (bit for bit), and the metadata
/// `convert` writes (token list padded to the embedding rows, general.name, no source URL).
/// </summary>
public class CliQuantizeTests
{
    private static readonly Lazy<string> Dir = new(TestPaths.TempDir);
    private static readonly object Lock = new();
    private static readonly Dictionary<string, string> Converted = new();

    private static Result Ok(Result r)
    {
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        return r;
    }

    private static void BadInput(Result r, string mustContain, string? output = null)
    {
        Assert.Equal(2, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(mustContain, lines[0]);
        if (output != null)
        {
            Assert.False(File.Exists(output + ".tmp"), "temporary file left behind");
        }
    }

    /// <summary>A byte-level BPE tokenizer.json small enough for the fixtures' 512-row vocabulary: &lt;|endoftext|&gt;,
    /// the 256 byte symbols (GPT-2's byte-to-character table) and two merges.</summary>
    private static string SmallTokenizer()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToList();
        var charOf = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++) charOf[b] = printable.Contains(b) ? (char)b : (char)(256 + extra++);
        var vocab = new JsonObject();
        for (int b = 0; b < 256; b++) vocab[charOf[b].ToString()] = 1 + b;
        vocab["Ġt"] = 257;
        vocab["he"] = 258;
        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(new JsonObject { ["id"] = 0, ["content"] = "<|endoftext|>", ["special"] = true }),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray("Ġ t", "h e") },
        };
        string p = Path.Combine(Dir.Value, "small-tokenizer.json");
        lock (Lock)
            if (!File.Exists(p)) File.WriteAllText(p, json.ToJsonString());
        return p;
    }

    /// <summary>`convert tiny-f32 --type TYPE` with the small tokenizer, once per type.</summary>
    private static string Convert(string type)
    {
        lock (Lock)
        {
            if (Converted.TryGetValue(type, out var p)) return p;
            p = Path.Combine(Dir.Value, $"convert-{type}.gguf");
            Ok(Run($"convert {Q(TestPaths.Fixture("tiny-f32"))} -o {Q(p)} --type {type} --tokenizer {Q(SmallTokenizer())} -q"));
            Converted[type] = p;
            return p;
        }
    }

    private static string Temp(string name) => Path.Combine(Dir.Value, Guid.NewGuid().ToString("N")[..8] + "-" + name);

    [Theory]
    [InlineData("q8_0")]
    [InlineData("q4_0")]
    [InlineData("f16")]
    [InlineData("bf16")]
    public void QuantizingTheF32FileGivesTheBytesConvertGivesFromTheCheckpoint(string type)
    {
        string q = Temp($"{type}.gguf");
        var r = Ok(Run($"quantize {Q(Convert("f32"))} {Q(q)} {type.ToUpperInvariant()}"));
        Assert.Contains($"wrote {q}: {type}", r.Stderr);
        Assert.Equal(File.ReadAllBytes(Convert(type)), File.ReadAllBytes(q));
    }

    [Fact]
    public void ConvertPadsTheTokenListNamesTheModelAndWritesNoSourceUrl()
    {
        using var f = GgufFile.Open(Convert("f32"));
        var tokens = f.Metadata.TryGetArray("tokenizer.ggml.tokens")!.Items.Cast<string>().ToArray();
        var tt = f.Metadata.TryGetArray("tokenizer.ggml.token_type")!;
        var types = Enumerable.Range(0, tt.Count).Select(i => (int)tt.IntAt(i)!.Value).ToArray();
        long vocab = f.Metadata.GetInt("xlstm.vocab_size");
        Assert.Equal(512, vocab);
        Assert.Equal(vocab, tokens.Length);
        Assert.Equal(vocab, f.Tensor("token_embd.weight").Rows);
        Assert.Equal("<|endoftext|>", tokens[0]);
        Assert.Equal("he", tokens[258]);
        for (int i = 259; i < vocab; i++)
        {
            Assert.Equal($"[PAD{i}]", tokens[i]);
            Assert.Equal(5, types[i]);
        }
        Assert.Equal("tiny-f32", f.Metadata.TryGetString("general.name"));
        Assert.False(f.Metadata.Has("general.source.url"));

        // the padding is not vocabulary: the tokenizer read back has its 259 tokens, ids 259.. are never produced
        BadInput(Run($"detokenize -m {Q(Convert("f32"))} --ids 300"), "vocabulary size 259");
        var t = Ok(Run($"tokenize -m {Q(Convert("f32"))} -p the --show-pieces"));
        Assert.Equal($"{'t' + 1,6} -> 't'\n   258 -> 'he'\n", t.Stdout);
    }

    [Fact]
    public void ConvertTakesTheNameFromConfigJson()
    {
        string ck = Temp("ck");
        Directory.CreateDirectory(ck);
        foreach (var file in Directory.GetFiles(TestPaths.Fixture("tiny-f32")))
            File.Copy(file, Path.Combine(ck, Path.GetFileName(file)));
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(ck, "config.json")))!.AsObject();
        cfg["_name_or_path"] = "NX-AI/xLSTM-7b";
        File.WriteAllText(Path.Combine(ck, "config.json"), cfg.ToJsonString());
        string o = Temp("named.gguf");
        Ok(Run($"convert {Q(ck)} -o {Q(o)} --type f32 -q"));
        using var f = GgufFile.Open(o);
        Assert.Equal("xLSTM-7b", f.Metadata.TryGetString("general.name"));
    }

    [Fact]
    public void QuantizedWeightsGoBackUpToF32ExactlyButNotSidewaysWithoutAllowRequantize()
    {
        string q8 = Convert("q8_0"), up = Temp("up.gguf");
        Ok(Run($"quantize {Q(q8)} {Q(up)} f32 -q"));
        using (var a = GgufFile.Open(q8))
        using (var b = GgufFile.Open(up))
        {
            Assert.Equal(a.TensorNames, b.TensorNames);
            foreach (var n in a.TensorNames)
            {
                Assert.Equal(GgmlType.F32, b.Tensor(n).Type);
                Assert.Equal(a.Tensor(n).ToFloatArray(), b.Tensor(n).ToFloatArray());
            }
            Assert.Equal(0, b.Metadata.GetInt("general.file_type"));
            Assert.False(b.Metadata.Has("general.quantization_version"));
            Assert.Equal(a.Metadata.TryGetArray("tokenizer.ggml.tokens")!.Items, b.Metadata.TryGetArray("tokenizer.ggml.tokens")!.Items);
        }

        string side = Temp("side.gguf");
        BadInput(Run($"quantize {Q(q8)} {Q(side)} q4_0"), "--allow-requantize", side);
        Assert.False(File.Exists(side));
        Ok(Run($"quantize {Q(q8)} {Q(side)} q4_0 --allow-requantize -q"));
        using var s = GgufFile.Open(side);
        Assert.Equal(GgmlType.Q4_0, s.Tensor("blk.0.ffn_down.weight").Type);
    }

    [Fact]
    public void BadRequestsAreOneLineErrors()
    {
        string f32 = Convert("f32");
        BadInput(Run($"quantize {Q(f32)} {Q(Temp("x.gguf"))} q5_k"), "unknown weight type 'q5_k'");
        BadInput(Run($"quantize {Q(f32)} {Q(Temp("x.gguf"))} f32"), "nothing to do");
        BadInput(Run($"quantize {Q(Temp("missing.gguf"))} {Q(Temp("x.gguf"))} q8_0"), "file not found");
        BadInput(Run($"quantize {Q(f32)} {Q(f32)} q8_0 --force"), "the output is the input");
        BadInput(Run($"quantize {Q(f32)}"), "missing");
        // the old way people tried: convert on a GGUF file points at quantize
        BadInput(Run($"convert {Q(f32)} -o {Q(Temp("r.gguf"))} --type q4_0"), "use 'xlstm-run quantize");
        string exists = Temp("exists.gguf");
        File.WriteAllText(exists, "keep me");
        BadInput(Run($"quantize {Q(f32)} {Q(exists)} q8_0"), "already exists", exists);
        Assert.Equal("keep me", File.ReadAllText(exists));
        Ok(Run($"quantize {Q(f32)} {Q(exists)} q8_0 --force -q"));
        Assert.Equal(File.ReadAllBytes(Convert("q8_0")), File.ReadAllBytes(exists));
    }
}
