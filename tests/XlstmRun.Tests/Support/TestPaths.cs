namespace XlstmRun.Tests.Support;

/// <summary>Locations of the repository, ../shared and the built binary, found from the test assembly's folder.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRepo();
    public static string Shared => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
    public static string Fixtures => Path.Combine(Shared, "fixtures");
    public static string Fixture(string name) => Path.Combine(Fixtures, name);
    public static readonly string[] FixtureNames = ["tiny-f32", "tiny-bf16", "tiny-fused"];

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
