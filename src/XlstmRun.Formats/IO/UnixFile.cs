using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace XlstmRun.Formats.IO;

/// <summary>What a path names, as stat(2) says (links followed).</summary>
public enum FileType { Missing, Regular, Directory, Fifo, CharDevice, BlockDevice, Socket, Other }

/// <summary>Type, identity (device + inode) and size of a file, from statx(2).</summary>
public readonly record struct FileFacts(FileType Type, ulong Device, ulong Inode, long Size)
{
    public bool Exists => Type != FileType.Missing;

    /// <summary>The same file (hard links and symlinks included), when both exist.</summary>
    public bool SameFileAs(FileFacts o) => Exists && o.Exists && Device == o.Device && Inode == o.Inode;

    /// <summary>"a FIFO (named pipe)", "a character device", … for messages.</summary>
    public string Describe() => Type switch
    {
        FileType.Missing => "missing",
        FileType.Regular => "a regular file",
        FileType.Directory => "a directory",
        FileType.Fifo => "a FIFO (named pipe)",
        FileType.CharDevice => "a character device",
        FileType.BlockDevice => "a block device",
        FileType.Socket => "a socket",
        _ => "not a regular file",
    };
}

/// <summary>
/// The few system calls .NET does not expose: file type and identity (statx), and opening without blocking on a FIFO
/// (open with O_NONBLOCK, then checking the descriptor itself, so a file swapped in between cannot fool the check).
/// Linux only; elsewhere the checks fall back to what .NET can tell (directory or not).
/// </summary>
public static unsafe class UnixFile
{
    private const int AtFdCwd = -100, AtEmptyPath = 0x1000;
    private const uint StatxBasicStats = 0x7ff;
    private const int ORdOnly = 0, ONoCtty = 0x100, ONonBlock = 0x800, OCloExec = 0x80000;

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int SysStatx(int dirfd, byte* path, int flags, uint mask, byte* buf);

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int SysOpen(byte* path, int flags, int mode);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int SysClose(int fd);

    private static bool _noStatx;

    private static byte[] CPath(string path)
    {
        var b = new byte[Encoding.UTF8.GetByteCount(path) + 1];
        Encoding.UTF8.GetBytes(path, b);
        return b;
    }

    /// <summary>Facts about <paramref name="path"/> (links followed); Missing when it does not exist or cannot be reached.</summary>
    public static FileFacts Stat(string path)
    {
        if (!OperatingSystem.IsLinux() || _noStatx) return Fallback(path);
        var p = CPath(path);
        fixed (byte* pp = p) return Statx(AtFdCwd, pp, 0, path);
    }

    private static FileFacts Statx(int dirfd, byte* path, int flags, string name)
    {
        byte* buf = stackalloc byte[256];
        int rc;
        try { rc = SysStatx(dirfd, path, flags, StatxBasicStats, buf); }
        catch (EntryPointNotFoundException) { _noStatx = true; return Fallback(name); }
        if (rc != 0)
        {
            int err = Marshal.GetLastPInvokeError();
            if (err == 38 /* ENOSYS */) { _noStatx = true; return Fallback(name); }
            return new FileFacts(FileType.Missing, 0, 0, 0);
        }
        ushort mode = *(ushort*)(buf + 28);
        ulong ino = *(ulong*)(buf + 32);
        long size = (long)*(ulong*)(buf + 40);
        ulong dev = ((ulong)*(uint*)(buf + 136) << 32) | *(uint*)(buf + 140);
        var type = (mode & 0xF000) switch
        {
            0x8000 => FileType.Regular,
            0x4000 => FileType.Directory,
            0x1000 => FileType.Fifo,
            0x2000 => FileType.CharDevice,
            0x6000 => FileType.BlockDevice,
            0xC000 => FileType.Socket,
            _ => FileType.Other,
        };
        return new FileFacts(type, dev, ino, size);
    }

    private static FileFacts Fallback(string path)
    {
        if (Directory.Exists(path)) return new FileFacts(FileType.Directory, 0, 0, 0);
        if (!File.Exists(path)) return new FileFacts(FileType.Missing, 0, 0, 0);
        long len = 0;
        try { len = new FileInfo(path).Length; } catch { }
        // Without statx there is no identity: use a hash of the full path so that at least the same name compares equal.
        return new FileFacts(FileType.Regular, 0, (ulong)Path.GetFullPath(path).GetHashCode(), len);
    }

    /// <summary>
    /// Opens a regular file for reading without ever blocking (a FIFO would block open(2) until a writer comes).
    /// Throws <see cref="BadInputException"/> naming the path when it is missing, not a regular file, or unreadable.
    /// </summary>
    public static SafeFileHandle OpenRegularForRead(string path, string what)
    {
        var before = Stat(path);
        CheckRegular(path, what, before);
        if (!OperatingSystem.IsLinux() || _noStatx)
        {
            try { return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new BadInputException($"{path}: cannot read ({e.Message})");
            }
        }
        var p = CPath(path);
        int fd;
        fixed (byte* pp = p) fd = SysOpen(pp, ORdOnly | ONonBlock | ONoCtty | OCloExec, 0);
        if (fd < 0)
        {
            int err = Marshal.GetLastPInvokeError();
            throw new BadInputException($"{path}: cannot read ({Marshal.GetPInvokeErrorMessage(err)})");
        }
        FileFacts after;
        byte empty = 0;
        after = Statx(fd, &empty, AtEmptyPath, path);
        if (after.Type != FileType.Regular)
        {
            SysClose(fd);
            CheckRegular(path, what, after.Exists ? after : before with { Type = FileType.Other });
        }
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>One-line refusal of anything that is not a regular file where a file is expected.</summary>
    public static void CheckRegular(string path, string what, FileFacts f)
    {
        switch (f.Type)
        {
            case FileType.Regular: return;
            case FileType.Missing: throw new BadInputException($"{path}: {what} not found");
            case FileType.Directory: throw new BadInputException($"{path}: is a directory, not a {what}");
            default:
                throw new BadInputException($"{path}: is {f.Describe()}, not a regular file; the {what} must be a regular file" +
                    (f.Type == FileType.Fifo ? " (pipe text through stdin instead, where the option accepts '-')" : ""));
        }
    }
}
