using System.Buffers.Binary;
using System.Text;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Formats.Safetensors;
using XlstmRun.Model;
using XlstmRun.Model.Conversion;
using XlstmRun.Text;
using XlstmRun.Text.Tokenization;

namespace XlstmRun.Fuzz;

/// <summary>
/// The fuzz targets: each feeds one input through the real parsers, as the program does, and then uses what they
/// returned (shapes, tensors, tokenizer). Rejecting the input with a <see cref="BadInputException"/> is the expected
/// outcome for bad input; any other exception (or a BadInputException raised by <see cref="ParseGuard"/> around an
/// unexpected one) is a finding. Hangs and memory blow-ups are findings too (the harness reports slow inputs).
/// </summary>
public static class FuzzTargets
{
    public static readonly string[] Names = ["gguf", "safetensors", "state", "tokenizer"];

    /// <summary>Whether the target's input is text (JSON-aware mutations help).</summary>
    public static bool IsJson(string target) => target is "tokenizer" or "safetensors";

    public static Action<byte[]> Get(string name) => name switch
    {
        "gguf" => Gguf,
        "safetensors" => Safetensors,
        "state" => State,
        "tokenizer" => Tokenizer,
        _ => throw new ArgumentException($"unknown fuzz target '{name}' (gguf, safetensors, state, tokenizer)"),
    };

    /// <summary>Runs one input; returns null when it was accepted or rejected cleanly, else the exception that is a finding.</summary>
    public static Exception? Check(Action<byte[]> target, byte[] input) => Check(target, input, out _);

    public static Exception? Check(Action<byte[]> target, byte[] input, out bool accepted)
    {
        accepted = false;
        try
        {
            target(input);
            accepted = true;
            return null;
        }
        catch (BadInputException e) when (!ParseGuard.IsUnexpected(e))
        {
            // (Messages may hold untrusted names with control characters: the CLI's printer escapes and folds them.)
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    private const string Text = "Hello, the world! Ünïcödé\n\tand the end. 12345";

    public static void Gguf(byte[] data)
    {
        using var f = GgufFile.FromMemory(data, "fuzz.gguf");
        _ = f.Metadata.TryGetString("general.name");
        var cfg = ModelConfig.FromGguf(f);
        foreach (var (name, shape, _) in TensorNames.All(cfg))
        {
            var t = f.Tensor(name, shape);
            var row = new float[t.Cols];
            t.DecodeRow(0, row);
            t.DecodeRow(t.Rows - 1, row);
        }
        if (TokenizerGguf.Has(f))
        {
            var tok = TokenizerGguf.Build(TokenizerGguf.Read(f), f.Path);
            var ids = tok.Encode(Text);
            _ = tok.Decode(ids);
        }
    }

    /// <summary>Input: u32 length of config.json, config.json, then the model.safetensors bytes.</summary>
    public static void Safetensors(byte[] data)
    {
        if (data.Length < 4) throw new BadInputException("fuzz input too short");
        uint n = BinaryPrimitives.ReadUInt32LittleEndian(data);
        if (n > data.Length - 4) throw new BadInputException("fuzz input: config length past the end");
        string dir = ScratchDir();
        File.WriteAllBytes(Path.Combine(dir, "config.json"), data.AsSpan(4, (int)n).ToArray());
        File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), data.AsSpan(4 + (int)n).ToArray());
        using var ck = new HfCheckpoint(dir);
        var cfg = HfConverter.ReadConfig(ck, out var mode, out var tied);
        var sources = HfConverter.Sources(ck, cfg, mode, tied);
        foreach (var (name, _, _) in TensorNames.All(cfg))
        {
            var src = sources(name);
            var buf = new float[src.Cols];
            src.Read(0, 1, buf);
            src.Read(src.Rows - 1, 1, buf);
        }
    }

    /// <summary>Packs a checkpoint for <see cref="Safetensors"/>.</summary>
    public static byte[] PackCheckpoint(byte[] configJson, byte[] safetensors)
    {
        var res = new byte[4 + configJson.Length + safetensors.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(res, (uint)configJson.Length);
        configJson.CopyTo(res, 4);
        safetensors.CopyTo(res, 4 + configJson.Length);
        return res;
    }

    /// <summary>The model the state target loads states for (2 blocks, 2 heads, head dims 4/8).</summary>
    public static readonly ModelConfig StateModel = RandomModel.Shape(16, 2, 2, 64);

    /// <summary>The input as it is, then with its CRC fixed up, so that mutants also reach the checks behind the checksum.</summary>
    public static void State(byte[] data)
    {
        if (data.Length >= 4)
        {
            var fixedUp = (byte[])data.Clone();
            BinaryPrimitives.WriteUInt32LittleEndian(fixedUp.AsSpan(fixedUp.Length - 4), System.IO.Hashing.Crc32.HashToUInt32(fixedUp.AsSpan(0, fixedUp.Length - 4)));
            try { LoadState(fixedUp); }
            catch (BadInputException e) when (!ParseGuard.IsUnexpected(e)) { }
        }
        LoadState(data);
    }

    private static void LoadState(byte[] data)
    {
        var s = StateFile.FromBytes(data, StateModel, "fuzz.state", out long pos);
        if (s.Length != StateModel.StateFloats || pos < 0) throw new InvalidOperationException("state accepted with a wrong size or position");
    }

    public static void Tokenizer(byte[] data)
    {
        var model = TokenizerGguf.FromJsonText(InputFiles_Decode(data), "fuzz-tokenizer.json");
        var tok = TokenizerGguf.Build(model, "fuzz-tokenizer.json");
        var ids = tok.Encode(Text);
        _ = tok.Decode(ids);
    }

    private static string InputFiles_Decode(byte[] data) => Formats.IO.InputFiles.DecodeUtf8(data, "fuzz-tokenizer.json");

    [ThreadStatic] private static string? _scratch;

    private static string ScratchDir()
    {
        if (_scratch != null) return _scratch;
        string root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        _scratch = Path.Combine(root, $"xlstm-fuzz-{Environment.ProcessId}-{Environment.CurrentManagedThreadId}");
        Directory.CreateDirectory(_scratch);
        return _scratch;
    }

    /// <summary>Removes this thread's scratch folder (the safetensors target writes its checkpoint there).</summary>
    public static void Cleanup()
    {
        if (_scratch != null) try { Directory.Delete(_scratch, true); } catch { }
        _scratch = null;
    }
}
