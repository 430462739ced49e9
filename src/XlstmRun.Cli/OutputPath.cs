using XlstmRun.Formats.IO;

namespace XlstmRun.Cli;

/// <summary>
/// Checks that an output path can be written before any work is done, so a bad path fails fast. Kept for commands not
/// yet moved to <see cref="OutputFile"/> (which also refuses inputs and non-regular files, and writes atomically).
/// </summary>
internal static class OutputPath
{
    public static void Check(string path, bool force) => OutputFile.Check(path, "--output", force, [], allowStdout: false);
}
