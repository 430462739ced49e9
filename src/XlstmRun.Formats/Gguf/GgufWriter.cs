using System.Text;
using XlstmRun.Formats.IO;

namespace XlstmRun.Formats.Gguf;

/// <summary>
/// Streams a GGUF v3 file: metadata and tensor descriptions first, then each tensor's bytes produced on demand by a
/// callback, so memory stays bounded whatever the model size. Files are written through <see cref="OutputFile"/>: a
/// unique temporary file renamed at the end; on any failure the temporary file is removed and PATH is as it was.
/// </summary>
public sealed class GgufWriter
{
    private readonly List<(string key, GgufValueType type, object value)> _kv = new();
    private readonly List<PendingTensor> _tensors = new();
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    public int Alignment { get; } = GgufFile.DefaultAlignment;

    private sealed record PendingTensor(string Name, GgmlType Type, long[] Ne, long Bytes, Action<Stream> Write);

    public GgufWriter() => AddU32("general.alignment", (uint)Alignment);

    private void Set(string key, GgufValueType t, object v)
    {
        _kv.RemoveAll(e => e.key == key);
        _kv.Add((key, t, v));
    }

    public bool Has(string key) => _kv.Exists(e => e.key == key);

    /// <summary>A value as <see cref="GgufFile"/> reads it (boxed scalar, string or <see cref="GgufArray"/>), e.g. to copy metadata.</summary>
    public void AddValue(string key, object v) => Set(key, v switch
    {
        byte => GgufValueType.U8, sbyte => GgufValueType.I8, ushort => GgufValueType.U16, short => GgufValueType.I16,
        uint => GgufValueType.U32, int => GgufValueType.I32, float => GgufValueType.F32, bool => GgufValueType.Bool,
        string => GgufValueType.String, GgufArray => GgufValueType.Array, ulong => GgufValueType.U64, long => GgufValueType.I64,
        double => GgufValueType.F64,
        _ => throw new ArgumentException($"metadata '{key}': unsupported value type {v.GetType().Name}"),
    }, v);

    public void AddString(string key, string v) => Set(key, GgufValueType.String, v);
    public void AddU32(string key, uint v) => Set(key, GgufValueType.U32, v);
    public void AddI32(string key, int v) => Set(key, GgufValueType.I32, v);
    public void AddU64(string key, ulong v) => Set(key, GgufValueType.U64, v);
    public void AddF32(string key, float v) => Set(key, GgufValueType.F32, v);
    public void AddBool(string key, bool v) => Set(key, GgufValueType.Bool, v);
    public void AddStringArray(string key, IReadOnlyList<string> v) => Set(key, GgufValueType.Array, new GgufArray(GgufValueType.String, v.ToArray()));
    public void AddI32Array(string key, IReadOnlyList<int> v) => Set(key, GgufValueType.Array, new GgufArray(GgufValueType.I32, v.ToArray()));
    public void AddF32Array(string key, IReadOnlyList<float> v) => Set(key, GgufValueType.Array, new GgufArray(GgufValueType.F32, v.ToArray()));

    /// <summary>Declare a tensor with its PyTorch-order shape; <paramref name="write"/> must write exactly its bytes.</summary>
    public void AddTensor(string name, GgmlType type, long[] torchShape, Action<Stream> write)
    {
        if (Encoding.UTF8.GetByteCount(name) >= 64) throw new ArgumentException($"tensor name '{name}' is 64 bytes or longer");
        if (!_names.Add(name)) throw new ArgumentException($"duplicate tensor '{name}'");
        var ne = torchShape.Reverse().ToArray();
        long rows = 1;
        for (int i = 1; i < ne.Length; i++) rows *= ne[i];
        _tensors.Add(new PendingTensor(name, type, ne, GgmlTypes.RowBytes(type, ne[0]) * rows, write));
    }

    public long TotalTensorBytes => _tensors.Sum(t => t.Bytes);

    /// <summary>Write the file (replacing PATH if it exists: use <see cref="WriteTo(OutputFile, Action{int, int, string}?)"/> for checked outputs).</summary>
    public void WriteTo(string path, Action<int, int, string>? progress = null) =>
        WriteTo(OutputFile.Check(path, "output", force: true, [], allowStdout: false), progress);

    /// <summary>Write the file. <paramref name="progress"/> gets (tensor index, tensor count, name) before each tensor.</summary>
    public void WriteTo(OutputFile output, Action<int, int, string>? progress = null) =>
        output.Write(s => WriteAll(s, progress));

    private void WriteAll(Stream output, Action<int, int, string>? progress)
    {
        var fs = new CountingStream(output);
        var w = new BinaryWriter(fs, Encoding.UTF8, leaveOpen: true);
        w.Write(GgufFile.Magic);
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_kv.Count);
        foreach (var (key, type, value) in _kv)
        {
            WriteStr(w, key);
            w.Write((uint)type);
            WriteValue(w, type, value);
        }
        long offset = 0;
        foreach (var t in _tensors)
        {
            WriteStr(w, t.Name);
            w.Write((uint)t.Ne.Length);
            foreach (var d in t.Ne) w.Write((ulong)d);
            w.Write((uint)t.Type);
            w.Write((ulong)offset);
            offset += Pad(t.Bytes);
        }
        w.Flush();
        PadStream(fs, fs.Position);
        for (int i = 0; i < _tensors.Count; i++)
        {
            var t = _tensors[i];
            progress?.Invoke(i, _tensors.Count, t.Name);
            long start = fs.Position;
            t.Write(fs);
            long written = fs.Position - start;
            if (written != t.Bytes) throw new InvalidOperationException($"tensor '{t.Name}': wrote {written} bytes, expected {t.Bytes}");
            PadStream(fs, written);
        }
    }

    private long Pad(long n) => (n + Alignment - 1) / Alignment * Alignment;

    private void PadStream(Stream s, long n)
    {
        long pad = Pad(n) - n;
        for (long i = 0; i < pad; i++) s.WriteByte(0);
    }

    private static void WriteStr(BinaryWriter w, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)b.Length);
        w.Write(b);
    }

    private static void WriteValue(BinaryWriter w, GgufValueType t, object v)
    {
        switch (t)
        {
            case GgufValueType.U8: w.Write((byte)v); break;
            case GgufValueType.I8: w.Write((sbyte)v); break;
            case GgufValueType.U16: w.Write((ushort)v); break;
            case GgufValueType.I16: w.Write((short)v); break;
            case GgufValueType.U32: w.Write((uint)v); break;
            case GgufValueType.I32: w.Write((int)v); break;
            case GgufValueType.F32: w.Write((float)v); break;
            case GgufValueType.U64: w.Write((ulong)v); break;
            case GgufValueType.I64: w.Write((long)v); break;
            case GgufValueType.F64: w.Write((double)v); break;
            case GgufValueType.Bool: w.Write((bool)v ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteStr(w, (string)v); break;
            case GgufValueType.Array:
                var a = (GgufArray)v;
                w.Write((uint)a.ElementType);
                w.Write((ulong)a.Items.Length);
                foreach (var item in a.Items) WriteValue(w, a.ElementType, item);
                break;
            default: throw new ArgumentOutOfRangeException(nameof(t));
        }
    }
}
