using System.Text.Json;
using XlstmRun.Formats.IO;

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

    /// <summary>Every file of the checkpoint this object reads (config.json, the index, the safetensors files).</summary>
    public IReadOnlyList<string> Files => _inputs;
    private readonly List<string> _inputs = new();

    public HfCheckpoint(string dir)
    {
        Directory = dir;
        var facts = UnixFile.Stat(dir);
        if (facts.Type == FileType.Missing) throw new BadInputException($"{dir}: checkpoint directory not found");
        if (facts.Type != FileType.Directory) throw new BadInputException($"{dir}: is {facts.Describe()}, not a checkpoint directory (config.json and model.safetensors)");
        string cfg = System.IO.Path.Combine(dir, "config.json");
        if (!UnixFile.Stat(cfg).Exists) throw new BadInputException($"{cfg}: file not found (a Hugging Face checkpoint needs config.json)");
        ConfigJson = InputFiles.ReadAllText(cfg, InputKind.ConfigJson, "config file");
        _inputs.Add(cfg);
        try
        {
            string single = System.IO.Path.Combine(dir, "model.safetensors");
            string index = System.IO.Path.Combine(dir, "model.safetensors.index.json");
            if (UnixFile.Stat(index).Exists)
            {
                JsonDocument doc;
                string text = InputFiles.ReadAllText(index, InputKind.SafetensorsIndex, "index file");
                _inputs.Add(index);
                try { doc = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = 16 }); }
                catch (JsonException e) { throw new BadInputException($"{index}: invalid JSON ({e.Message.Split('\n')[0]})"); }
                using (doc)
                {
                    if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                        throw new BadInputException($"{index}: no weight_map object");
                    var byFile = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
                    foreach (var p in map.EnumerateObject())
                    {
                        string tensor = JsonStrings.Name(p, index);
                        string shard = p.Value.ValueKind == JsonValueKind.String ? JsonStrings.Value(p.Value, index) : throw new BadInputException($"{index}: weight_map entry '{tensor}' is not a file name");
                        if (shard.Length == 0 || shard is "." or ".." || shard.Contains('/') || shard.Contains('\\') || shard.Contains('\0'))
                            throw new BadInputException($"{index}: shard name '{shard}' must be a plain file name");
                        if (_tensors.ContainsKey(tensor)) throw new BadInputException($"{index}: tensor '{tensor}' is listed twice in weight_map");
                        if (!byFile.TryGetValue(shard, out var f))
                        {
                            f = new SafetensorsFile(System.IO.Path.Combine(dir, shard));
                            byFile[shard] = f;
                            _files.Add(f);
                            _inputs.Add(f.Path);
                        }
                        if (!f.Tensors.TryGetValue(tensor, out var t)) throw new BadInputException($"{f.Path}: missing tensor '{tensor}' listed in {index}");
                        _tensors[tensor] = t;
                    }
                }
            }
            else if (UnixFile.Stat(single).Exists)
            {
                var f = new SafetensorsFile(single);
                _files.Add(f);
                _inputs.Add(single);
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
