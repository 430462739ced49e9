using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using XlstmRun.Formats.IO;

namespace XlstmRun.Formats.Gguf;

/// <summary>One tensor of a GGUF file, viewed in place in the mapped file (zero copy).</summary>
public readonly unsafe struct TensorView
{
    public TensorView(string name, GgmlType type, long[] ne, byte* data, long bytes)
    {
        Name = name; Type = type; Ne = ne; Data = data; Bytes = bytes;
    }

    public string Name { get; }
    public GgmlType Type { get; }
    /// <summary>Dimensions in ggml order: Ne[0] is the row length (fastest varying).</summary>
    public long[] Ne { get; }
    public byte* Data { get; }
    public long Bytes { get; }

    public long Cols => Ne[0];
    public long Rows => Ne.Length > 1 ? Bytes / RowBytes : 1;
    public long RowBytes => GgmlTypes.RowBytes(Type, Ne[0]);
    public long Elements { get { long n = 1; foreach (var d in Ne) n *= d; return n; } }

    public ReadOnlySpan<byte> Row(long r) => new(Data + r * RowBytes, checked((int)RowBytes));

    /// <summary>Dequantize row <paramref name="r"/> into <paramref name="dst"/> (length Cols).</summary>
    public void DecodeRow(long r, Span<float> dst) => Quant.Quantizer.DecodeRow(Type, Row(r), dst);

    /// <summary>Whole tensor as float32 (for small tensors: norms, biases, fixtures).</summary>
    public float[] ToFloatArray()
    {
        var res = new float[Elements];
        long rows = Elements / Cols;
        for (long r = 0; r < rows; r++) DecodeRow(r, res.AsSpan((int)(r * Cols), (int)Cols));
        return res;
    }

    public string ShapeString => "[" + string.Join(", ", Ne.Reverse()) + "]";
}

