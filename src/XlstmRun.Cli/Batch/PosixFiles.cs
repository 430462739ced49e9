using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Win32.SafeHandles;
using XlstmRun.Formats;

namespace XlstmRun.Cli.Batch;

/// <summary>
/// The few POSIX file facts the batch commands need: what kind of file a path is and which file it is (statx), an
/// advisory lock (flock), and temp files created exclusively under a unique name. Linux only; elsewhere the checks
/// return "unknown" and the callers fall back to what .NET can tell.
/// </summary>
/// <remarks>
/// The shared output-safety helper (issue 15, item 7) is being written separately; once it lands, <see cref="Stat(string)"/>
/// callers in BatchFiles should call it instead.
/// </remarks>
internal static unsafe class PosixFiles
{
    public enum Kind { Missing, Regular, Directory, Fifo, CharDevice, BlockDevice, Socket, Other }

    /// <summary>A file's kind and identity (device and inode numbers).</summary>
    public readonly record struct Info(Kind Kind, ulong Dev, ulong Ino)
    {
        public bool SameFileAs(Info o) => Kind != Kind.Missing && o.Kind != Kind.Missing && Dev == o.Dev && Ino == o.Ino;
    }

    private const int AtFdCwd = -100, AtEmptyPath = 0x1000;
    private const uint StatxBasicStats = 0x7ff;
    private const int ENOENT = 2, ENOTDIR = 20, EWOULDBLOCK = 11;
    private const int LockSh = 1, LockEx = 2, LockNb = 4;

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int StatxNative(int dirfd, byte* path, int flags, uint mask, byte* buf);

    [DllImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static extern int FlockNative(int fd, int operation);

    private static bool _noStatx = !OperatingSystem.IsLinux(), _noFlock = !OperatingSystem.IsLinux();

    /// <summary>Kind and identity of <paramref name="path"/> (symlinks followed); null when it cannot be told.</summary>
    public static Info? Stat(string path)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes) return Statx(AtFdCwd, p, 0);
    }

    /// <summary>Kind and identity of an open file; null when it cannot be told.</summary>
    public static Info? Stat(SafeFileHandle h)
    {
        byte empty = 0;
        bool added = false;
        try
        {
            h.DangerousAddRef(ref added);
            return Statx((int)h.DangerousGetHandle(), &empty, AtEmptyPath);
        }
        finally
        {
            if (added) h.DangerousRelease();
        }
    }

    private static Info? Statx(int dirfd, byte* path, int flags)
    {
        if (_noStatx) return null;
        // struct statx has the same layout on every Linux architecture: stx_mode (u16) at 28, stx_ino (u64) at 32,
        // stx_dev_major and stx_dev_minor (u32) at 136 and 140; 256 bytes in all.
        byte* buf = stackalloc byte[256];
        int rc;
        try
        {
            rc = StatxNative(dirfd, path, flags, StatxBasicStats, buf);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            _noStatx = true;
            return null;
        }
        if (rc != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            return errno is ENOENT or ENOTDIR ? new Info(Kind.Missing, 0, 0) : null;
        }
        int mode = *(ushort*)(buf + 28) & 0xF000;
        var kind = mode switch
        {
            0x8000 => Kind.Regular,
            0x4000 => Kind.Directory,
            0x1000 => Kind.Fifo,
            0x2000 => Kind.CharDevice,
            0x6000 => Kind.BlockDevice,
            0xC000 => Kind.Socket,
            _ => Kind.Other,
        };
        ulong dev = ((ulong)*(uint*)(buf + 136) << 32) | *(uint*)(buf + 140);
        return new Info(kind, dev, *(ulong*)(buf + 32));
    }

    public static string Describe(Kind k) => k switch
    {
        Kind.Fifo => "a FIFO (named pipe)",
        Kind.CharDevice => "a character device",
        Kind.BlockDevice => "a block device",
        Kind.Socket => "a socket",
        Kind.Directory => "a directory",
        _ => "not a regular file",
    };

    public enum LockResult { Locked, HeldElsewhere, Unsupported }

    /// <summary>Takes an advisory lock (flock, non-blocking) on an open file, exclusive or shared.</summary>
    public static LockResult TryLock(SafeFileHandle h, bool exclusive)
    {
        if (_noFlock) return LockResult.Unsupported;
        bool added = false;
        try
        {
            h.DangerousAddRef(ref added);
            int rc = FlockNative((int)h.DangerousGetHandle(), (exclusive ? LockEx : LockSh) | LockNb);
            if (rc == 0) return LockResult.Locked;
            return Marshal.GetLastPInvokeError() == EWOULDBLOCK ? LockResult.HeldElsewhere : LockResult.Unsupported;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            _noFlock = true;
            return LockResult.Unsupported;
        }
        finally
        {
            if (added) h.DangerousRelease();
        }
    }

    /// <summary>
    /// .NET takes the same kind of lock itself when a file is opened (FileShare.None: exclusive; otherwise shared for
    /// readers); a conflict shows up as an IOException carrying EWOULDBLOCK.
    /// </summary>
    public static bool IsLockConflict(IOException e) => e.HResult == EWOULDBLOCK;

    /// <summary>
    /// Creates <c>PATH.tmp.PID.RANDOM</c> beside <paramref name="path"/>, exclusively (never an existing file), locked, for
    /// writing. The caller renames it over <paramref name="path"/> when complete, or deletes it.
    /// </summary>
    public static (string Path, SafeFileHandle Handle) CreateTemp(string path)
    {
        for (int attempt = 0; ; attempt++)
        {
            string tmp = $"{path}.tmp.{Environment.ProcessId}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
            try
            {
                return (tmp, File.OpenHandle(tmp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (attempt < 8 && File.Exists(tmp))
            {
                // a name taken by someone else: draw another
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new BadInputException($"{path}: cannot create a temporary file beside it ({e.Message})");
            }
        }
    }

    /// <summary>Ends this process with SIGKILL (the crash-safety test hook).</summary>
    public static void KillSelf()
    {
        Console.Error.Flush();
        Process.GetCurrentProcess().Kill();
        Thread.Sleep(Timeout.Infinite);
    }
}
