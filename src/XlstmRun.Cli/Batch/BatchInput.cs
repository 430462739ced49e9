using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using XlstmRun.Formats;

namespace XlstmRun.Cli.Batch;

[Flags]
internal enum LineFlags : byte
{
    None = 0,
    /// <summary>The line has its own valid "id".</summary>
    HasId = 1,
    /// <summary>The line itself is wrong (its error is found again by parsing it).</summary>
    Malformed = 2,
    /// <summary>Not a JSON object at all (not UTF-8, not JSON, an array...).</summary>
    NotObject = 4,
    TooLong = 8,
}

/// <summary>
/// A prompt line of the input (blank lines have none): where it is, its id, whether it is an error. Small on purpose
/// (no text, no message): an input of millions of lines is indexed in tens of bytes per line.
/// </summary>
/// <param name="Line">1-based line number in the input file; what records are keyed by.</param>
/// <param name="Id">The line's id: its "id", else its line number.</param>
/// <param name="DupOf">The earlier line whose id this line repeats (then this line is an error), or 0.</param>
internal readonly record struct InputLine(int Line, long Offset, int Length, int Hash, LineId Id, LineFlags Flags, int DupOf = 0)
{
    public bool HasId => (Flags & LineFlags.HasId) != 0;
    public bool NotObject => (Flags & LineFlags.NotObject) != 0;
    /// <summary>The line gets an error record: it is malformed, or its id repeats an earlier line's.</summary>
    public bool IsError => (Flags & LineFlags.Malformed) != 0 || DupOf != 0;
}

/// <summary>
/// The JSONL prompt file, indexed once: every prompt line is parsed (so errors and ids are known up front, and duplicate
/// ids are found over the whole file whatever the shard), but only its position is kept; a line is read again when it
/// is run. Memory is proportional to the number of lines, not to their size.
/// </summary>
internal sealed class BatchInput : IDisposable
{
    /// <summary>Longest prompt line accepted; a longer one gets an error record.</summary>
    public const int MaxLineBytes = 16 << 20;
    /// <summary>Most bytes read from standard input or a FIFO (they are kept in memory; a file is not).</summary>
    public const long MaxStreamBytes = 256L << 20;
    /// <summary>Most prompt lines in one file (the index stays under about 1 GiB whatever the lines).</summary>
    public const int MaxPromptLines = 10_000_000;

    private readonly SafeFileHandle? _file;
    private readonly byte[]? _bytes;
    private readonly int[] _indexByLine; // line number -> index in Lines, or -1

    public string Path { get; }
    /// <summary>The prompt lines (blank lines skipped), in file order.</summary>
    public IReadOnlyList<InputLine> Lines => _lines;
    private readonly List<InputLine> _lines;
    public int PhysicalLines { get; }

    private BatchInput(string path, SafeFileHandle? file, byte[]? bytes, List<InputLine> lines, int physical)
    {
        Path = path;
        _file = file;
        _bytes = bytes;
        _lines = lines;
        PhysicalLines = physical;
        _indexByLine = new int[physical + 1];
        Array.Fill(_indexByLine, -1);
        for (int i = 0; i < lines.Count; i++) _indexByLine[lines[i].Line] = i;
    }

    /// <summary>The prompt line with this line number, or null (blank or beyond the end).</summary>
    public InputLine? ByLine(long line) => line >= 1 && line <= PhysicalLines && _indexByLine[line] is int i and >= 0 ? _lines[i] : null;

    /// <summary>Opens and indexes <paramref name="path"/> ("-" = standard input).</summary>
    public static BatchInput Open(string path, BatchDefaults d)
    {
        SafeFileHandle? file = null;
        byte[]? bytes = null;
        PosixFiles.Info? id = null;
        if (path == "-") bytes = ReadBounded(Console.OpenStandardInput(), "standard input");
        else
        {
            id = PosixFiles.Stat(path);
            if (id?.Kind == PosixFiles.Kind.Missing || (id == null && !File.Exists(path) && !Directory.Exists(path)))
                throw new BadInputException($"{path}: file not found");
            if (id?.Kind == PosixFiles.Kind.Directory || Directory.Exists(path)) throw new BadInputException($"{path}: is a directory");
            if (id is { Kind: not (PosixFiles.Kind.Regular or PosixFiles.Kind.Fifo) } k)
                throw new BadInputException($"{path}: is {PosixFiles.Describe(k.Kind)}, not a prompt file");
            try
            {
                if (id?.Kind == PosixFiles.Kind.Fifo)
                {
                    using var fifo = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                    bytes = ReadBounded(fifo, path);
                }
                else file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            }
            catch (IOException e) when (PosixFiles.IsLockConflict(e))
            {
                throw new BadInputException($"{path}: locked by a running batch (it is another batch's output)");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new BadInputException($"{path}: cannot read ({e.Message})");
            }
        }
        try
        {
            var lines = new List<InputLine>();
            string? firstError = null;
            JsonlScanner.LineHandler index = (in ScannedLine l) =>
            {
                if (lines.Count == MaxPromptLines)
                    throw new BadInputException($"{path}: more than {MaxPromptLines:N0} prompt lines; split it into several files");
                if (Index(l, d, lines) is string e) firstError ??= $"line {l.Number}: {e}";
            };
            int physical = file != null
                ? JsonlScanner.Scan(file, MaxLineBytes, index)
                : JsonlScanner.Scan(new MemoryStream(bytes!, false), MaxLineBytes, index);
            if (lines.Count == 0) throw new BadInputException($"{path}: no prompts (expected one JSON object per line)");
            if (lines.All(l => l.NotObject))
                throw new BadInputException($"{path}: not a JSONL prompt file (no line is a JSON object; {Shown.Clean(firstError ?? "")})");
            var input = new BatchInput(path, file, bytes, lines, physical);
            input.AssignIds();
            return input;
        }
        catch
        {
            file?.Dispose();
            throw;
        }
    }

