using System.Text;

namespace XlstmRun.Cli.Terminal;

/// <summary>Standard output was closed by the reader (EPIPE: `xlstm-run ... | head`). Ends the command quietly.</summary>
internal sealed class StdoutClosedException() : IOException("standard output was closed");

/// <summary>
/// stdout and stderr as plain file descriptors. .NET's Console streams are not used for output: the first write
/// through them (or a Console.CancelKeyPress handler) initializes the terminal and writes ESC[?1h ESC= (keypad
/// mode) to it, and they swallow EPIPE, so `| head` never stopped a generation. Here a closed stdout raises
/// <see cref="StdoutClosedException"/>, and anything written to stderr starts on its own line when stderr and stdout
/// go to the same place (a terminal, or `2>&amp;1`) and stdout's text did not end with a newline.
/// </summary>
internal static class StdStreams
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);
    private static StdoutStream? _out;
    private static StderrStream? _err;

    /// <summary>Replaces Console.Out and Console.Error (auto-flushed UTF-8 writers on fd 1 and fd 2).</summary>
    public static void Install()
    {
        _out = new StdoutStream();
        _err = new StderrStream(_out);
        Console.SetOut(new StreamWriter(_out, Utf8, 1 << 14, leaveOpen: true) { AutoFlush = true });
        Console.SetError(new StreamWriter(_err, Utf8, 1 << 12, leaveOpen: true) { AutoFlush = true });
    }

    /// <summary>The raw stdout stream (installs the writers on first use, e.g. in tests of the library code).</summary>
    public static Stream Stdout
    {
        get
        {
            if (_out == null) Install();
            return _out!;
        }
    }

    /// <summary>stdin as a plain read(2) stream (not .NET's console stream, which would set up the terminal).</summary>
    public static Stream Stdin { get; } = new StdinStream();

    /// <summary>Whether the last byte written to stdout was a newline (true before anything was written).</summary>
    public static bool StdoutAtLineStart => _out?.AtLineStart ?? true;

    /// <summary>Tells the stderr side that stdout is at the start of a line (e.g. the terminal line was redrawn).</summary>
    public static void MarkStdoutLineStart()
    {
        if (_out != null) _out.AtLineStart = true;
    }

    /// <summary>Whether two descriptors are the same file, pipe or terminal (Linux: /proc/self/fd links).</summary>
    public static bool SameTarget(int fdA, int fdB)
    {
        try
        {
            string? a = new FileInfo($"/proc/self/fd/{fdA}").LinkTarget, b = new FileInfo($"/proc/self/fd/{fdB}").LinkTarget;
            return a != null && a == b;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private sealed class StdoutStream : FdStream
    {
        public bool AtLineStart = true;

        public StdoutStream() : base(1) { }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (buffer.IsEmpty) return;
            try
            {
                base.Write(buffer);
            }
            catch (IOException e) when (e.HResult == 32 /* EPIPE */)
            {
                throw new StdoutClosedException();
            }
            AtLineStart = buffer[^1] == (byte)'\n';
        }
    }

    private sealed class StderrStream(StdoutStream stdout) : FdStream(2)
    {
        private readonly Lazy<bool> _shared = new(() => SameTarget(1, 2));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (buffer.IsEmpty) return;
            try
            {
                if (!stdout.AtLineStart && _shared.Value)
                {
                    base.Write("\n"u8);
                    stdout.AtLineStart = true;
                }
                base.Write(buffer);
            }
            catch (IOException)
            {
                // stderr closed or full: nothing sensible to report it on
            }
        }
    }

    private sealed unsafe class StdinStream : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (buffer.IsEmpty) return 0;
            fixed (byte* p = buffer)
            {
                while (true)
                {
                    nint n = Native.Read(0, p, buffer.Length);
                    if (n >= 0) return (int)n;
                    int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                    if (errno == Native.EINTR) continue;
                    if (errno == Native.EAGAIN)
                    {
                        Native.WaitFor(0, Native.POLLIN, -1);
                        continue;
                    }
                    throw new IOException($"cannot read standard input (errno {errno})", errno);
                }
            }
        }
    }

    /// <summary>
    /// An unbuffered write-only stream on a file descriptor that it does not own, written with write(2): unlike a
    /// FileStream it keeps no file position of its own, so `> f 2>&amp;1` and `>> f` behave as with any Unix tool.
    /// </summary>
    private abstract unsafe class FdStream(int fd) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            fixed (byte* p = buffer)
            {
                long done = 0;
                while (done < buffer.Length)
                {
                    nint n = Native.Write(fd, p + done, (nint)(buffer.Length - done));
                    if (n >= 0)
                    {
                        done += n;
                        continue;
                    }
                    int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                    if (errno == Native.EINTR) continue;
                    if (errno == Native.EAGAIN)
                    {
                        Native.WaitFor(fd, Native.POLLOUT, -1); // a non-blocking descriptor that is full
                        continue;
                    }
                    throw new IOException(errno == Native.EPIPE ? "Broken pipe" : $"write failed (errno {errno})", errno);
                }
            }
        }
    }
}
