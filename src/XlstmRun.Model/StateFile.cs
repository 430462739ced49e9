using System.IO.Hashing;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using XlstmRun.Formats;
using XlstmRun.Formats.IO;

namespace XlstmRun.Model;

/// <summary>
/// Recurrent-state files, interchangeable between backends. Layout (little-endian):
/// "XLSTATE\0" magic (8 bytes), u32 version = 1, u32 blocks, u32 heads, u32 dqk, u32 dv, u64 position (tokens consumed),
/// u64 float count, the floats (layout of <see cref="IStateBuffer"/>), u32 CRC-32 of every preceding byte.
/// </summary>
public static class StateFile
{
    private static ReadOnlySpan<byte> Magic => "XLSTATE\0"u8;
    public const uint Version = 1;
    private const int HeaderBytes = 8 + 4 * 5 + 8 + 8;

    /// <summary>Bytes of a state file for model <paramref name="c"/>.</summary>
    public static long FileBytes(ModelConfig c) => HeaderBytes + c.StateFloats * 4 + 4;

    /// <summary>Save to <paramref name="path"/>, replacing it (commands check their outputs first and use the other overload).</summary>
    public static void Save(string path, ModelConfig c, ReadOnlySpan<float> state, long position) =>
        Save(OutputFile.Check(path, "--save-state", force: true, []), c, state.ToArray(), position);

    /// <summary>Save to a checked output: a unique temporary file renamed over the path, or standard output.</summary>
    public static void Save(OutputFile output, ModelConfig c, float[] state, long position)
    {
        if (state.Length != c.StateFloats) throw new ArgumentException("state size does not match the model");
        var header = new byte[HeaderBytes];
        Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), Version);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), (uint)c.Blocks);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(16), (uint)c.Heads);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20), (uint)c.DQk);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(24), (uint)c.DV);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(28), position);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(36), state.Length);
        output.Write(fs =>
        {
            var body = MemoryMarshal.AsBytes(state.AsSpan());
            var checksum = new Crc32();
            checksum.Append(header);
            checksum.Append(body);
            uint crc = checksum.GetCurrentHashAsUInt32();
            fs.Write(header);
            fs.Write(body);
            Span<byte> tail = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(tail, crc);
            fs.Write(tail);
        });
    }

    /// <summary>
    /// Load a state file for model <paramref name="c"/>. Only a regular file of exactly the size the model implies is
    /// read (a FIFO, a device or a file of any other size is refused before reading), then its header and CRC are checked.
    /// </summary>
    public static float[] Load(string path, ModelConfig c, out long position)
    {
        using var h = InputFiles.OpenHandle(path, "state file");
        long len;
        try { len = RandomAccess.GetLength(h); }
        catch (IOException e) { throw new BadInputException($"{path}: cannot read ({e.Message})"); }
        long expected = FileBytes(c);
        if (len < HeaderBytes + 4) throw new BadInputException($"{path}: not an xlstm-run state file");
        var head = new byte[HeaderBytes];
        ReadExactly(h, head, 0, path);
        if (len != expected)
        {
            // Say what the file is when its header can tell; otherwise that the size is wrong.
            Parse(head, c, path, out _, headerOnly: true);
            throw new BadInputException($"{path}: state file is truncated or has the wrong size ({len} bytes, this model's states have {expected})");
        }
        var all = new byte[expected];
        ReadExactly(h, all, 0, path);
        long pos = 0;
        var res = ParseGuard.Run(path, "state file", () => Parse(all, c, path, out pos, headerOnly: false)!);
        position = pos;
        return res;
    }

    /// <summary>A state file held in memory (tests, fuzzing), checked exactly as <see cref="Load"/> checks a file.</summary>
    public static float[] FromBytes(byte[] data, ModelConfig c, string name, out long position)
    {
        if (data.Length != FileBytes(c))
        {
            Parse(data, c, name, out _, headerOnly: true);
            throw new BadInputException($"{name}: state file is truncated or has the wrong size ({data.Length} bytes, this model's states have {FileBytes(c)})");
        }
        long pos = 0;
        var res = ParseGuard.Run(name, "state file", () => Parse(data, c, name, out pos, headerOnly: false)!);
        position = pos;
        return res;
    }

    private static void ReadExactly(Microsoft.Win32.SafeHandles.SafeFileHandle h, byte[] dst, long offset, string path)
    {
        int done = 0;
        while (done < dst.Length)
        {
            int n;
            try { n = RandomAccess.Read(h, dst.AsSpan(done), offset + done); }
            catch (IOException e) { throw new BadInputException($"{path}: cannot read ({e.Message})"); }
            if (n <= 0) throw new BadInputException($"{path}: state file is truncated");
            done += n;
        }
    }

    private static float[]? Parse(byte[] all, ModelConfig c, string path, out long position, bool headerOnly)
    {
        position = 0;
        if (all.Length < HeaderBytes + (headerOnly ? 0 : 4) || !all.AsSpan(0, 8).SequenceEqual(Magic)) throw new BadInputException($"{path}: not an xlstm-run state file");
        uint ver = BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(8));
        if (ver != Version) throw new BadInputException($"{path}: unsupported state file version {ver}");
        uint blocks = BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(12)), heads = BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(16));
        uint dqk = BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(20)), dv = BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(24));
        if (blocks != c.Blocks || heads != c.Heads || dqk != c.DQk || dv != c.DV)
            throw new BadInputException($"{path}: state is for a model with {blocks} blocks, {heads} heads, head dims {dqk}/{dv}; this model has {c.Blocks}, {c.Heads}, {c.DQk}/{c.DV}");
        long pos = BinaryPrimitives.ReadInt64LittleEndian(all.AsSpan(28));
        long count = BinaryPrimitives.ReadInt64LittleEndian(all.AsSpan(36));
        if (count != c.StateFloats) throw new BadInputException($"{path}: state file holds {count} floats, this model's state has {c.StateFloats}");
        if (headerOnly) return null;
        if (all.Length != FileBytes(c)) throw new BadInputException($"{path}: state file is truncated or has the wrong size");
        uint want = BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(all.Length - 4));
        uint got = Crc32.HashToUInt32(all.AsSpan(0, all.Length - 4));
        if (want != got) throw new BadInputException($"{path}: state file checksum mismatch (corrupt file)");
        if (pos < 0) throw new BadInputException($"{path}: state file has a negative position {pos}");
        var res = new float[count];
        MemoryMarshal.Cast<byte, float>(all.AsSpan(HeaderBytes, (int)(count * 4))).CopyTo(res);
        position = pos;
        return res;
    }
}
