using System.Runtime.InteropServices;

namespace XlstmRun.Cli.Terminal;

/// <summary>The few libc calls the terminal code needs (Linux).</summary>
internal static unsafe class Native
{
    public const int EINTR = 4, EAGAIN = 11, EPIPE = 32;
    public const short POLLIN = 1, POLLOUT = 4;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short REvents;
    }

    [DllImport("libc", EntryPoint = "write", SetLastError = true)]
    public static extern nint Write(int fd, byte* buf, nint count);

    [DllImport("libc", EntryPoint = "read", SetLastError = true)]
    public static extern nint Read(int fd, byte* buf, nint count);

    [DllImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static extern int Poll(PollFd* fds, nuint nfds, int timeoutMs);

    [DllImport("libc", EntryPoint = "isatty")]
    public static extern int IsATty(int fd);

    [DllImport("libc", EntryPoint = "tcgetattr", SetLastError = true)]
    public static extern int TcGetAttr(int fd, byte* termios);

    [DllImport("libc", EntryPoint = "tcsetattr", SetLastError = true)]
    public static extern int TcSetAttr(int fd, int optionalActions, byte* termios);

    [DllImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static extern int Ioctl(int fd, nuint request, void* arg);

    /// <summary>Waits until <paramref name="fd"/> can be read (or written), at most <paramref name="timeoutMs"/> (-1 = forever).</summary>
    public static bool WaitFor(int fd, short events, int timeoutMs)
    {
        var p = new PollFd { Fd = fd, Events = events };
        while (true)
        {
            int r = Poll(&p, 1, timeoutMs);
            if (r >= 0) return r > 0;
            if (Marshal.GetLastPInvokeError() != EINTR) return false;
        }
    }
}