    /// <returns>The line's error, if it has one.</returns>
    private static string? Index(in ScannedLine l, BatchDefaults d, List<InputLine> lines)
    {
        var content = l.Content;
        long offset = l.Offset;
        if (l.Number == 1 && content.Span.StartsWith("\uFEFF"u8))
        {
            content = content[3..];
            offset += 3;
        }
        if (!l.TooLong && content.Span.Trim(" \t\r"u8).IsEmpty) return null;
        ParsedLine p = l.TooLong ? new ParsedLine { Error = TooLongError, NotObject = true } : BatchLineParser.Parse(content, l.Number, d);
        var flags = (p.Id != null ? LineFlags.HasId : 0) | (p.Error != null ? LineFlags.Malformed : 0)
            | (p.NotObject ? LineFlags.NotObject : 0) | (l.TooLong ? LineFlags.TooLong : 0);
        lines.Add(new InputLine(l.Number, offset, content.Length, Hash(content.Span), p.Id ?? LineId.OfLine(l.Number), flags));
        return p.Error;
    }

    private static readonly string TooLongError = $"the line is longer than {MaxLineBytes >> 20} MiB";

    /// <summary>
    /// Ids must be unique: the later of two lines with the same id gets an error record. A line without "id" has its
    /// line number as id, so it can clash with another line's explicit numeric id.
    /// </summary>
    private void AssignIds()
    {
        var lines = CollectionsMarshal.AsSpan(_lines);
        var first = new Dictionary<LineId, int>();
        for (int i = 0; i < lines.Length; i++)
            if (lines[i].HasId && !first.TryAdd(lines[i].Id, i)) lines[i] = lines[i] with { DupOf = lines[first[lines[i].Id]].Line };
        for (int i = 0; i < lines.Length; i++)
        {
            ref var l = ref lines[i];
            if (!l.HasId || l.Id.Text != null || l.Id.Number == l.Line || l.Id.Number < 1 || l.Id.Number > PhysicalLines) continue;
            int j = _indexByLine[l.Id.Number];
            if (j < 0 || lines[j].HasId) continue;
            // line l says "id": N, and line N has no id: the later of the two is the duplicate
            ref var later = ref (j > i ? ref lines[j] : ref l);
            int earlier = j > i ? l.Line : lines[j].Line;
            if (later.DupOf == 0) later = later with { DupOf = earlier };
        }
    }

    /// <summary>The error record's message for a line, or null if it is not an error.</summary>
    public string? ErrorOf(InputLine l, BatchDefaults d)
    {
        if ((l.Flags & LineFlags.TooLong) != 0) return TooLongError;
        if ((l.Flags & LineFlags.Malformed) != 0) return Load(l, d).Error ?? "the line cannot be read";
        if (l.DupOf == 0) return null;
        var o = ByLine(l.DupOf)!.Value;
        return l.HasId
            ? o.HasId
                ? $"duplicate id {l.Id.Display} (line {o.Line} has it too); ids must be unique"
                : $"duplicate id {l.Id.Display}: line {o.Line} has no \"id\", so its id is its line number; ids must be unique"
            : $"this line has no \"id\", so its id is its line number, {l.Line}, but line {o.Line} has \"id\": {o.Id.Display}; ids must be unique";
    }

    /// <summary>Reads a prompt line again and parses it; fails if the file changed since it was indexed.</summary>
    public ParsedLine Load(InputLine l, BatchDefaults d)
    {
        var buf = new byte[l.Length];
        if (_bytes != null) _bytes.AsSpan((int)l.Offset, l.Length).CopyTo(buf);
        else
        {
            int got = 0;
            while (got < buf.Length)
            {
                int n = RandomAccess.Read(_file!, buf.AsSpan(got), l.Offset + got);
                if (n <= 0) break;
                got += n;
            }
            if (got != buf.Length || Hash(buf) != l.Hash)
                throw new BadInputException($"{Path}: the file changed while the batch was running (line {l.Line} is not what it was)");
        }
        return BatchLineParser.Parse(buf, l.Line, d);
    }

    private static int Hash(ReadOnlySpan<byte> b)
    {
        var h = new HashCode();
        h.AddBytes(b);
        return h.ToHashCode();
    }

    private static byte[] ReadBounded(Stream s, string what)
    {
        var ms = new MemoryStream();
        var buf = new byte[1 << 16];
        int n;
        while ((n = s.Read(buf, 0, buf.Length)) > 0)
        {
            if (ms.Length + n > MaxStreamBytes)
                throw new BadInputException($"{what}: more than {MaxStreamBytes >> 20} MiB of prompts; give them as a regular file (-i FILE)");
            ms.Write(buf, 0, n);
        }
        return ms.ToArray();
    }

    public void Dispose() => _file?.Dispose();
}
