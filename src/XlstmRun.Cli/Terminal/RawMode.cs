namespace XlstmRun.Cli.Terminal;

/// <summary>
/// The terminal on stdin without line buffering, echo or signal keys (Linux termios), for the line editor; restored
/// by <see cref="Dispose"/>, and also when the process exits. Output processing stays on (\n still moves to the start
/// of the next line).
/// </summary>
internal sealed unsafe class RawMode : IDisposable
{
    // struct termios on Linux (glibc): c_iflag, c_oflag, c_cflag, c_lflag (4 bytes each), c_line, c_cc[32], speeds.
    private const int Size = 64, IFlag = 0, LFlag = 12, Cc = 17;
    private const uint ISIG = 0x1, ICANON = 0x2, ECHO = 0x8, IEXTEN = 0x8000, ICRNL = 0x100, IXON = 0x400;
    private const int VTIME = 5, VMIN = 6, TCSADRAIN = 1;

    private readonly byte[] _saved = new byte[Size];
    private bool _active;
    private static RawMode? _current;

    static RawMode()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => _current?.Dispose();
    }

    private RawMode() { }

    /// <summary>Raw mode on stdin, or null when stdin is not a terminal (or not Linux).</summary>
    public static RawMode? Enter()
    {
        if (!OperatingSystem.IsLinux() || Native.IsATty(0) != 1) return null;
        var m = new RawMode();
        var t = new byte[Size];
        fixed (byte* saved = m._saved, p = t)
        {
            if (Native.TcGetAttr(0, saved) != 0) return null;
            Buffer.MemoryCopy(saved, p, Size, Size);
            *(uint*)(p + IFlag) &= ~(ICRNL | IXON);
            *(uint*)(p + LFlag) &= ~(ISIG | ICANON | ECHO | IEXTEN);
            p[Cc + VMIN] = 1;
            p[Cc + VTIME] = 0;
            if (Native.TcSetAttr(0, TCSADRAIN, p) != 0) return null;
        }
        m._active = true;
        _current = m;
        return m;
    }

    public void Dispose()
    {
        if (!_active) return;
        _active = false;
        fixed (byte* saved = _saved) Native.TcSetAttr(0, TCSADRAIN, saved);
        if (_current == this) _current = null;
    }

    /// <summary>Columns of the terminal on stdout (80 when unknown).</summary>
    public static int Columns
    {
        get
        {
            ushort* ws = stackalloc ushort[4]; // struct winsize: rows, cols, xpixel, ypixel
            if (OperatingSystem.IsLinux() && Native.Ioctl(1, 0x5413 /* TIOCGWINSZ */, ws) == 0 && ws[1] > 0) return ws[1];
            return int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out int c) && c > 0 ? c : 80;
        }
    }
}
