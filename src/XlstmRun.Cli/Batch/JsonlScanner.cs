namespace XlstmRun.Cli.Batch;

/// <summary>One line of a JSONL file as <see cref="JsonlScanner"/> sees it.</summary>
/// <param name="Number">1-based line number.</param>
/// <param name="Offset">Byte offset of the line's first byte.</param>
/// <param name="Content">The line without its newline and without a trailing '\r'; valid only during the callback;
/// empty when <paramref name="TooLong"/>.</param>
/// <param name="End">Byte offset just after the line's newline (or the end of the file).</param>
/// <param name="Terminated">Whether the line ends with a newline (false only for the last line).</param>
/// <param name="TooLong">The line is longer than the scanner's limit; its bytes were skipped, not kept.</param>
internal readonly record struct ScannedLine(int Number, long Offset, ReadOnlyMemory<byte> Content, long End, bool Terminated, bool TooLong);

/// <summary>
/// Splits a stream into lines without holding more than one line (up to a limit) in memory, keeping each line's byte
/// offset so that it can be read again or cut off later.
/// </summary>
internal static class JsonlScanner
{
    public delegate void LineHandler(in ScannedLine line);

    /// <summary>Scans a stream from its current position.</summary>
    public static int Scan(Stream s, int maxLineBytes, LineHandler onLine) => Scan(b => s.Read(b, 0, b.Length), maxLineBytes, onLine);

    /// <summary>Scans an open file from offset 0 (positional reads: the handle stays usable and open).</summary>
    public static int Scan(Microsoft.Win32.SafeHandles.SafeFileHandle h, int maxLineBytes, LineHandler onLine)
    {
        long at = 0;
        return Scan(b =>
        {
            int n = RandomAccess.Read(h, b, at);
            at += n;
            return n;
        }, maxLineBytes, onLine);
    }

    /// <param name="read">Fills the start of the buffer and returns how many bytes it read; 0 at the end.</param>
    /// <returns>The number of lines (a last line without a newline counts; an empty tail after the last newline does not).</returns>
    public static int Scan(Func<byte[], int> read, int maxLineBytes, LineHandler onLine)
    {
        var chunk = new byte[1 << 20];
        var pend = new byte[Math.Min(maxLineBytes, 1 << 16)];
        int pendLen = 0;
        bool tooLong = false;
        long pos = 0, lineStart = 0;
        int number = 0;

        void Append(ReadOnlySpan<byte> b)
        {
            if (tooLong) return;
            if ((long)pendLen + b.Length > maxLineBytes)
            {
                tooLong = true;
                pendLen = 0;
                return;
            }
            if (pendLen + b.Length > pend.Length) Array.Resize(ref pend, (int)Math.Min(maxLineBytes, Math.Max(pend.Length * 2L, pendLen + b.Length)));
            b.CopyTo(pend.AsSpan(pendLen));
            pendLen += b.Length;
        }
        void Emit(ReadOnlyMemory<byte> content, long end, bool terminated)
        {
            number++;
            if (tooLong) content = default;
            else if (content.Length > 0 && content.Span[^1] == (byte)'\r') content = content[..^1];
            onLine(new ScannedLine(number, lineStart, content, end, terminated, tooLong));
            pendLen = 0;
            tooLong = false;
            lineStart = end;
        }

        int n;
        while ((n = read(chunk)) > 0)
        {
            int start = 0;
            while (start < n)
            {
                int i = chunk.AsSpan(start, n - start).IndexOf((byte)'\n');
                if (i < 0)
                {
                    Append(chunk.AsSpan(start, n - start));
                    break;
                }
                int nl = start + i;
                if (pendLen == 0 && !tooLong) Emit(chunk.AsMemory(start, nl - start), pos + nl + 1, true);
                else
                {
                    Append(chunk.AsSpan(start, nl - start));
                    Emit(pend.AsMemory(0, pendLen), pos + nl + 1, true);
                }
                start = nl + 1;
            }
            pos += n;
        }
        if (pendLen > 0 || tooLong) Emit(pend.AsMemory(0, pendLen), pos, false);
        return number;
    }
}
