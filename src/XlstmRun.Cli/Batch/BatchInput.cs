using Microsoft.Win32.SafeHandles;
using XlstmRun.Formats;

namespace XlstmRun.Cli.Batch;

/// <summary>A prompt line of the input (blank lines have none): where it is, its id, and its error if it is malformed.</summary>
public sealed class InputLine
{
    /// <summary>1-based line number in the input file; what records are keyed by.</summary>
    public required int Line { get; init; }
    public required long Offset { get; init; }
    public required int Length { get; init; }
    public required int Hash { get; init; }
    /// <summary>The line's id: its "id", else its line number.</summary>
    public LineId Id { get; set; }
    /// <summary>Whether the id is the line's own "id" (not its line number).</summary>
    public bool HasId { get; init; }
    public string? Error { get; set; }
    public bool NotObject { get; init; }
}

/// <summary>
/// The JSONL prompt file, indexed once: every prompt line is parsed (so errors and ids are known up front, and duplicate
/// ids are found over the whole file whatever the shard), but only its position is kept; a line is read again when it
/// is run. Memory is proportional to the number of lines, not to their size.
/// </summary>
public sealed class BatchInput : IDisposable
{
    /// <summary>Longest prompt line accepted; a longer one gets an error record.</summary>
    public const int MaxLineBytes = 16 << 20;
    /// <summary>Most bytes read from standard input or a FIFO (they are kept in memory; a file is not).</summary>
    public const long MaxStreamBytes = 256L << 20;

    private readonly SafeFileHandle? _file;
    private readonly byte[]? _bytes;
    private readonly int[] _indexByLine; // line number -> index in Lines, or -1

    public string Path { get; }
    /// <summary>The prompt lines (blank lines skipped), in file order.</summary>
    public IReadOnlyList<InputLine> Lines { get; }
    public int PhysicalLines { get; }

    private BatchInput(string path, SafeFileHandle? file, byte[]? bytes, List<InputLine> lines, int physical)
    {
        Path = path;
        _file = file;
        _bytes = bytes;
        Lines = lines;
        PhysicalLines = physical;
        _indexByLine = new int[physical + 1];
        Array.Fill(_indexByLine, -1);
        for (int i = 0; i < lines.Count; i++) _indexByLine[lines[i].Line] = i;
    }

    /// <summary>The prompt line with this line number, or null (blank or beyond the end).</summary>
    public InputLine? ByLine(long line) => line >= 1 && line <= PhysicalLines && _indexByLine[line] is int i and >= 0 ? Lines[i] : null;

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
            JsonlScanner.LineHandler index = (in ScannedLine l) => Index(l, d, lines);
            int physical = file != null
                ? JsonlScanner.Scan(file, MaxLineBytes, index)
                : JsonlScanner.Scan(new MemoryStream(bytes!, false), MaxLineBytes, index);
            if (lines.Count == 0) throw new BadInputException($"{path}: no prompts (expected one JSON object per line)");
            if (lines.All(l => l.NotObject))
                throw new BadInputException($"{path}: not a JSONL prompt file (no line is a JSON object; line {lines[0].Line}: {Shown.Clean(lines[0].Error!)})");
            AssignIds(lines);
            return new BatchInput(path, file, bytes, lines, physical);
        }
        catch
        {
            file?.Dispose();
            throw;
        }
    }

    private static void Index(in ScannedLine l, BatchDefaults d, List<InputLine> lines)
    {
        var content = l.Content;
        long offset = l.Offset;
        if (l.Number == 1 && content.Span.StartsWith("\uFEFF"u8))
        {
            content = content[3..];
            offset += 3;
        }
        if (!l.TooLong && content.Span.Trim(" \t\r"u8).IsEmpty) return;
        ParsedLine p = l.TooLong
            ? new ParsedLine { Error = $"the line is longer than {MaxLineBytes >> 20} MiB", NotObject = true }
            : BatchLineParser.Parse(content, l.Number, d);
        lines.Add(new InputLine
        {
            Line = l.Number, Offset = offset, Length = content.Length, Hash = Hash(content.Span),
            Id = p.Id ?? LineId.OfLine(l.Number), HasId = p.Id != null, Error = p.Error, NotObject = p.NotObject,
        });
    }

    /// <summary>Ids must be unique: the later of two lines with the same id gets an error record (a line without "id"
    /// has its line number as id).</summary>
    private static void AssignIds(List<InputLine> lines)
    {
        var first = new Dictionary<LineId, InputLine>(lines.Count);
        foreach (var l in lines)
        {
            if (first.TryAdd(l.Id, l)) continue;
            var o = first[l.Id];
            l.Error ??= l.HasId
                ? o.HasId
                    ? $"duplicate id {l.Id.Display} (line {o.Line} has it too); ids must be unique"
                    : $"duplicate id {l.Id.Display}: line {o.Line} has no \"id\", so its id is its line number; ids must be unique"
                : $"this line has no \"id\", so its id is its line number, {l.Line}, but line {o.Line} has \"id\": {o.Id.Display}; ids must be unique";
        }
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
