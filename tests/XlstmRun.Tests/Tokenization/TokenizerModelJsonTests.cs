using System.Text.Json.Nodes;
using Xunit;
using XlstmRun.Text.Tokenization;

namespace XlstmRun.Tests.Tokenization;

/// <summary>Parsing of small hand-made tokenizer.json files (valid and malformed).</summary>
public class TokenizerModelJsonTests
{
    private readonly Xunit.Abstractions.ITestOutputHelper _out;

    public TokenizerModelJsonTests(Xunit.Abstractions.ITestOutputHelper output) => _out = output;

    /// <summary>GPT-2's bytes_to_unicode, written out independently of the code under test.</summary>
    private static char ByteChar(int b)
    {
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        {
            return (char)b;
        }
        int n = 0;
        for (int x = 0; x < b; x++)
        {
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
            {
                n++;
            }
        }
        return (char)(256 + n);
    }

    /// <summary>A tiny valid byte-level BPE: special &lt;|endoftext|&gt; at 0, the 256 byte tokens at 1..256, then
    /// "Ġt" (257), "he" (258) and "Ġthe" (259, from "Ġt" + "he").</summary>
    private static JsonObject Tiny()
    {
        var vocab = new JsonObject { ["<|endoftext|>"] = 0 };
        for (int b = 0; b < 256; b++)
        {
            vocab[ByteChar(b).ToString()] = b + 1;
        }
        vocab["Ġt"] = 257;
        vocab["he"] = 258;
        vocab["Ġthe"] = 259;
        return new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(new JsonObject
            {
                ["id"] = 0, ["content"] = "<|endoftext|>", ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            }),
            ["normalizer"] = new JsonObject { ["type"] = "NFC" },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true },
            ["post_processor"] = null,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["vocab"] = vocab,
                ["merges"] = new JsonArray("Ġ t", "h e", "Ġt he"),
            },
        };
    }

    [Fact]
    public void Tiny_Loads_AndEncodes()
    {
        TokenizerModel m = TokenizerModel.FromHuggingFaceJson(Tiny().ToJsonString());
        Assert.Equal(260, m.Tokens.Count);
        Assert.Equal(3, m.Merges.Count);
        Assert.Equal(0, m.BosId);
        Assert.Null(m.PadId);
        var t = new XlstmTokenizer(m);
        // "the the": "t","he" -> [t(=byte 't'+1), 258], " the" -> 259
        Assert.Equal(new[] { 't' + 1, 258, 259, 0 }, t.Encode("the the<|endoftext|>"));
        Assert.Equal("the the<|endoftext|>", t.Decode(t.Encode("the the<|endoftext|>")));
    }

    [Fact]
    public void Tiny_WithIdGap_FillsUnusedAndLoads()
    {
        JsonObject j = Tiny();
        j["model"]!["vocab"]!["Ġthe"] = 300; // ids 259..299 missing
        j["model"]!["merges"] = new JsonArray("Ġ t", "h e", "Ġt he");
        TokenizerModel m = TokenizerModel.FromHuggingFaceJson(j.ToJsonString());
        Assert.Equal(301, m.Tokens.Count);
        Assert.Equal(5, m.TokenTypes[280]);
        var t = new XlstmTokenizer(m);
        Assert.Equal(new[] { 300 }, t.Encode(" the"));
        Assert.Empty(t.TokenBytes(280));
    }

    public static IEnumerable<object[]> Malformed()
    {
        yield return ["WordPiece model", (Action<JsonObject>)(j => j["model"]!["type"] = "WordPiece")];
        yield return ["Unigram model", (Action<JsonObject>)(j => j["model"]!["type"] = "Unigram")];
        yield return ["missing merges", (Action<JsonObject>)(j => j["model"]!.AsObject().Remove("merges"))];
        yield return ["missing vocab", (Action<JsonObject>)(j => j["model"]!.AsObject().Remove("vocab"))];
        yield return ["missing model", (Action<JsonObject>)(j => j.Remove("model"))];
        yield return ["Metaspace pre-tokenizer", (Action<JsonObject>)(j => j["pre_tokenizer"] = new JsonObject { ["type"] = "Metaspace" })];
        yield return ["no pre-tokenizer", (Action<JsonObject>)(j => j["pre_tokenizer"] = null)];
        yield return ["Lowercase normalizer", (Action<JsonObject>)(j => j["normalizer"] = new JsonObject { ["type"] = "Lowercase" })];
        yield return ["byte fallback", (Action<JsonObject>)(j => j["model"]!["byte_fallback"] = true)];
        yield return ["subword prefix", (Action<JsonObject>)(j => j["model"]!["continuing_subword_prefix"] = "##")];
        yield return ["merge of unknown token", (Action<JsonObject>)(j => j["model"]!["merges"]!.AsArray().Add(JsonValue.Create("x yz")))];
        yield return ["merge without space", (Action<JsonObject>)(j => j["model"]!["merges"]!.AsArray().Add(JsonValue.Create("Ġt")))];
        yield return ["merge as number", (Action<JsonObject>)(j => j["model"]!["merges"]!.AsArray().Add(JsonValue.Create(5)))];
        yield return ["missing byte token", (Action<JsonObject>)(j => j["model"]!["vocab"]!.AsObject().Remove("Ġ"))];
        yield return ["vocab id as string", (Action<JsonObject>)(j => j["model"]!["vocab"]!["he"] = "258")];
        yield return ["duplicate id", (Action<JsonObject>)(j => j["model"]!["vocab"]!["he"] = 257)];
        yield return ["added token with lstrip", (Action<JsonObject>)(j => j["added_tokens"]![0]!["lstrip"] = true)];
    }

    [Theory]
    [MemberData(nameof(Malformed))]
    public void Malformed_ThrowsInvalidDataException(string what, Action<JsonObject> mutate)
    {
        JsonObject j = Tiny();
        TokenizerModel.FromHuggingFaceJson(j.ToJsonString()); // the base is valid
        mutate(j);
        var e = Assert.Throws<InvalidDataException>(() => TokenizerModel.FromHuggingFaceJson(j.ToJsonString()));
        _out.WriteLine($"{what}: {e.Message}");
        Assert.False(string.IsNullOrWhiteSpace(e.Message), what);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void NotJson_ThrowsInvalidDataException()
    {
        Assert.Throws<InvalidDataException>(() => TokenizerModel.FromHuggingFaceJson("{ this is not json"));
        Assert.Throws<InvalidDataException>(() => TokenizerModel.FromHuggingFaceJson("[1,2,3]"));
    }

    [Fact]
    public void RealFile_AsWordPiece_ThrowsInvalidDataException()
    {
        JsonNode root = JsonNode.Parse(TokTestPaths.NeoxJsonText)!;
        root["model"]!["type"] = "WordPiece";
        var e = Assert.Throws<InvalidDataException>(() => TokenizerModel.FromHuggingFaceJson(root.ToJsonString()));
        Assert.Contains("WordPiece", e.Message);
    }
}
