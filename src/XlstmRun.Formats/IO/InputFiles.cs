using System.Text;
using Microsoft.Win32.SafeHandles;

namespace XlstmRun.Formats.IO;

/// <summary>
/// Reading inputs safely: regular files only (a FIFO, device or directory is refused with a one-line message and never
/// blocks), every read bounded by the limit of its kind (<see cref="InputLimits"/>), errors as <see cref="BadInputException"/>.
/// </summary>
public static class InputFiles
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>A handle on a regular file, opened without blocking (see <see cref="UnixFile.OpenRegularForRead"/>).</summary>
    public static SafeFileHandle OpenHandle(string path, string what) => UnixFile.OpenRegularForRead(path, what);

    /// <summary>A read stream on a regular file (for line-by-line readers such as batch JSONL); dispose it.</summary>
    public static FileStream OpenStream(string path, string what, int bufferSize = 1 << 16)
    {
        var h = OpenHandle(path, what);
        try { return new FileStream(h, FileAccess.Read, bufferSize); }
        catch
        {
            h.Dispose();
            throw;
        }
    }

    /// <summary>The whole file, refused if it is over the limit of <paramref name="kind"/>.</summary>
    public static byte[] ReadAllBytes(string path, InputKind kind, string what)
    {
        using var h = OpenHandle(path, what);
        long limit = InputLimits.MaxBytes(kind);
        long len;
        try { len = RandomAccess.GetLength(h); }
        catch (IOException e) { throw new BadInputException($"{path}: cannot read ({e.Message})"); }
        if (len > limit) throw TooBig(path, what, limit);
        using var fs = new FileStream(h, FileAccess.Read, 1);
        return ReadBounded(fs, limit, path, what, (int)len);
    }

    /// <summary>The whole file as UTF-8 text (a UTF-8 byte-order mark is dropped), refused if over the limit or not UTF-8.</summary>
    public static string ReadAllText(string path, InputKind kind, string what) => DecodeUtf8(ReadAllBytes(path, kind, what), path);

    /// <summary>At most the limit of <paramref name="kind"/> from a stream (standard input), as UTF-8 text.</summary>
    public static string ReadAllText(Stream s, InputKind kind, string name, string what) =>
        DecodeUtf8(ReadBounded(s, InputLimits.MaxBytes(kind), name, what, 0), name);

    public static string DecodeUtf8(ReadOnlySpan<byte> bytes, string name)
    {
        if (bytes.StartsWith("\xEF\xBB\xBF"u8)) bytes = bytes[3..];
        try { return StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { throw new BadInputException($"{name}: not UTF-8 text"); }
    }

    private static byte[] ReadBounded(Stream s, long limit, string name, string what, int sizeHint)
    {
        var ms = new MemoryStream(Math.Max(0, Math.Min(sizeHint, (int)Math.Min(limit, int.MaxValue))));
        var buf = new byte[1 << 16];
        try
        {
            while (true)
            {
                int n = s.Read(buf, 0, buf.Length);
                if (n <= 0) break;
                if (ms.Length + n > limit) throw TooBig(name, what, limit);
                ms.Write(buf, 0, n);
            }
        }
        catch (IOException e) { throw new BadInputException($"{name}: cannot read ({e.Message})"); }
        return ms.Length == ms.Capacity ? ms.GetBuffer() : ms.ToArray();
    }

    private static BadInputException TooBig(string name, string what, long limit) =>
        new($"{name}: the {what} is larger than {InputLimits.Describe(limit)}, the most this program reads for one");
}
