using System.Security.Cryptography;

namespace XlstmRun.Formats.IO;

/// <summary>A file this run reads, which no output may replace (the model, a state, a prompt or ids file, a tokenizer...).</summary>
public readonly record struct InputRole(string? Path, string Role);

/// <summary>
/// One output file of a command, checked before any work and written atomically. The rules, the same for every command:
/// <list type="bullet">
/// <item>"-" means standard output (where the command allows it; binary data is refused when stdout is a terminal).</item>
/// <item>An existing output is replaced only with --force, and only if it is a regular file: a directory, FIFO,
/// device or socket is never replaced (as root, rename(2) would swap a device node for a regular file).</item>
/// <item>An output that is one of the run's inputs (the same file by device and inode, so hard links and symlinks count)
/// is refused, --force or not.</item>
/// <item>The data goes to PATH.tmp.PID.RANDOM, created exclusively next to PATH (so two runs, or an old PATH.tmp, are
/// never touched), is flushed to disk, and is renamed over PATH only after the checks above pass once more; on any
/// failure the temporary file is removed and PATH is as it was.</item>
/// </list>
/// </summary>
public sealed class OutputFile
{
    public const string StdoutName = "-";

    private readonly InputRole[] _inputs;
    private readonly bool _force;
    private readonly string? _update;

    public string Path { get; }
    /// <summary>The option that named it ("-o", "--save-state"), for messages.</summary>
    public string Option { get; }
    public bool IsStdout => Path == StdoutName;
    /// <summary>Whether the output file existed when checked (it will be replaced).</summary>
    public bool Replaces { get; }

    private OutputFile(string path, string option, bool force, InputRole[] inputs, bool replaces, string? update)
    {
        Path = path; Option = option; _force = force; _inputs = inputs; Replaces = replaces; _update = update;
    }

    /// <summary>
    /// Checks an output path before any work is done. <paramref name="inputs"/> are the files the run reads (null paths
    /// are ignored). <paramref name="mayUpdate"/> is the one input the output may replace: a state file saved back to
    /// the file it was loaded from (the run reads it whole before writing; the write is atomic).
    /// </summary>
    public static OutputFile Check(string path, string option, bool force, IEnumerable<InputRole> inputs, bool allowStdout = true, string? mayUpdate = null)
    {
        if (string.IsNullOrEmpty(path)) throw new BadInputException($"{option}: empty file name");
        var ins = inputs.Where(i => !string.IsNullOrEmpty(i.Path)).ToArray();
        if (path == StdoutName)
        {
            if (!allowStdout) throw new BadInputException($"{option} -: this output cannot go to standard output");
            return new OutputFile(path, option, force, ins, false, null);
        }
        var facts = UnixFile.Stat(path);
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (dir != null && UnixFile.Stat(dir).Type != FileType.Directory) throw new BadInputException($"{path}: directory {dir} does not exist");
        bool update = mayUpdate != null && facts.Exists && facts.SameFileAs(UnixFile.Stat(mayUpdate));
        CheckTarget(path, option, force || update, ins, facts, update ? mayUpdate : null);
        return new OutputFile(path, option, force, ins, facts.Exists, update ? mayUpdate : null);
    }

    private static void CheckTarget(string path, string option, bool force, InputRole[] inputs, FileFacts facts, string? update)
    {
        if (!facts.Exists) return;
        if (facts.Type == FileType.Directory) throw new BadInputException($"{path}: is a directory ({option} needs a file name)");
        if (facts.Type != FileType.Regular)
            throw new BadInputException($"{path}: is {facts.Describe()}; {option} only writes regular files and never replaces anything else");
        foreach (var i in inputs)
        {
            if (update != null && i.Path == update) continue;
            if (facts.SameFileAs(UnixFile.Stat(i.Path!)))
                throw new BadInputException($"{path}: is the {i.Role} this run reads ({i.Path}); refusing to overwrite an input with {option}");
        }
        if (!force) throw new BadInputException($"{path}: already exists (use --force to overwrite)");
    }

    /// <summary>Two outputs of one run must be different files (and at most one may be standard output).</summary>
    public static void CheckDistinct(params OutputFile?[] outputs)
    {
        var list = outputs.Where(o => o != null).Select(o => o!).ToArray();
        for (int i = 0; i < list.Length; i++)
            for (int j = i + 1; j < list.Length; j++)
            {
                var a = list[i]; var b = list[j];
                bool same = a.IsStdout || b.IsStdout
                    ? a.IsStdout && b.IsStdout
                    : System.IO.Path.GetFullPath(a.Path) == System.IO.Path.GetFullPath(b.Path) || UnixFile.Stat(a.Path).SameFileAs(UnixFile.Stat(b.Path));
                if (same) throw new BadInputException($"{a.Option} and {b.Option} name the same output ({a.Path})");
            }
    }

    /// <summary>Refuses binary data on a terminal ("-" with stdout not redirected).</summary>
    public void CheckBinaryStdout()
    {
        if (IsStdout && !Console.IsOutputRedirected)
            throw new BadInputException($"{Option} -: refusing to write binary data to a terminal (redirect standard output to a file or pipe)");
    }

    /// <summary>
    /// Writes the output: <paramref name="write"/> gets a stream (standard output, or the exclusive temporary file that
    /// is then flushed, re-checked and renamed over the path). On failure nothing is left behind and the path is unchanged.
    /// </summary>
    public void Write(Action<Stream> write, int bufferSize = 1 << 20)
    {
        if (IsStdout)
        {
            using var so = Console.OpenStandardOutput();
            using var bs = new BufferedStream(so, bufferSize);
            write(bs);
            bs.Flush();
            return;
        }
        string tmp = TempName(Path);
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            // The target may have changed while we worked: check it again right before replacing it.
            // (A file that appeared meanwhile is replaced only with --force.)
            CheckTarget(Path, Option, _force || _update != null, _inputs, UnixFile.Stat(Path), _update);
            File.Move(tmp, Path, overwrite: true);
        }
        catch (Exception e)
        {
            try { File.Delete(tmp); } catch { /* best effort: it is ours */ }
            if (e is IOException or UnauthorizedAccessException) throw new IOException($"{Path}: cannot write ({e.Message})", e);
            throw;
        }
    }

    /// <summary>PATH.tmp.PID.RANDOM: unique per process and per call, beside PATH (so the rename stays on one file system).</summary>
    public static string TempName(string path) =>
        $"{path}.tmp.{Environment.ProcessId}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
}
