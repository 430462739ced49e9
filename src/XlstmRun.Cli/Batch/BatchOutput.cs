using System.Diagnostics;
using System.Globalization;
using Microsoft.Win32.SafeHandles;
using XlstmRun.Formats;

namespace XlstmRun.Cli.Batch;

/// <summary>What <see cref="BatchOutput.Resume"/> found in an existing output.</summary>
internal sealed class ResumeInfo
{
    /// <summary>Indexed by input line number: the line has a record (a result, or an error unless errors are retried).</summary>
    public required bool[] Done { get; init; }
    public int Results { get; init; }
    public int Errors { get; init; }
    /// <summary>Error records removed to be run again (--retry-errors).</summary>
    public int Retried { get; init; }
    /// <summary>Extra records for lines that already had one (a file not written by one batch run); removed with
    /// --retry-errors, otherwise kept.</summary>
    public int Duplicates { get; init; }
    /// <summary>Bytes of an incomplete last record that were cut off.</summary>
    public long RepairedBytes { get; init; }
}

/// <summary>
/// The results file of a batch run. Opened once, locked (flock, exclusive: a second batch on the same output refuses
/// instead of interleaving), appended to with one positional write per record (record and newline together), and
/// fsync'd at a cadence and at the end. An interrupted run leaves at most an incomplete last record, which
/// <see cref="Resume"/> cuts off.
/// </summary>
internal sealed class BatchOutput : IDisposable
{
    private SafeFileHandle _h;
    private SafeFileHandle? _replaced; // the file a --retry-errors rewrite replaced: kept open (and locked) until the end
    private long _end;
    private bool _dirty;
    private readonly bool _created;
    private readonly double _syncSeconds;
    private readonly Stopwatch _sinceSync = Stopwatch.StartNew();
    private readonly CrashHook? _hook = CrashHook.FromEnvironment();
    private int _appended;
    private Action? _repair;

    public string Path { get; }
    /// <summary>Whether the file existed before this run opened it.</summary>
    public bool Existed => !_created;
    public long Length => _end;

    private BatchOutput(string path, SafeFileHandle h, bool created, double syncSeconds)
    {
        Path = path;
        _h = h;
        _created = created;
        _syncSeconds = syncSeconds;
        _end = RandomAccess.GetLength(h);
    }

