namespace XlstmRun.Tests.Support;

/// <summary>Locations of the repository, its test data (tests/data) and the built binary, found from the test assembly's folder.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRepo();
    /// <summary>tests/data: reference checkpoints and tokenizer data kept in the repository (see tests/data/README.md).</summary>
    public static string Data => Path.Combine(RepoRoot, "tests", "data");
    public static string Fixtures => Path.Combine(Data, "fixtures");
    public static string Fixture(string name) => Path.Combine(Fixtures, name);
    /// <summary>Every fixture, the long-prompt one (tiny-long, 1500 tokens) last.</summary>
    public static readonly string[] FixtureNames = XlstmRun.Conformance.Fixture.Standard;

    private static string FindRepo()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "XlstmRun.sln"))) return d.FullName;
        throw new InvalidOperationException("repository root (XlstmRun.sln) not found above " + AppContext.BaseDirectory);
    }

    /// <summary>A fresh temporary directory for one test.</summary>
    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "xlstm-tests", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(d);
        return d;
    }
}
