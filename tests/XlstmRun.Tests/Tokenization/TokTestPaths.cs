using System.Text.Json;
using XlstmRun.Text.Tokenization;

namespace XlstmRun.Tests.Tokenization;

/// <summary>Locates tests/data/tokenizers in the repository and caches the GPT-NeoX tokenizer for the tokenizer tests.</summary>
internal static class TokTestPaths
{
    private static readonly Lazy<string> s_repoRoot = new(FindRepoRoot);
    private static readonly Lazy<string> s_json = new(() => File.ReadAllText(TokenizerJson));
    private static readonly Lazy<TokenizerModel> s_model = new(() => TokenizerModel.FromHuggingFaceJson(s_json.Value));
    private static readonly Lazy<XlstmTokenizer> s_tokenizer = new(() => new XlstmTokenizer(s_model.Value));
    private static readonly Lazy<IReadOnlyList<GoldenLine>> s_golden = new(LoadGolden);

    public static string RepoRoot => s_repoRoot.Value;

    public static string DataDir => Path.Combine(RepoRoot, "tests", "data");

    public static string TokenizerJson => Path.Combine(DataDir, "tokenizers", "gpt-neox-20b.tokenizer.json");

    public static string GoldenJsonl => Path.Combine(DataDir, "tokenizers", "golden.jsonl");

    public static string NeoxJsonText => s_json.Value;

    public static TokenizerModel NeoxModel => s_model.Value;

    public static XlstmTokenizer Neox => s_tokenizer.Value;

    public static IReadOnlyList<GoldenLine> Golden => s_golden.Value;

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "XlstmRun.sln")))
            {
                return dir.FullName;
            }
        }
        throw new DirectoryNotFoundException($"no directory containing XlstmRun.sln above {AppContext.BaseDirectory}");
    }

    private static IReadOnlyList<GoldenLine> LoadGolden()
    {
        var lines = new List<GoldenLine>();
        int n = 0;
        foreach (string line in File.ReadLines(GoldenJsonl))
        {
            n++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }
            using var doc = JsonDocument.Parse(line);
            string text = doc.RootElement.GetProperty("text").GetString()!;
            int[] ids = doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            lines.Add(new GoldenLine(n, text, ids));
        }
        return lines;
    }
}

internal sealed record GoldenLine(int LineNumber, string Text, int[] Ids);
