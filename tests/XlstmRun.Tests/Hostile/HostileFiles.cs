using System.Text;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Model.Conversion;
using XlstmRun.Tests.Support;

namespace XlstmRun.Tests.Hostile;

/// <summary>Builders for the hostile inputs of issue 15: raw GGUF bytes of any shape, and small models with altered metadata.</summary>
public static class HostileFiles
{
    /// <summary>Writes GGUF v3 bytes exactly as told (no checks): metadata as (key, writer) pairs, then tensor infos.</summary>
    public sealed class RawGguf
    {
        private readonly MemoryStream _kv = new();
        private readonly MemoryStream _ti = new();
        private long _nKv, _nTensors;
        private BinaryWriter Kv => new(_kv, Encoding.UTF8, leaveOpen: true);
        public ulong? TensorCountOverride { get; set; }
        public ulong? KvCountOverride { get; set; }
        public long DataBytes { get; set; }

        public static void Str(BinaryWriter w, string s)
        {
            var b = Encoding.UTF8.GetBytes(s);
            w.Write((ulong)b.Length);
            w.Write(b);
        }

        public RawGguf Add(string key, GgufValueType type, Action<BinaryWriter> value)
        {
            using var w = Kv;
            Str(w, key);
            w.Write((uint)type);
            value(w);
            _nKv++;
            return this;
        }

        public RawGguf String(string key, string v) => Add(key, GgufValueType.String, w => Str(w, v));
        public RawGguf U32(string key, uint v) => Add(key, GgufValueType.U32, w => w.Write(v));
        public RawGguf U64(string key, ulong v) => Add(key, GgufValueType.U64, w => w.Write(v));

        public RawGguf Tensor(string name, GgmlType type, ulong[] ne, ulong offset)
        {
            using var w = new BinaryWriter(_ti, Encoding.UTF8, leaveOpen: true);
            Str(w, name);
            w.Write((uint)ne.Length);
            foreach (var d in ne) w.Write(d);
            w.Write((uint)type);
            w.Write(offset);
            _nTensors++;
            return this;
        }

        public byte[] Bytes()
        {
            var ms = new MemoryStream();
            using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
            {
                w.Write(GgufFile.Magic);
                w.Write(3u);
                w.Write(TensorCountOverride ?? (ulong)_nTensors);
                w.Write(KvCountOverride ?? (ulong)_nKv);
                w.Write(_kv.ToArray());
                w.Write(_ti.ToArray());
                while (ms.Length % 32 != 0) w.Write((byte)0);
                w.Write(new byte[DataBytes]);
            }
            return ms.ToArray();
        }

        public string WriteTo(string path)
        {
            File.WriteAllBytes(path, Bytes());
            return path;
        }
    }

    /// <summary>A small valid model (hidden 64, 2 blocks, vocab 128) with metadata changed by <paramref name="change"/>.</summary>
    public static string ModelFile(string dir, string name, Action<GgufWriter>? change = null, ModelConfig? shape = null)
    {
        var c = shape ?? RandomModel.Shape(64, 2, 2, 128);
        string p = Path.Combine(dir, name);
        ModelWriter.Write(p, c, GgmlType.F32, RandomModel.Sources(c, 3), w => change?.Invoke(w), null, threads: 1);
        return p;
    }

    /// <summary>The audit's crash: internally consistent, vocabulary 2,097,216, hidden 1, chunk size 1024 (16 MB of weights).</summary>
    public static ModelConfig HugeVocabShape() => new()
    {
        Hidden = 1, Blocks = 1, Heads = 1, QkDim = 1, VDim = 1, FfnDim = 64, Vocab = 2_097_216, ChunkSize = 1024,
    };

    public static string TempDir() => TestPaths.TempDir();
}
