using System.Text;

namespace XlstmRun.Formats;

/// <summary>NumPy .npy (version 1.0) for little-endian float32 arrays.</summary>
public static class Npy
{
    /// <summary>Write a C-order float32 array of the given shape to a stream.</summary>
    public static void Write(Stream s, ReadOnlySpan<float> data, params long[] shape)
    {
        long n = 1;
        foreach (var d in shape) n *= d;
        if (n != data.Length) throw new ArgumentException($"shape holds {n} elements, data has {data.Length}");
        WriteHeader(s, shape);
        s.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data));
    }

    /// <summary>Write only the header of a float32 array of the given shape; the caller then writes the data (C order, little-endian).</summary>
    public static void WriteHeader(Stream s, params long[] shape)
    {
        string dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        string header = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}";
        int total = 10 + header.Length + 1;
        int pad = (64 - total % 64) % 64;
        header = header + new string(' ', pad) + "\n";
        s.WriteByte(0x93);
        s.Write("NUMPY"u8);
        s.WriteByte(1); s.WriteByte(0);
        s.Write(BitConverter.GetBytes((ushort)header.Length));
        s.Write(Encoding.ASCII.GetBytes(header));
    }

    /// <summary>Write to a file atomically (unique temporary file, then rename), replacing PATH if it exists.</summary>
    public static void WriteFile(string path, ReadOnlySpan<float> data, params long[] shape) =>
        WriteFile(IO.OutputFile.Check(path, "output", force: true, [], allowStdout: false), data.ToArray(), shape);

    /// <summary>Write to a checked output (a file written atomically, or standard output).</summary>
    public static void WriteFile(IO.OutputFile output, float[] data, params long[] shape) =>
        output.Write(s => Write(s, data, shape));

    /// <summary>Read a float32 .npy file; returns data and shape.</summary>
    public static (float[] Data, long[] Shape) Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY") throw new BadInputException($"{path}: not a .npy file");
        int hlen = bytes[6] == 1 ? BitConverter.ToUInt16(bytes, 8) : (int)BitConverter.ToUInt32(bytes, 8);
        int hstart = bytes[6] == 1 ? 10 : 12;
        string header = Encoding.ASCII.GetString(bytes, hstart, hlen);
        if (!header.Contains("'<f4'")) throw new BadInputException($"{path}: only float32 .npy is supported");
        int a = header.IndexOf('(') + 1, b = header.IndexOf(')');
        var shape = header[a..b].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(long.Parse).ToArray();
        int off = hstart + hlen;
        var data = new float[(bytes.Length - off) / 4];
        Buffer.BlockCopy(bytes, off, data, 0, data.Length * 4);
        return (data, shape);
    }
}
