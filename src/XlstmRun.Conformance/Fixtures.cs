using XlstmRun.Formats;
using XlstmRun.Formats.Safetensors;
using XlstmRun.Model;
using XlstmRun.Model.Conversion;

namespace XlstmRun.Conformance;

/// <summary>
/// The reference outputs of a fixture (reference.safetensors, described in tests/data/fixtures/README.md): the prompt,
/// greedy and continuation ids and the float64 results of transformers' xLSTM stored as float32.
/// </summary>
public sealed class FixtureReference
{
    private readonly Dictionary<string, float[]> _f = new();
    private readonly Dictionary<string, long[]> _shape = new();
    public int[] InputIds { get; }
    public int[] GreedyIds { get; }
    public int[] ContinueIds { get; }

    public FixtureReference(string fixtureDir)
    {
        string path = Path.Combine(fixtureDir, "reference.safetensors");
        if (!File.Exists(path)) throw new BadInputException($"{fixtureDir}: no reference.safetensors (not a fixture directory)");
        using var f = new SafetensorsFile(path);
        foreach (var (name, t) in f.Tensors)
        {
            _shape[name] = t.Shape;
            if (t.DType != SafeDType.I64) _f[name] = t.ReadAll();
        }
        int[] Ids(string name) => f.Tensors.TryGetValue(name, out var t)
            ? t.ReadInt64().Select(x => (int)x).ToArray()
            : throw new BadInputException($"{path}: tensor '{name}' is missing");
        InputIds = Ids("input_ids");
        GreedyIds = Ids("greedy_ids");
        ContinueIds = f.Tensors.ContainsKey("continue_ids") ? Ids("continue_ids") : [];
        foreach (var need in new[] { "logits_prefill", "logits_step", "greedy_logits" })
            if (!_f.ContainsKey(need)) throw new BadInputException($"{path}: tensor '{need}' is missing");
    }

    public float[] this[string name] => _f.TryGetValue(name, out var v) ? v : throw new KeyNotFoundException($"reference tensor '{name}' is missing");
    public bool Has(string name) => _f.ContainsKey(name);
    public long[] Shape(string name) => _shape[name];
}

/// <summary>A fixture directory: Hugging Face checkpoint + reference outputs.</summary>
public sealed class Fixture
{
    public string Name { get; }
    public string Dir { get; }
    private FixtureReference? _ref;

    public Fixture(string dir)
    {
        Dir = Path.GetFullPath(dir);
        Name = Path.GetFileName(Dir.TrimEnd(Path.DirectorySeparatorChar));
    }

    public FixtureReference Reference => _ref ??= new FixtureReference(Dir);

    public static bool IsFixtureDir(string dir) =>
        File.Exists(Path.Combine(dir, "config.json")) && File.Exists(Path.Combine(dir, "reference.safetensors"));

    /// <summary>The fixtures of the repository, in the order the tests use.</summary>
    public static readonly string[] Standard = ["tiny-f32", "tiny-bf16", "tiny-fused", "tiny-long"];

    /// <summary>Every fixture under <paramref name="root"/> (the standard ones first, then any other, by name).</summary>
    public static List<Fixture> All(string root)
    {
        if (!Directory.Exists(root)) throw new BadInputException($"{root}: fixtures directory not found");
        if (IsFixtureDir(root)) return [new Fixture(root)];
        var dirs = Directory.GetDirectories(root).Where(IsFixtureDir).Select(d => new Fixture(d)).ToList();
        if (dirs.Count == 0) throw new BadInputException($"{root}: no fixtures (directories with config.json and reference.safetensors)");
        return dirs.OrderBy(f => Array.IndexOf(Standard, f.Name) is var i && i >= 0 ? i : int.MaxValue).ThenBy(f => f.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// The repository's tests/data/fixtures, looked for above the executable's folder and above the current directory
    /// (so the check runs from a checkout, from build/, or from a copy of the binary placed in the tree). Null if none.
    /// </summary>
    public static string? FindDefaultRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
            for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
            {
                var p = Path.Combine(d.FullName, "tests", "data", "fixtures");
                if (Directory.Exists(p)) return p;
            }
        return null;
    }
}

/// <summary>GGUF conversions of fixtures, made once per (fixture, type) in one temporary directory, deleted at dispose.</summary>
public sealed class ConvertedModels : IDisposable
{
    private readonly Dictionary<string, Lazy<string>> _cache = new();
    private readonly object _lock = new();
    private readonly bool _ownsDir;
    public string Dir { get; }

    /// <param name="dir">Where to write the files (kept); null: a fresh temporary directory, removed at dispose.</param>
    public ConvertedModels(string? dir = null)
    {
        _ownsDir = dir == null;
        Dir = dir ?? Path.Combine(Path.GetTempPath(), $"xlstm-check-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(Dir);
    }

    /// <summary>The path of <paramref name="fixture"/> converted to <paramref name="type"/> (converted on first use).</summary>
    public string Get(Fixture fixture, GgmlType type) => Get(fixture.Dir, fixture.Name, type);

    public string Get(string checkpointDir, string name, GgmlType type)
    {
        string key = name + "-" + GgmlTypes.Name(type);
        Lazy<string> lazy;
        lock (_lock)
        {
            if (!_cache.TryGetValue(key, out lazy!))
                _cache[key] = lazy = new Lazy<string>(() =>
                {
                    string p = Path.Combine(Dir, key + ".gguf");
                    using var ck = new HfCheckpoint(checkpointDir);
                    var cfg = HfConverter.ReadConfig(ck, out var mode, out var tied);
                    ModelWriter.Write(p, cfg, type, HfConverter.Sources(ck, cfg, mode, tied), _ => { }, null, threads: 1);
                    return p;
                });
        }
        return lazy.Value;
    }

    public void Dispose()
    {
        if (!_ownsDir) return;
        try { Directory.Delete(Dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
