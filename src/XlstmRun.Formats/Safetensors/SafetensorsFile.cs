using System.Buffers.Binary;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using XlstmRun.Formats.IO;

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
    /// <summary>Rows (product of all but the last dimension); the header check bounds it by the file size.</summary>
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
        _handle = InputFiles.OpenHandle(path, "safetensors file");
        try
        {
            Length = RandomAccess.GetLength(_handle);
            ParseGuard.Run(path, "safetensors file", () => { ParseHeader(path); return 0; });
        }
        catch
        {
            _handle.Dispose();
            throw;
        }
    }

    private void ParseHeader(string path)
    {
        if (Length < 8) throw new BadInputException($"{path}: not a safetensors file (too short)");
        Span<byte> lenBuf = stackalloc byte[8];
        ReadAt(0, lenBuf);
        ulong hlen = BinaryPrimitives.ReadUInt64LittleEndian(lenBuf);
        if (hlen > (ulong)(Length - 8)) throw new BadInputException($"{path}: not a safetensors file (header length {hlen}, file has {Length} bytes)");
        long maxHeader = InputLimits.MaxBytes(InputKind.SafetensorsHeader);
        if (hlen > (ulong)maxHeader) throw new BadInputException($"{path}: safetensors header of {hlen} bytes is larger than {InputLimits.Describe(maxHeader)}, the most this program reads");
        var header = new byte[hlen];
        ReadAt(8, header);
        long dataStart = 8 + (long)hlen;
        if (!System.Text.Unicode.Utf8.IsValid(header)) throw new BadInputException($"{path}: safetensors header is not UTF-8 text");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 16 }); }
        catch (JsonException e) { throw new BadInputException($"{path}: invalid safetensors header JSON ({FirstLine(e.Message)})"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new BadInputException($"{path}: safetensors header is not a JSON object");
            long count = 0;
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                string name = JsonStrings.Name(p, path);
                if (name == "__metadata__") continue;
                if (++count > InputLimits.MaxTensors) throw new BadInputException($"{path}: more than {InputLimits.MaxTensors} tensors");
                var t = ParseEntry(name, p.Value, path, dataStart);
                if (!_tensors.TryAdd(name, t)) throw new BadInputException($"{path}: tensor '{name}' appears twice in the header");
            }
        }
    }

    private static string FirstLine(string s) => s.Split('\n')[0];

    /// <summary>One header entry: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, checked against the file.</summary>
    private SafeTensor ParseEntry(string name, JsonElement e, string path, long dataStart)
    {
        BadInputException Bad(string what) => new($"{path}: tensor '{name}' {what}");
        if (e.ValueKind != JsonValueKind.Object) throw Bad("has a header entry that is not an object");
        if (!e.TryGetProperty("dtype", out var dtEl) || dtEl.ValueKind != JsonValueKind.String) throw Bad("has no dtype string");
        string dt = JsonStrings.Value(dtEl, path);
        SafeDType dtype = dt switch
        {
            "F32" => SafeDType.F32,
            "F16" => SafeDType.F16,
            "BF16" => SafeDType.BF16,
            "I64" => SafeDType.I64,
            _ => throw Bad($"has unsupported dtype {dt} (F32, F16 and BF16 are supported)"),
        };
        if (!e.TryGetProperty("shape", out var shEl) || shEl.ValueKind != JsonValueKind.Array) throw Bad("has no shape array");
        if (shEl.GetArrayLength() > 8) throw Bad($"has {shEl.GetArrayLength()} dimensions (at most 8)");
        var shape = new long[shEl.GetArrayLength()];
        long es = dtype switch { SafeDType.F32 => 4, SafeDType.I64 => 8, _ => 2 };
        long maxElems = (Length - dataStart) / es;
        long n = 1;
        int i = 0;
        foreach (var d in shEl.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0 || v > int.MaxValue) throw Bad("has a shape that is not a list of sizes");
            shape[i++] = v;
            n = v == 0 || n == 0 ? 0 : n > maxElems / v ? maxElems + 1 : n * v;
        }
        if (n > maxElems) throw Bad($"of shape [{string.Join(", ", shape)}] is larger than the file");
        if (!e.TryGetProperty("data_offsets", out var offEl) || offEl.ValueKind != JsonValueKind.Array || offEl.GetArrayLength() != 2
            || offEl[0].ValueKind != JsonValueKind.Number || offEl[1].ValueKind != JsonValueKind.Number
            || !offEl[0].TryGetInt64(out long begin) || !offEl[1].TryGetInt64(out long end))
            throw Bad("has no data_offsets [begin, end]");
        if (begin < 0 || end < begin || end > Length - dataStart || end - begin != n * es)
            throw Bad("has data offsets that do not match its shape or the file size");
        return new SafeTensor(this, name, dtype, shape, dataStart + begin, dataStart + end);
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
