using System.Buffers.Binary;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace XlstmRun.Formats.Safetensors;

public enum SafeDType { F32, F16, BF16, I64 }

/// <summary>One tensor of a safetensors file; rows are read on demand with positional reads (no mapping, bounded memory).</summary>
public sealed class SafeTensor
{
    internal SafeTensor(SafetensorsFile file, string name, SafeDType dtype, long[] shape, long start, long end)
    {
        File = file; Name = name; DType = dtype; Shape = shape; Start = start; End = end;
    }

    public SafetensorsFile File { get; }
    public string Name { get; }
    public SafeDType DType { get; }
    /// <summary>PyTorch order.</summary>
    public long[] Shape { get; }
    public long Start { get; }
    public long End { get; }

    public int ElementSize => DType switch { SafeDType.F32 => 4, SafeDType.I64 => 8, _ => 2 };
    public long Cols => Shape.Length == 0 ? 1 : Shape[^1];
    public long Rows => Shape.Length <= 1 ? 1 : Shape[..^1].Aggregate(1L, (a, b) => a * b);
    public string ShapeString => "[" + string.Join(", ", Shape) + "]";

    /// <summary>Read <paramref name="count"/> rows starting at <paramref name="row"/> as float32 into dst (count·Cols floats).</summary>
    public void ReadRows(long row, int count, Span<float> dst, byte[] scratch)
    {
        if (DType == SafeDType.I64) throw new BadInputException($"{File.Path}: tensor '{Name}' is int64, not a float tensor");
        long bytes = (long)count * Cols * ElementSize;
        if (scratch.Length < bytes) throw new ArgumentException("scratch too small");
        var span = scratch.AsSpan(0, (int)bytes);
        File.ReadAt(Start + row * Cols * ElementSize, span);
        int n = (int)(count * Cols);
        switch (DType)
        {
            case SafeDType.F32:
                for (int i = 0; i < n; i++) dst[i] = BinaryPrimitives.ReadSingleLittleEndian(span[(4 * i)..]);
                break;
            case SafeDType.F16:
                for (int i = 0; i < n; i++) dst[i] = Quant.Numerics.F16ToF32(BinaryPrimitives.ReadUInt16LittleEndian(span[(2 * i)..]));
                break;
            case SafeDType.BF16:
                for (int i = 0; i < n; i++) dst[i] = Quant.Numerics.Bf16ToF32(BinaryPrimitives.ReadUInt16LittleEndian(span[(2 * i)..]));
                break;
        }
    }

    /// <summary>The whole tensor as int64 (I64 tensors only).</summary>
    public long[] ReadInt64()
    {
        if (DType != SafeDType.I64) throw new BadInputException($"{File.Path}: tensor '{Name}' is not int64");
        var bytes = new byte[End - Start];
        File.ReadAt(Start, bytes);
        var res = new long[bytes.Length / 8];
        for (int i = 0; i < res.Length; i++) res[i] = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(8 * i));
        return res;
    }

    /// <summary>The whole tensor as float32 (small tensors only).</summary>
    public float[] ReadAll()
    {
        var res = new float[Rows * Cols];
        ReadRows(0, (int)Rows, res, new byte[res.Length * ElementSize]);
        return res;
    }
}

/// <summary>A safetensors file: 8-byte header length, JSON header, raw data. Header and offsets are validated.</summary>
public sealed class SafetensorsFile : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly Dictionary<string, SafeTensor> _tensors = new(StringComparer.Ordinal);

    public string Path { get; }
    public long Length { get; }
    public IReadOnlyDictionary<string, SafeTensor> Tensors => _tensors;

    public SafetensorsFile(string path)
    {
        Path = path;
        if (!System.IO.File.Exists(path)) throw new BadInputException($"{path}: file not found");
        _handle = System.IO.File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        Length = RandomAccess.GetLength(_handle);
        try
        {
            if (Length < 8) throw new BadInputException($"{path}: not a safetensors file (too short)");
            Span<byte> lenBuf = stackalloc byte[8];
            ReadAt(0, lenBuf);
            ulong hlen = BinaryPrimitives.ReadUInt64LittleEndian(lenBuf);
            if (hlen > (ulong)(Length - 8) || hlen > 100_000_000) throw new BadInputException($"{path}: not a safetensors file (header length {hlen})");
            var header = new byte[hlen];
            ReadAt(8, header);
            long dataStart = 8 + (long)hlen;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(header); }
            catch (JsonException e) { throw new BadInputException($"{path}: invalid safetensors header JSON ({e.Message})"); }
            using (doc)
            {
                foreach (var p in doc.RootElement.EnumerateObject())
                {
                    if (p.Name == "__metadata__") continue;
                    string dt = p.Value.GetProperty("dtype").GetString() ?? "";
                    SafeDType dtype = dt switch
                    {
                        "F32" => SafeDType.F32,
                        "F16" => SafeDType.F16,
                        "BF16" => SafeDType.BF16,
                        "I64" => SafeDType.I64,
                        _ => throw new BadInputException($"{path}: tensor '{p.Name}' has unsupported dtype {dt} (F32, F16 and BF16 are supported)"),
                    };
                    var shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                    var offs = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                    long n = shape.Aggregate(1L, (a, b) => a * b);
                    long es = dtype switch { SafeDType.F32 => 4, SafeDType.I64 => 8, _ => 2 };
                    if (offs.Length != 2 || offs[1] - offs[0] != n * es || dataStart + offs[1] > Length || offs[0] < 0)
                        throw new BadInputException($"{path}: tensor '{p.Name}' has data offsets that do not match its shape or the file size");
                    _tensors[p.Name] = new SafeTensor(this, p.Name, dtype, shape, dataStart + offs[0], dataStart + offs[1]);
                }
            }
        }
        catch
        {
            _handle.Dispose();
            throw;
        }
    }

    internal void ReadAt(long offset, Span<byte> dst)
    {
        int done = 0;
        while (done < dst.Length)
        {
            int n = RandomAccess.Read(_handle, dst[done..], offset + done);
            if (n <= 0) throw new BadInputException($"{Path}: unexpected end of file");
            done += n;
        }
    }

    public void Dispose() => _handle.Dispose();
}
