namespace XlstmRun.Formats.Gguf;

/// <summary>GGUF metadata value types (u32 on disk).</summary>
public enum GgufValueType : uint
{
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
}

/// <summary>An array metadata value: its element type and the elements (boxed scalars, strings, or nested arrays).</summary>
public sealed record GgufArray(GgufValueType ElementType, object[] Items);

/// <summary>Typed accessors over a metadata dictionary, with one-line errors naming the key.</summary>
public sealed class GgufMetadata
{
    private readonly Dictionary<string, object> _values;
    private readonly string _source;

    public GgufMetadata(Dictionary<string, object> values, string source)
    {
        _values = values;
        _source = source;
    }

    public IReadOnlyDictionary<string, object> Values => _values;
    public bool Has(string key) => _values.ContainsKey(key);

    private object Get(string key) =>
        _values.TryGetValue(key, out var v) ? v : throw new BadInputException($"{_source}: missing metadata key '{key}'");

    public string GetString(string key) => Get(key) as string ?? throw Wrong(key, "a string");

    public long GetInt(string key) => Get(key) switch
    {
        byte v => v, sbyte v => v, ushort v => v, short v => v, uint v => v, int v => v, ulong v => checked((long)v), long v => v,
        _ => throw Wrong(key, "an integer"),
    };

    public long GetInt(string key, long fallback) => Has(key) ? GetInt(key) : fallback;

    public double GetFloat(string key) => Get(key) switch
    {
        float v => v, double v => v,
        _ => throw Wrong(key, "a float"),
    };

    public double GetFloat(string key, double fallback) => Has(key) ? GetFloat(key) : fallback;

    public bool GetBool(string key, bool fallback) => _values.TryGetValue(key, out var v) ? v is bool b ? b : throw Wrong(key, "a bool") : fallback;

    public string? TryGetString(string key) => _values.TryGetValue(key, out var v) ? v as string : null;

    public GgufArray? TryGetArray(string key) => _values.TryGetValue(key, out var v) ? v as GgufArray : null;

    private BadInputException Wrong(string key, string what) => new($"{_source}: metadata key '{key}' is not {what}");
}
