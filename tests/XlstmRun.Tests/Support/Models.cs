using XlstmRun.Formats;
using XlstmRun.Formats.Safetensors;
using XlstmRun.Model;
using XlstmRun.Model.Conversion;

namespace XlstmRun.Tests.Support;

/// <summary>Converts fixtures to GGUF once per (fixture, type) for the whole test run.</summary>
public static class Models
{
    private static readonly Dictionary<string, string> Cache = new();
    private static readonly object Lock = new();
    private static readonly string Dir = TestPaths.TempDir();

    public static string Converted(string fixture, GgmlType type)
    {
        lock (Lock)
        {
            string key = fixture + "-" + GgmlTypes.Name(type);
            if (Cache.TryGetValue(key, out var p)) return p;
            p = Path.Combine(Dir, key + ".gguf");
            using var ck = new HfCheckpoint(TestPaths.Fixture(fixture));
            var cfg = HfConverter.ReadConfig(ck, out var mode, out var tied);
            ModelWriter.Write(p, cfg, type, HfConverter.Sources(ck, cfg, mode, tied), _ => { }, null);
            Cache[key] = p;
            return p;
        }
    }
}
