using System.CommandLine;
using Microsoft.Win32.SafeHandles;
using XlstmRun.Cli.Batch;
using XlstmRun.Formats;
using XlstmRun.Text.Sampling;

namespace XlstmRun.Cli.Commands;

/// <summary>
/// `batch-merge`: joins the outputs of `batch --shard` runs into one file in input-line order, and says which prompt
/// lines have no record or more than one.
/// </summary>
internal static class BatchMergeCommand
{
    private const int ListMax = 10;

    public static Command Create()
    {
        var input = new Option<string>("--input", "-i") { Description = "The JSONL prompt file the shards ran (to know every prompt line and its id)", Required = true, HelpName = "FILE" };
        var output = new Option<string>("--output", "-o") { Description = "The merged JSONL (\"-\" = standard output), one record per prompt line in input order", Required = true, HelpName = "FILE" };
        var force = new Option<bool>("--force") { Description = "Overwrite an existing output file" };
        var partial = new Option<bool>("--partial") { Description = "Write the merged file even when lines are missing or duplicated (the first record of a line is kept); the exit code is still 1" };
        var files = new Argument<string[]>("SHARD-OUTPUTS") { Description = "The outputs of the batch runs (any order)", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("batch-merge", "Join the outputs of sharded batch runs in input order, checking that every line has exactly one record.");
        HelpNotes.Add(cmd,
            "Example: xlstm-run batch-merge -i prompts.jsonl -o results.jsonl results.0.jsonl results.1.jsonl results.2.jsonl\n" +
            "Records are matched to prompt lines by their \"line\" number and checked against the line's id. Error records\n" +
            "count as records (they are reported). A missing line is one no shard has a record for (a shard that did not run\n" +
            "or did not finish: rerun it with --resume); a duplicated line has records in more than one place.\n" +
            "Exit codes: 0 merged, every prompt line exactly once; 1 lines missing or duplicated (nothing written unless\n" +
            "--partial); 2 unusable input (a file that is not a batch output of this input, one still being written, ...).");
        cmd.Options.Add(input);
        cmd.Options.Add(output);
        cmd.Options.Add(force);
        cmd.Options.Add(partial);
        cmd.Arguments.Add(files);
        cmd.SetAction(pr => Program.Run(() => Merge(pr.GetValue(input)!, pr.GetValue(output)!, pr.GetValue(files)!, pr.GetValue(force), pr.GetValue(partial))));
        return cmd;
    }

    private static int Merge(string inPath, string outPath, string[] paths, bool force, bool partial)
    {
        // Only the lines and their ids matter here; the generation settings do not.
        var neutral = new BatchDefaults { Sampling = new SamplingParams(), MaxTokens = 0, Stop = [] };
        using var inp = BatchInput.Open(inPath, neutral);
        var handles = new List<SafeFileHandle>();
        try
        {
            var ids = new List<PosixFiles.Info?>();
            foreach (var p in paths)
            {
                var h = OpenShard(p);
                handles.Add(h);
                var id = PosixFiles.Stat(h);
                for (int j = 0; j < ids.Count; j++)
                    if (id is { } a && ids[j] is { } b && a.SameFileAs(b)) throw new BadInputException($"{p}: given twice (also as {paths[j]})");
                ids.Add(id);
            }

            int n = inp.PhysicalLines + 1;
            var count = new int[n];
            var file = new int[n];
            var offset = new long[n];
            var end = new long[n];
            var recLine = new int[n]; // line of the first record in its file
            var where = new Dictionary<long, List<string>>(); // duplicated line -> "file line k" of each record
            int records = 0, errors = 0;
            var incomplete = new List<string>();
            for (int f = 0; f < handles.Count; f++)
            {
                string p = paths[f];
                long cut = BatchRecords.Scan(handles[f], p, inp, (in ScannedLine l, BatchRecord r) =>
                {
                    records++;
                    if (r.IsError) errors++;
                    int line = (int)r.Line;
                    if (count[line]++ == 0)
                    {
                        file[line] = f;
                        offset[line] = l.Offset;
                        end[line] = l.End;
                        recLine[line] = l.Number;
                        return;
                    }
                    if (!where.TryGetValue(line, out var list)) where[line] = list = [$"{paths[file[line]]} line {recLine[line]}"];
                    list.Add($"{p} line {l.Number}");
                });
                if (cut >= 0) incomplete.Add(p);
            }

            var missing = inp.Lines.Where(l => count[l.Line] == 0).Select(l => l.Line).ToList();
            var dup = inp.Lines.Where(l => count[l.Line] > 1).Select(l => l.Line).ToList();
            Console.Error.WriteLine($"batch-merge: {inp.Lines.Count} prompt lines in {inPath}; {records} records in {paths.Length} files ({errors} error records)");
            foreach (var p in incomplete)
                Console.Error.WriteLine($"batch-merge: {p}: its last record is incomplete (the run was interrupted): rerun that shard with --resume");
            if (missing.Count > 0)
                Console.Error.WriteLine($"batch-merge: {missing.Count} {(missing.Count == 1 ? "line" : "lines")} missing: {List(missing.Select(x => x.ToString()))}");
            if (dup.Count > 0)
                Console.Error.WriteLine($"batch-merge: {dup.Count} {(dup.Count == 1 ? "line" : "lines")} duplicated: {List(dup.Select(x => $"{x} ({string.Join(", ", where[x])})"))}");
            bool complete = missing.Count == 0 && dup.Count == 0;
            if (!complete && !partial)
            {
                Console.Error.WriteLine($"error: {outPath} not written: {missing.Count} lines missing, {dup.Count} duplicated (--partial writes what there is)");
                return ExitCodes.Failure;
            }

            int written = 0;
            Write(outPath, force, inPath, paths, dest =>
            {
                var buf = new byte[1 << 20];
                foreach (var l in inp.Lines)
                {
                    if (count[l.Line] == 0) continue;
                    var h = handles[file[l.Line]];
                    for (long o = offset[l.Line], e = end[l.Line]; o < e;)
                    {
                        int got = RandomAccess.Read(h, buf.AsSpan(0, (int)Math.Min(buf.Length, e - o)), o);
                        if (got <= 0) throw new IOException($"{paths[file[l.Line]]}: became shorter while it was being merged");
                        dest.Write(buf, 0, got);
                        o += got;
                    }
                    written++;
                }
            });
            Console.Error.WriteLine($"batch-merge: wrote {written} records to {outPath}" + (complete ? "" : " (incomplete)"));
            return complete ? ExitCodes.Ok : ExitCodes.Failure;
        }
        finally
        {
            foreach (var h in handles) h.Dispose();
        }
    }

    private static string List(IEnumerable<string> items)
    {
        var all = items.ToList();
        return string.Join(", ", all.Take(ListMax)) + (all.Count > ListMax ? $", ... ({all.Count - ListMax} more)" : "");
    }

    private static SafeFileHandle OpenShard(string p)
    {
        var info = PosixFiles.Stat(p);
        if (info?.Kind == PosixFiles.Kind.Missing || (info == null && !File.Exists(p))) throw new BadInputException($"{p}: file not found");
        if (info is { Kind: not PosixFiles.Kind.Regular } k) throw new BadInputException($"{p}: is {PosixFiles.Describe(k.Kind)}, not a batch output");
        SafeFileHandle h;
        try
        {
            h = File.OpenHandle(p, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        }
        catch (IOException e) when (PosixFiles.IsLockConflict(e))
        {
            throw new BadInputException($"{p}: a batch run is still writing it; merge when every shard has finished");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{p}: cannot read ({e.Message})");
        }
        if (PosixFiles.TryLock(h, exclusive: false) == PosixFiles.LockResult.HeldElsewhere)
        {
            h.Dispose();
            throw new BadInputException($"{p}: a batch run is still writing it; merge when every shard has finished");
        }
        return h;
    }

    /// <summary>Writes the merged file: to standard output, or to a temporary file renamed over the output at the end.</summary>
    private static void Write(string outPath, bool force, string inPath, string[] shards, Action<Stream> body)
    {
        if (outPath == "-")
        {
            using var so = Console.OpenStandardOutput();
            body(so);
            so.Flush();
            return;
        }
        var info = PosixFiles.Stat(outPath);
        if (info?.Kind == PosixFiles.Kind.Directory || Directory.Exists(outPath)) throw new BadInputException($"{outPath}: is a directory");
        string? dir = Path.GetDirectoryName(Path.GetFullPath(outPath));
        if (dir != null && !Directory.Exists(dir)) throw new BadInputException($"{outPath}: directory {dir} does not exist");
        bool exists = info is { } i0 ? i0.Kind != PosixFiles.Kind.Missing : File.Exists(outPath);
        if (exists)
        {
            if (info is { Kind: not PosixFiles.Kind.Regular } k)
                throw new BadInputException($"{outPath}: is {PosixFiles.Describe(k.Kind)}; the merged output must be a regular file");
            foreach (var other in shards.Prepend(inPath))
            {
                bool same = info is { } a && PosixFiles.Stat(other) is { } b ? a.SameFileAs(b) : Path.GetFullPath(outPath) == Path.GetFullPath(other);
                if (same) throw new BadInputException($"{outPath}: is one of the files being merged; give another --output");
            }
            if (!force) throw new BadInputException($"{outPath}: already exists (use --force to overwrite it)");
        }

        var (tmp, th) = PosixFiles.CreateTemp(outPath);
        try
        {
            using (var fs = new FileStream(th, FileAccess.ReadWrite, 1 << 16))
            {
                body(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, outPath, overwrite: true);
        }
        catch
        {
            th.Dispose();
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }
}