/// <summary>
/// A memory-mapped GGUF v2/v3 file. Every read is bounds-checked against the file length, every count and size is
/// checked in 64-bit arithmetic against what the file can hold before anything is allocated, the header (metadata and
/// tensor infos) is bounded by <see cref="InputLimits"/>, and every problem becomes a <see cref="BadInputException"/>
/// that names the file and the problem in our words.
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" little-endian
    public const int DefaultAlignment = 32;
    /// <summary>Largest general.alignment accepted (llama.cpp writes 32; anything sane is far below).</summary>
    public const long MaxAlignment = 1 << 20;

    private readonly MemoryMappedFile? _mmf;
    private readonly MemoryMappedViewAccessor? _view;
    private GCHandle _pin;
    private readonly byte* _base;
    private readonly long _length;
    private readonly Dictionary<string, TensorView> _tensors = new(StringComparer.Ordinal);
    private readonly List<string> _order = new();

    public string Path { get; }
    public uint Version { get; }
    public GgufMetadata Metadata { get; }
    public long DataOffset { get; }
    public long FileLength => _length;
    public IReadOnlyList<string> TensorNames => _order;

    private GgufFile(string path)
    {
        Path = path;
        using var handle = InputFiles.OpenHandle(path, "model file");
        long len;
        try { len = RandomAccess.GetLength(handle); }
        catch (IOException e) { throw new BadInputException($"{path}: cannot read ({e.Message})"); }
        if (len < 24) throw new BadInputException($"{path}: not a GGUF file (only {len} bytes)");
        try
        {
            _mmf = MemoryMappedFile.CreateFromFile(handle, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
            _view = _mmf.CreateViewAccessor(0, len, MemoryMappedFileAccess.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            _mmf?.Dispose();
            throw new BadInputException($"{path}: cannot map file ({e.Message})");
        }
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + _view.PointerOffset;
        _length = len;
        try
        {
            (Version, Metadata, DataOffset) = ParseGuard.Run(path, "GGUF file", () => Parse(_base, _length, path, _tensors, _order));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private GgufFile(byte[] data, string name)
    {
        Path = name;
        _pin = GCHandle.Alloc(data, GCHandleType.Pinned);
        _base = (byte*)_pin.AddrOfPinnedObject();
        _length = data.Length;
        try
        {
            if (_length < 24) throw new BadInputException($"{name}: not a GGUF file (only {_length} bytes)");
            (Version, Metadata, DataOffset) = ParseGuard.Run(name, "GGUF file", () => Parse(_base, _length, name, _tensors, _order));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public static GgufFile Open(string path) => new(path);

    /// <summary>A GGUF file held in memory (tests and the fuzz harness); <paramref name="name"/> is used in messages.</summary>
    public static GgufFile FromMemory(byte[] data, string name) => new(data, name);

    private static (uint, GgufMetadata, long) Parse(byte* b, long len, string path, Dictionary<string, TensorView> tensors, List<string> order)
    {
        var r = new Reader(b, len, path);
        uint magic = r.U32();
        if (magic != Magic) throw new BadInputException($"{path}: not a GGUF file (bad magic 0x{magic:x8})");
        uint version = r.U32();
        if (version is < 2 or > 3) throw new BadInputException($"{path}: unsupported GGUF version {version}");
        // Smallest possible records: a tensor info is 32 bytes (name length, 1 dim, type, offset), a metadata pair 13.
        long nTensors = r.Count("tensor count", InputLimits.MaxTensors, 32);
        long nKv = r.Count("metadata count", InputLimits.MaxGgufMetadata, 13);
        var kv = new Dictionary<string, object>((int)Math.Min(nKv, 4096), StringComparer.Ordinal);
        for (long i = 0; i < nKv; i++)
        {
            string key = r.Str();
            var t = (GgufValueType)r.U32();
            var value = r.Value(t, 0);
            if (!kv.TryAdd(key, value)) throw new BadInputException($"{path}: metadata key '{key}' appears twice");
        }
        var metadata = new GgufMetadata(kv, path);
        long align = DefaultAlignment;
        if (kv.ContainsKey("general.alignment"))
        {
            align = metadata.GetInt("general.alignment");
            if (align <= 0 || align > MaxAlignment || (align & (align - 1)) != 0)
                throw new BadInputException($"{path}: general.alignment {align} is not a power of two between 1 and {MaxAlignment}");
        }
        var infos = new List<(string name, GgmlType type, long[] ne, long off)>((int)Math.Min(nTensors, 4096));
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (long i = 0; i < nTensors; i++)
        {
            string name = r.Str();
            uint nd = r.U32();
            if (nd is 0 or > 4) throw new BadInputException($"{path}: tensor '{name}' has {nd} dimensions (1 to 4 are valid)");
            var ne = new long[nd];
            for (int d = 0; d < nd; d++)
            {
                ulong v = r.U64();
                if (v == 0 || v > int.MaxValue) throw new BadInputException($"{path}: tensor '{name}' has invalid dimension {v}");
                ne[d] = (long)v;
            }
            uint tt = r.U32();
            if (!GgmlTypes.IsKnown(tt)) throw new BadInputException($"{path}: tensor '{name}' has unknown or unsupported type {tt}");
            var type = (GgmlType)tt;
            if (ne[0] % GgmlTypes.BlockSize(type) != 0) throw new BadInputException($"{path}: tensor '{name}' row length {ne[0]} is not a multiple of the {GgmlTypes.Name(type)} block size");
            ulong off = r.U64();
            if (off > (ulong)len) throw new BadInputException($"{path}: tensor '{name}' offset {off} is past the end of the file");
            if (!names.Add(name)) throw new BadInputException($"{path}: duplicate tensor '{name}'");
            infos.Add((name, type, ne, (long)off));
        }
        long dataOffset = (r.Pos + align - 1) / align * align;
        foreach (var (name, type, ne, off) in infos)
        {
            // 64-bit size math with the file length as the bound: no product can overflow, no size can exceed the file.
            long rowBytes = GgmlTypes.RowBytes(type, ne[0]);
            if (rowBytes > int.MaxValue) throw new BadInputException($"{path}: tensor '{name}' has rows of {rowBytes} bytes (at most 2 GiB per row)");
            long rows = 1;
            bool fits = rowBytes <= len;
            for (int d = 1; d < ne.Length && fits; d++)
            {
                if (rows > len / ne[d]) fits = false;
                else rows *= ne[d];
            }
            if (fits && rows > len / rowBytes) fits = false;
            long start = dataOffset + off;
            if (off % align != 0) throw new BadInputException($"{path}: tensor '{name}' offset {off} is not aligned to {align}");
            if (!fits || start + rows * rowBytes > len)
                throw new BadInputException($"{path}: tensor '{name}' data ({ShapeOf(ne)} {GgmlTypes.Name(type)} at {start}) runs past the end of the file ({len} bytes); the file is truncated or corrupt");
            tensors[name] = new TensorView(name, type, ne, b + start, rows * rowBytes);
            order.Add(name);
        }
        return (version, metadata, dataOffset);
    }

    private static string ShapeOf(long[] ne) => "[" + string.Join(", ", ne.Reverse()) + "]";

    public bool HasTensor(string name) => _tensors.ContainsKey(name);

    public TensorView Tensor(string name) =>
        _tensors.TryGetValue(name, out var t) ? t : throw new BadInputException($"{Path}: missing tensor '{name}'");

    /// <summary>The tensor, checked against an expected shape given in PyTorch order ([rows, cols]).</summary>
    public TensorView Tensor(string name, params long[] torchShape)
    {
        var t = Tensor(name);
        var ne = torchShape.Reverse().ToArray();
        if (!t.Ne.SequenceEqual(ne))
            throw new BadInputException($"{Path}: tensor '{name}' has shape {t.ShapeString}, expected [{string.Join(", ", torchShape)}]");
        return t;
    }

    public void Dispose()
    {
        if (_view != null)
        {
            if (_base != null) _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _mmf?.Dispose();
        if (_pin.IsAllocated) _pin.Free();
    }

    private struct Reader
    {
        private readonly byte* _p;
        private readonly long _len;
        private readonly long _limit;
        private readonly string _path;
        public long Pos;

        public Reader(byte* p, long len, string path)
        {
            _p = p; _len = len; _path = path; Pos = 0;
            _limit = Math.Min(len, InputLimits.MaxBytes(InputKind.GgufHeader));
        }

        private long Left => _limit - Pos;

        private byte* Take(long n)
        {
            if (n < 0 || n > Left)
            {
                if (Pos + n > _len || n < 0) throw new BadInputException($"{_path}: truncated GGUF header (needed {n} bytes at offset {Pos}, file has {_len})");
                throw HeaderTooBig();
            }
            byte* q = _p + Pos;
            Pos += n;
            return q;
        }

        private BadInputException HeaderTooBig() =>
            new($"{_path}: GGUF header (metadata and tensor infos) is larger than {InputLimits.Describe(InputLimits.MaxBytes(InputKind.GgufHeader))}, the most this program reads");

        public byte U8() => *Take(1);
        public ushort U16() => *(ushort*)Take(2);
        public uint U32() => *(uint*)Take(4);
        public ulong U64() => *(ulong*)Take(8);

        /// <summary>A count of records of at least <paramref name="minBytes"/> each: at most <paramref name="max"/> and what the rest of the file can hold.</summary>
        public long Count(string what, long max, long minBytes)
        {
            ulong v = U64();
            if (v > (ulong)max) throw new BadInputException($"{_path}: implausible {what} {v} (at most {max})");
            if (v > (ulong)(_len - Pos) / (ulong)minBytes) throw new BadInputException($"{_path}: {what} {v} does not fit in the file ({_len} bytes); the file is truncated or corrupt");
            if (v > (ulong)Left / (ulong)minBytes) throw HeaderTooBig();
            return (long)v;
        }

        public string Str()
        {
            ulong n = U64();
            if (n > (ulong)(_len - Pos)) throw new BadInputException($"{_path}: truncated GGUF header (string of {n} bytes at offset {Pos})");
            if (n > (ulong)Left) throw HeaderTooBig();
            byte* q = Take((long)n);
            return Encoding.UTF8.GetString(q, (int)n);
        }

        private static long MinBytes(GgufValueType t) => t switch
        {
            GgufValueType.U8 or GgufValueType.I8 or GgufValueType.Bool => 1,
            GgufValueType.U16 or GgufValueType.I16 => 2,
            GgufValueType.U32 or GgufValueType.I32 or GgufValueType.F32 => 4,
            GgufValueType.U64 or GgufValueType.I64 or GgufValueType.F64 or GgufValueType.String => 8,
            GgufValueType.Array => 12,
            _ => 1,
        };

        private T[] Fixed<T>(long n) where T : unmanaged
        {
            var res = new T[n];
            long bytes = n * sizeof(T);
            byte* q = Take(bytes);
            new ReadOnlySpan<byte>(q, (int)bytes).CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(res.AsSpan()));
            return res;
        }

        public object Value(GgufValueType t, int depth)
        {
            switch (t)
            {
                case GgufValueType.U8: return U8();
                case GgufValueType.I8: return (sbyte)U8();
                case GgufValueType.U16: return U16();
                case GgufValueType.I16: return (short)U16();
                case GgufValueType.U32: return U32();
                case GgufValueType.I32: return (int)U32();
                case GgufValueType.F32: return *(float*)Take(4);
                case GgufValueType.U64: return U64();
                case GgufValueType.I64: return (long)U64();
                case GgufValueType.F64: return *(double*)Take(8);
                case GgufValueType.Bool:
                    byte b = U8();
                    if (b > 1) throw new BadInputException($"{_path}: invalid bool value {b} at offset {Pos - 1}");
                    return b == 1;
                case GgufValueType.String: return Str();
                case GgufValueType.Array:
                    if (depth > 4) throw new BadInputException($"{_path}: arrays nested too deeply");
                    var et = (GgufValueType)U32();
                    if (!Enum.IsDefined(et)) throw new BadInputException($"{_path}: unknown array element type {(uint)et} at offset {Pos - 4}");
                    long n = Count("array length", InputLimits.MaxGgufArrayItems, MinBytes(et));
                    switch (et)
                    {
                        // Numbers are kept as typed arrays (no boxing): memory stays at the size of the data.
                        case GgufValueType.U8: return new GgufArray(et, Fixed<byte>(n));
                        case GgufValueType.I8: return new GgufArray(et, Fixed<sbyte>(n));
                        case GgufValueType.U16: return new GgufArray(et, Fixed<ushort>(n));
                        case GgufValueType.I16: return new GgufArray(et, Fixed<short>(n));
                        case GgufValueType.U32: return new GgufArray(et, Fixed<uint>(n));
                        case GgufValueType.I32: return new GgufArray(et, Fixed<int>(n));
                        case GgufValueType.F32: return new GgufArray(et, Fixed<float>(n));
                        case GgufValueType.U64: return new GgufArray(et, Fixed<ulong>(n));
                        case GgufValueType.I64: return new GgufArray(et, Fixed<long>(n));
                        case GgufValueType.F64: return new GgufArray(et, Fixed<double>(n));
                        case GgufValueType.Bool:
                            var bools = new bool[n];
                            for (long i = 0; i < n; i++) bools[i] = (bool)Value(et, depth + 1);
                            return new GgufArray(et, bools);
                        case GgufValueType.String:
                            var strs = new string[n];
                            for (long i = 0; i < n; i++) strs[i] = Str();
                            return new GgufArray(et, strs);
                        default:
                            var items = new GgufArray[n];
                            for (long i = 0; i < n; i++) items[i] = (GgufArray)Value(et, depth + 1);
                            return new GgufArray(et, items);
                    }
                default:
                    throw new BadInputException($"{_path}: unknown metadata value type {(uint)t} at offset {Pos - 4}");
            }
        }
    }
}
