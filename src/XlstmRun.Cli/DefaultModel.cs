namespace XlstmRun.Cli;

/// <summary>
/// Where the built-in default model is looked for when neither -m nor XLSTM_MODEL is given, in order:
/// $XLSTM_HOME/default.gguf; ~/.local/share/xlstm-run/default.gguf; default.gguf beside the executable;
/// ../share/xlstm-run/default.gguf relative to the executable; and, for a source checkout, models/default/default.gguf
/// in the repository that contains the executable (build/xlstm-run → models/default/default.gguf).
/// </summary>
internal static class DefaultModel
{
    public const string FileName = "default.gguf";

    public static IEnumerable<string> Candidates()
    {
        var home = Environment.GetEnvironmentVariable("XLSTM_HOME");
        if (!string.IsNullOrEmpty(home)) yield return Path.Combine(home, FileName);
        var user = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (!string.IsNullOrEmpty(user)) yield return Path.Combine(user, ".local", "share", "xlstm-run", FileName);
        string exeDir = AppContext.BaseDirectory;
        yield return Path.Combine(exeDir, FileName);
        yield return Path.GetFullPath(Path.Combine(exeDir, "..", "share", "xlstm-run", FileName));
        for (var d = new DirectoryInfo(exeDir); d != null; d = d.Parent)
        {
            var p = Path.Combine(d.FullName, "models", "default", FileName);
            if (File.Exists(Path.Combine(d.FullName, "XlstmRun.sln"))) { yield return p; break; }
        }
    }

    public static string? Find() => Candidates().FirstOrDefault(File.Exists);
}
