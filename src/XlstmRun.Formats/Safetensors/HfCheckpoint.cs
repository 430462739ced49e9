using System.Text.Json;

namespace XlstmRun.Formats.Safetensors;

/// <summary>
/// A Hugging Face checkpoint directory: config.json plus model.safetensors, or shards listed in model.safetensors.index.json.
/// </summary>
public sealed class HfCheckpoint : IDisposable
{
    private readonly List<SafetensorsFile> _files = new();
    private readonly Dictionary<string, SafeTensor> _tensors = new(StringComparer.Ordinal);

    public string Directory { get; }
    public string ConfigJson { get; }
    public IReadOnlyDictionary<string, SafeTensor> Tensors => _tensors;

    public HfCheckpoint(string dir)
    {
        Directory = dir;
        if (!System.IO.Directory.Exists(dir)) throw new BadInputException($"{dir}: checkpoint directory not found");
        string cfg = System.IO.Path.Combine(dir, "config.json");
        if (!File.Exists(cfg)) throw new BadInputException($"{cfg}: file not found (a Hugging Face checkpoint needs config.json)");
        try { ConfigJson = File.ReadAllText(cfg); }
        catch (Exception e) { throw new BadInputException($"{cfg}: cannot read ({e.Message})"); }
        try
        {
            string single = System.IO.Path.Combine(dir, "model.safetensors");
            string index = System.IO.Path.Combine(dir, "model.safetensors.index.json");
            if (File.Exists(index))
            {
                JsonDocument doc;
                try { doc = JsonDocument.Parse(File.ReadAllText(index)); }
                catch (JsonException e) { throw new BadInputException($"{index}: invalid JSON ({e.Message})"); }
                using (doc)
                {
                    if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                        throw new BadInputException($"{index}: no weight_map object");
                    var byFile = new Dictionary<string, SafetensorsFile>();
                    foreach (var p in map.EnumerateObject())
                    {
                        string shard = p.Value.GetString() ?? throw new BadInputException($"{index}: bad weight_map entry '{p.Name}'");
                        if (shard.Contains('/') || shard.Contains('\\')) throw new BadInputException($"{index}: shard name '{shard}' must be a plain file name");
                        if (!byFile.TryGetValue(shard, out var f))
                        {
                            f = new SafetensorsFile(System.IO.Path.Combine(dir, shard));
                            byFile[shard] = f;
                            _files.Add(f);
                        }
                        if (!f.Tensors.TryGetValue(p.Name, out var t)) throw new BadInputException($"{f.Path}: missing tensor '{p.Name}' listed in {index}");
                        _tensors[p.Name] = t;
                    }
                }
            }
            else if (File.Exists(single))
            {
                var f = new SafetensorsFile(single);
                _files.Add(f);
                foreach (var kv in f.Tensors) _tensors[kv.Key] = kv.Value;
            }
            else
            {
                throw new BadInputException($"{dir}: no model.safetensors or model.safetensors.index.json");
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public SafeTensor Tensor(string name) =>
        _tensors.TryGetValue(name, out var t) ? t : throw new BadInputException($"{Directory}: missing tensor '{name}'");

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
    }
}
