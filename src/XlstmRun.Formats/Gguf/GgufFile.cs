using System.IO.MemoryMappedFiles;
using System.Text;

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
/// A memory-mapped GGUF v2/v3 file. Every read is bounds-checked against the file length, and every problem
/// becomes a <see cref="BadInputException"/> that names the file and the problem.
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" little-endian
    public const int DefaultAlignment = 32;

    private readonly MemoryMappedFile? _mmf;
    private readonly MemoryMappedViewAccessor? _view;
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
        if (!File.Exists(path)) throw new BadInputException($"{path}: file not found");
        long len;
        try { len = new FileInfo(path).Length; }
        catch (Exception e) { throw new BadInputException($"{path}: cannot read ({e.Message})"); }
        if (len < 24) throw new BadInputException($"{path}: not a GGUF file (only {len} bytes)");
        try
        {
            _mmf = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            _view = _mmf.CreateViewAccessor(0, len, MemoryMappedFileAccess.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{path}: cannot map file ({e.Message})");
        }
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + _view.PointerOffset;
        _length = len;

        var r = new Reader(_base, _length, path);
        uint magic = r.U32();
        if (magic != Magic) throw new BadInputException($"{path}: not a GGUF file (bad magic 0x{magic:x8})");
        Version = r.U32();
        if (Version is < 2 or > 3) throw new BadInputException($"{path}: unsupported GGUF version {Version}");
        long nTensors = r.I64Count("tensor count");
        long nKv = r.I64Count("metadata count");
        var kv = new Dictionary<string, object>(StringComparer.Ordinal);
        for (long i = 0; i < nKv; i++)
        {
            string key = r.Str();
            var t = (GgufValueType)r.U32();
            kv[key] = r.Value(t, 0);
        }
        Metadata = new GgufMetadata(kv, path);
        long align = DefaultAlignment;
        if (kv.TryGetValue("general.alignment", out var a))
        {
            align = Convert.ToInt64(a);
            if (align <= 0 || (align & (align - 1)) != 0) throw new BadInputException($"{path}: general.alignment {align} is not a power of two");
        }
        var infos = new List<(string name, GgmlType type, long[] ne, long off)>();
        for (long i = 0; i < nTensors; i++)
        {
            string name = r.Str();
            uint nd = r.U32();
            if (nd is 0 or > 4) throw new BadInputException($"{path}: tensor '{name}' has {nd} dimensions");
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
            if (_tensors.ContainsKey(name) || infos.Exists(x => x.name == name)) throw new BadInputException($"{path}: duplicate tensor '{name}'");
            infos.Add((name, type, ne, (long)off));
        }
        DataOffset = (r.Pos + align - 1) / align * align;
        foreach (var (name, type, ne, off) in infos)
        {
            long rows = 1;
            for (int d = 1; d < ne.Length; d++) rows = checked(rows * ne[d]);
            long bytes = checked(GgmlTypes.RowBytes(type, ne[0]) * rows);
            long start = DataOffset + off;
            if (off % align != 0) throw new BadInputException($"{path}: tensor '{name}' offset {off} is not aligned to {align}");
            if (start + bytes > len) throw new BadInputException($"{path}: tensor '{name}' data ({bytes} bytes at {start}) runs past the end of the file ({len} bytes); the file is truncated or corrupt");
            _tensors[name] = new TensorView(name, type, ne, _base + start, bytes);
            _order.Add(name);
        }
    }

    public static GgufFile Open(string path) => new(path);

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
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _mmf?.Dispose();
    }

    private struct Reader
    {
        private readonly byte* _p;
        private readonly long _len;
        private readonly string _path;
        public long Pos;

        public Reader(byte* p, long len, string path) { _p = p; _len = len; _path = path; Pos = 0; }

        private byte* Take(long n)
        {
            if (n < 0 || Pos + n > _len) throw new BadInputException($"{_path}: truncated GGUF header (needed {n} bytes at offset {Pos}, file has {_len})");
            byte* q = _p + Pos;
            Pos += n;
            return q;
        }

        public byte U8() => *Take(1);
        public ushort U16() => *(ushort*)Take(2);
        public uint U32() => *(uint*)Take(4);
        public ulong U64() => *(ulong*)Take(8);
        public long I64Count(string what)
        {
            ulong v = U64();
            if (v > 100_000_000) throw new BadInputException($"{_path}: implausible {what} {v}");
            return (long)v;
        }

        public string Str()
        {
            ulong n = U64();
            if (n > (ulong)(_len - Pos)) throw new BadInputException($"{_path}: truncated GGUF header (string of {n} bytes at offset {Pos})");
            byte* q = Take((long)n);
            return Encoding.UTF8.GetString(q, (int)n);
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
                    ulong n = U64();
                    if (n > (ulong)(_len - Pos)) throw new BadInputException($"{_path}: truncated GGUF header (array of {n} items at offset {Pos})");
                    var items = new object[n];
                    for (ulong i = 0; i < n; i++) items[i] = Value(et, depth + 1);
                    return new GgufArray(et, items);
                default:
                    throw new BadInputException($"{_path}: unknown metadata value type {(uint)t} at offset {Pos - 4}");
            }
        }
    }
}
