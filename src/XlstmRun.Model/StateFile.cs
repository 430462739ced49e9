using System.Buffers.Binary;
using System.Runtime.InteropServices;
using XlstmRun.Formats;

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

    public static void Save(string path, ModelConfig c, ReadOnlySpan<float> state, long position)
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
        var body = MemoryMarshal.AsBytes(state);
        uint crc = Crc32.Update(Crc32.Update(0, header), body);
        string tmp = path + ".tmp";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write))
            {
                fs.Write(header);
                fs.Write(body);
                Span<byte> tail = stackalloc byte[4];
                BinaryPrimitives.WriteUInt32LittleEndian(tail, crc);
                fs.Write(tail);
            }
            File.Move(tmp, path, true);
        }
        catch
        {
            try { File.Delete(tmp); } catch { }
            throw;
        }
    }

    public static float[] Load(string path, ModelConfig c, out long position)
    {
        if (!File.Exists(path)) throw new BadInputException($"{path}: state file not found");
        byte[] all;
        try { all = File.ReadAllBytes(path); }
        catch (Exception e) { throw new BadInputException($"{path}: cannot read ({e.Message})"); }
        if (all.Length < HeaderBytes + 4 || !all.AsSpan(0, 8).SequenceEqual(Magic)) throw new BadInputException($"{path}: not an xlstm-run state file");
        uint ver = BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(8));
        if (ver != Version) throw new BadInputException($"{path}: unsupported state file version {ver}");
        uint blocks = BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(12)), heads = BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(16));
        uint dqk = BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(20)), dv = BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(24));
        if (blocks != c.Blocks || heads != c.Heads || dqk != c.DQk || dv != c.DV)
            throw new BadInputException($"{path}: state is for a model with {blocks} blocks, {heads} heads, head dims {dqk}/{dv}; this model has {c.Blocks}, {c.Heads}, {c.DQk}/{c.DV}");
        position = BinaryPrimitives.ReadInt64LittleEndian(all.AsSpan(28));
        long count = BinaryPrimitives.ReadInt64LittleEndian(all.AsSpan(36));
        if (count != c.StateFloats || all.Length != HeaderBytes + count * 4 + 4) throw new BadInputException($"{path}: state file is truncated or has the wrong size");
        uint want = BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(all.Length - 4));
        uint got = Crc32.Update(0, all.AsSpan(0, all.Length - 4));
        if (want != got) throw new BadInputException($"{path}: state file checksum mismatch (corrupt file)");
        var res = new float[count];
        MemoryMarshal.Cast<byte, float>(all.AsSpan(HeaderBytes, (int)(count * 4))).CopyTo(res);
        return res;
    }
}

/// <summary>CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320).</summary>
public static class Crc32
{
    private static readonly uint[] Table = Build();

    private static uint[] Build()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }

    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        crc = ~crc;
        foreach (byte b in data) crc = Table[(crc ^ b) & 0xff] ^ (crc >> 8);
        return ~crc;
    }
}
