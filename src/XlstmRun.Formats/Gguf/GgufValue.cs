namespace XlstmRun.Formats.Gguf;

/// <summary>GGUF metadata value types (u32 on disk).</summary>
public enum GgufValueType : uint
{
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
}

/// <summary>
/// An array metadata value: its element type and the elements as a typed array (byte[], int[], float[], ... for
/// numbers, bool[], string[], or GgufArray[] for nested arrays), so a large numeric array costs its data size only.
/// </summary>
public sealed record GgufArray(GgufValueType ElementType, Array Items)
{
    public int Count => Items.Length;

    /// <summary>Item <paramref name="i"/> as a 64-bit integer, or null when the elements are not integers (or a u64 ≥ 2^63).</summary>
    public long? IntAt(int i) => Items switch
    {
        byte[] a => a[i], sbyte[] a => a[i], ushort[] a => a[i], short[] a => a[i], uint[] a => a[i], int[] a => a[i],
        long[] a => a[i], ulong[] a => a[i] <= long.MaxValue ? (long)a[i] : null,
        _ => null,
    };
}

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
        byte v => v, sbyte v => v, ushort v => v, short v => v, uint v => v, int v => v, long v => v,
        ulong v => v <= long.MaxValue ? (long)v : throw new BadInputException($"{_source}: metadata key '{key}' = {v} is out of range"),
        _ => throw Wrong(key, "an integer"),
    };

    /// <summary>An integer in [min, max] (one-line error naming the key otherwise).</summary>
    public long GetInt(string key, long min, long max)
    {
        long v = GetInt(key);
        if (v < min || v > max) throw new BadInputException($"{_source}: metadata key '{key}' = {v} is out of range ({min} to {max})");
        return v;
    }

    /// <summary><see cref="GetInt(string, long, long)"/>, or <paramref name="fallback"/> when the key is absent.</summary>
    public long GetInt(string key, long min, long max, long fallback) => Has(key) ? GetInt(key, min, max) : fallback;

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