    /// <summary>
    /// Checks and opens the output. <paramref name="others"/> are the files it must not be (the input, the model).
    /// Nothing is written or cut here.
    /// </summary>
    public static BatchOutput Open(string path, bool resume, bool force, double syncSeconds, IEnumerable<(string What, string Path)> others)
    {
        if (path == "-") throw new BadInputException("--output must be a file (results are appended and locked, so standard output cannot be used)");
        var info = PosixFiles.Stat(path);
        if (info?.Kind == PosixFiles.Kind.Directory || Directory.Exists(path)) throw new BadInputException($"{path}: is a directory");
        string? dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (dir != null && !Directory.Exists(dir)) throw new BadInputException($"{path}: directory {dir} does not exist");
        bool exists = info is { } i0 ? i0.Kind != PosixFiles.Kind.Missing : File.Exists(path);
        if (exists && info is { Kind: not PosixFiles.Kind.Regular } k)
            throw new BadInputException($"{path}: is {PosixFiles.Describe(k.Kind)}; batch writes its results to a regular file");
        foreach (var (what, other) in others)
        {
            bool same = info is { } a && PosixFiles.Stat(other) is { } b
                ? a.SameFileAs(b)
                : System.IO.Path.GetFullPath(path) == System.IO.Path.GetFullPath(other);
            if (same) throw new BadInputException($"{path}: is the {what}; give another --output");
        }
        if (exists && !resume && !force)
            throw new BadInputException($"{path}: already exists (use --resume to continue it or --force to overwrite it)");

        SafeFileHandle? h = null;
        bool created = false;
        try
        {
            if (!exists)
            {
                try
                {
                    h = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
                    created = true;
                }
                catch (IOException) when (File.Exists(path))
                {
                    // created by someone else since the check: it is an existing file now
                    if (!resume && !force) throw new BadInputException($"{path}: already exists (use --resume to continue it or --force to overwrite it)");
                }
            }
            h ??= OpenExistingLocked(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{path}: cannot open for writing ({e.Message})");
        }
        var o = new BatchOutput(path, h, created, syncSeconds);
        try
        {
            // .NET already took the lock when opening with FileShare.None; this makes sure of it even where .NET's
            // locking is switched off (DOTNET_SYSTEM_IO_DISABLEFILELOCKING).
            switch (PosixFiles.TryLock(h, exclusive: true))
            {
                case PosixFiles.LockResult.HeldElsewhere:
                    throw Locked(path);
                case PosixFiles.LockResult.Unsupported when OperatingSystem.IsLinux():
                    Console.Error.WriteLine($"warning: {path}: cannot take a lock on it (file system without flock?): make sure no other batch writes to it");
                    break;
            }
            if (PosixFiles.Stat(h) is { Kind: not PosixFiles.Kind.Regular } k2)
                throw new BadInputException($"{path}: is {PosixFiles.Describe(k2.Kind)}; batch writes its results to a regular file");
            return o;
        }
        catch
        {
            o.Abandon();
            throw;
        }
    }

    /// <summary>
    /// Opens an existing output and locks it. A process killed a moment ago may not have released its lock yet (a
    /// supervisor can see it dead first), so a lock held elsewhere is tried again for a second before giving up.
    /// </summary>
    private static SafeFileHandle OpenExistingLocked(string path)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                var h = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
                if (PosixFiles.TryLock(h, exclusive: true) != PosixFiles.LockResult.HeldElsewhere) return h;
                h.Dispose();
            }
            catch (IOException e) when (PosixFiles.IsLockConflict(e))
            {
            }
            if (waited.ElapsedMilliseconds >= 1000) throw Locked(path);
            Thread.Sleep(50);
        }
    }

    private static BadInputException Locked(string path) =>
        new($"{path}: another batch is writing to it (the file is locked); give every process its own --output");

    /// <summary>
    /// Reads the records already there (for --resume): each input line with a result, or with an error record unless
    /// <paramref name="retryErrors"/>, is done. Refuses a file with lines that are not records of this input. Changes
    /// nothing yet: <see cref="Repair"/> then cuts off an incomplete last record or, with <paramref name="retryErrors"/>,
    /// rewrites the file without its error records (to a temporary file renamed over it, so that a crash leaves the
    /// old or the new file, whole).
    /// </summary>
    public ResumeInfo Resume(BatchInput input, bool retryErrors)
    {
        var done = new bool[input.PhysicalLines + 1];
        int results = 0, errors = 0, retried = 0, dupes = 0;
        var keep = new List<(long Offset, long End)>();
        long cutAt;
        try
        {
            cutAt = BatchRecords.Scan(_h, Path, input, (in ScannedLine l, BatchRecord r) =>
            {
                if (r.IsError && retryErrors)
                {
                    retried++;
                    return;
                }
                if (done[r.Line])
                {
                    dupes++;
                    if (!retryErrors) keep.Add((l.Offset, l.End));
                    return;
                }
                done[r.Line] = true;
                if (r.IsError) errors++;
                else results++;
                keep.Add((l.Offset, l.End));
            });
        }
        catch (BadInputException e)
        {
            throw new BadInputException(e.Message + "; --resume continues only a file that batch wrote for this input");
        }
        long repaired = cutAt >= 0 ? _end - cutAt : 0;
        _repair = retryErrors && (retried > 0 || dupes > 0) ? () => Rewrite(keep)
            : cutAt >= 0 ? () =>
            {
                RandomAccess.SetLength(_h, cutAt);
                RandomAccess.FlushToDisk(_h);
                _end = cutAt;
            }
            : null;
        return new ResumeInfo { Done = done, Results = results, Errors = errors, Retried = retried, Duplicates = dupes, RepairedBytes = repaired };
    }

    /// <summary>Applies what <see cref="Resume"/> found: cuts off the incomplete last record, or rewrites the file
    /// without the error records being retried. Called once the run can start, so that a failure to start (a model
    /// that does not load) leaves the file as it was.</summary>
    public void Repair()
    {
        _repair?.Invoke();
        _repair = null;
    }

    private void Rewrite(List<(long Offset, long End)> keep)
    {
        var (tmp, th) = PosixFiles.CreateTemp(Path);
        try
        {
            if (PosixFiles.TryLock(th, exclusive: true) == PosixFiles.LockResult.HeldElsewhere) throw Locked(tmp);
            var buf = new byte[1 << 20];
            long to = 0;
            foreach (var (offset, end) in keep) to = CopyRange(_h, offset, end, th, to, buf);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(th, File.GetUnixFileMode(_h));
            RandomAccess.FlushToDisk(th);
            File.Move(tmp, Path, overwrite: true);
            _replaced = _h;
            _h = th;
            _end = to;
        }
        catch
        {
            th.Dispose();
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>Copies bytes [<paramref name="offset"/>, <paramref name="end"/>) of one file to <paramref name="to"/> at
    /// <paramref name="at"/>; returns the offset after them.</summary>
    internal static long CopyRange(SafeFileHandle from, long offset, long end, SafeFileHandle to, long at, byte[] buf)
    {
        while (offset < end)
        {
            int n = RandomAccess.Read(from, buf.AsSpan(0, (int)Math.Min(buf.Length, end - offset)), offset);
            if (n <= 0) throw new IOException("a file became shorter while it was being copied");
            RandomAccess.Write(to, buf.AsSpan(0, n), at);
            offset += n;
            at += n;
        }
        return at;
    }

    /// <summary>--force without --resume: empties the file (called once the model has loaded, so that a failure to start
    /// does not cost the old results).</summary>
    public void Clear()
    {
        RandomAccess.SetLength(_h, 0);
        _end = 0;
        _dirty = true;
    }

    /// <summary>Appends one encoded record (newline included) with one write.</summary>
    public void Append(byte[] record)
    {
        if (_repair != null) throw new InvalidOperationException("Repair() first");
        _appended++;
        _hook?.Before(_appended, this, record);
        RandomAccess.Write(_h, record, _end);
        _end += record.Length;
        _dirty = true;
        _hook?.After(_appended);
        if (_syncSeconds <= 0 || _sinceSync.Elapsed.TotalSeconds >= _syncSeconds) Sync();
    }

    /// <summary>Writes part of a record and nothing else (the crash hook's torn write).</summary>
    internal void AppendPart(ReadOnlySpan<byte> part) => RandomAccess.Write(_h, part, _end);

    /// <summary>Makes the records written so far durable (fsync).</summary>
    public void Sync()
    {
        if (_dirty) RandomAccess.FlushToDisk(_h);
        _dirty = false;
        _sinceSync.Restart();
    }

    /// <summary>Ends after a failure: what was written is kept (and synced); a file this run created and never wrote to
    /// is removed again.</summary>
    public void Abandon()
    {
        try
        {
            if (!_h.IsClosed && _dirty) RandomAccess.FlushToDisk(_h);
            if (_created && _end == 0 && RandomAccess.GetLength(_h) == 0) File.Delete(Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        _h.Dispose();
        _replaced?.Dispose();
    }

    public void Dispose()
    {
        try
        {
            if (!_h.IsClosed) Sync();
        }
        finally
        {
            _h.Dispose();
            _replaced?.Dispose();
        }
    }

    /// <summary>
    /// Test hook for the crash-safety tests, from <c>XLSTM_BATCH_TEST_CRASH</c>: <c>kill-before:N</c>,
    /// <c>kill-after:N</c> (SIGKILL just before / after the N-th record this process writes), <c>kill-torn:N</c> (write
    /// half of the N-th record, then SIGKILL: what a crash inside a write would leave), <c>pause-after:N</c> (print
    /// "batch: test hook: paused" on stderr after the N-th record and wait to be killed).
    /// </summary>
    private sealed class CrashHook
    {
        private string _action = "";
        private int _at;

        public static CrashHook? FromEnvironment()
        {
            var v = Environment.GetEnvironmentVariable("XLSTM_BATCH_TEST_CRASH");
            if (string.IsNullOrEmpty(v)) return null;
            var parts = v.Split(':');
            if (parts.Length != 2 || parts[0] is not ("kill-before" or "kill-after" or "kill-torn" or "pause-after")
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int at) || at < 1)
                throw new BadInputException("XLSTM_BATCH_TEST_CRASH must be kill-before:N, kill-after:N, kill-torn:N or pause-after:N (N ≥ 1)");
            return new CrashHook { _action = parts[0], _at = at };
        }

        public void Before(int n, BatchOutput o, byte[] record)
        {
            if (n != _at) return;
            if (_action == "kill-before") PosixFiles.KillSelf();
            if (_action == "kill-torn")
            {
                o.AppendPart(record.AsSpan(0, record.Length / 2));
                PosixFiles.KillSelf();
            }
        }

        public void After(int n)
        {
            if (n != _at) return;
            if (_action == "kill-after") PosixFiles.KillSelf();
            if (_action == "pause-after")
            {
                Console.Error.WriteLine("batch: test hook: paused");
                Console.Error.Flush();
                Thread.Sleep(Timeout.Infinite);
            }
        }
    }
}
