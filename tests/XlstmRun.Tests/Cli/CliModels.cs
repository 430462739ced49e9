using XlstmRun.Tests.Support;
using Xunit;

namespace XlstmRun.Tests.Cli;

/// <summary>
/// Small random-weight models made once per test class with `xlstm-run init`: one with the GPT-NeoX tokenizer
/// (vocab 50304 = 50277 rounded up to 64) and one without a tokenizer; plus some broken files.
/// </summary>
public sealed class CliModels : IDisposable
{
    public string Dir { get; } = TestPaths.TempDir();
    public string Model { get; }
    public string Plain { get; }
    public string NotGguf { get; }
    public string TruncatedHeader { get; }
    public string TruncatedData { get; }
    public const int Vocab = 50304, ValidVocab = 50277, PlainVocab = 128;

    public CliModels()
    {
        string tok = Path.Combine(TestPaths.Data, "tokenizers", "gpt-neox-20b.tokenizer.json");
        Model = Path.Combine(Dir, "tok.gguf");
        Plain = Path.Combine(Dir, "plain.gguf");
        Ok(CliRunner.Run($"init -q -o {CliRunner.Q(Model)} --tokenizer {CliRunner.Q(tok)} --hidden 64 --blocks 2 --heads 2"));
        Ok(CliRunner.Run($"init -q -o {CliRunner.Q(Plain)} --hidden 64 --blocks 2 --heads 2 --vocab {PlainVocab}"));
        NotGguf = Path.Combine(Dir, "not.gguf");
        File.WriteAllText(NotGguf, "hello, this is not a GGUF file at all\n");
        var bytes = File.ReadAllBytes(Model);
        TruncatedHeader = Path.Combine(Dir, "trunc-header.gguf");
        File.WriteAllBytes(TruncatedHeader, bytes[..1000]);
        TruncatedData = Path.Combine(Dir, "trunc-data.gguf");
        File.WriteAllBytes(TruncatedData, bytes[..(bytes.Length / 2)]);
    }

    private static void Ok(CliRunner.Result r) => Assert.True(r.ExitCode == 0, $"init failed ({r.ExitCode}): {r.Stderr}");

    public void Dispose()
    {
        try { Directory.Delete(Dir, true); } catch { }
    }
}
