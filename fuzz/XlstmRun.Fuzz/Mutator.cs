using System.Buffers.Binary;
using System.Text;

namespace XlstmRun.Fuzz;

/// <summary>
/// A deterministic, seeded mutator (the same seed gives the same mutants on every machine): bit flips, interesting
/// bytes and 16/32/64-bit integers (0, 1, -1, 2^31, 2^63, sizes just past a limit...), chunk deletion, duplication and
/// insertion, truncation, splicing with another seed, and JSON-aware mutations (a number, string, array or object
/// swapped for another kind or an extreme value) for the text formats. Several mutations are stacked per mutant.
/// </summary>
public sealed class Mutator(ulong seed)
{
    // The seed is mixed first: with a plain seed·γ start, seeds n and n+1 would give the same stream shifted by one draw
    // (and runs that consume draws unevenly soon fall into step: two seeds would fuzz the same mutants).
    private ulong _s = Mix(Mix(seed) ^ 0x632BE59BD9B4E019UL);

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>splitmix64.</summary>
    public ulong Next() => Mix(_s += 0x9E3779B97F4A7C15UL);

    public int Below(int n) => n <= 0 ? 0 : (int)(Next() % (ulong)n);

    private static readonly ulong[] Interesting =
    [
        0, 1, 2, 3, 4, 7, 8, 16, 31, 32, 33, 63, 64, 127, 128, 255, 256, 1023, 1024, 4096, 65535, 65536,
        0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, 0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff,
        1_000_000, 2_097_216, 100_000_000, 0xfffffffffffffffe, 0x40000000,
    ];

    private static readonly string[] JsonValues =
    [
        "0", "-1", "1", "1e400", "-1e400", "1.5", "9223372036854775808", "18446744073709551616", "2147483648", "4294967296",
        "1e30", "null", "true", "false", "\"\"", "\"x\"", "\"\\ud800\"", "\"\\u001b[2J\"", "[]", "{}", "[1]", "[[1]]",
        "{\"a\":1}", "[0,0]", "[1,2,3,4,5,6,7,8,9]", "\"F32\"", "\"BF16\"", "\"I64\"", "\"U8\"", "-0", "0.0", "1E+2",
    ];

    /// <summary>A mutant of <paramref name="data"/> (never modified); <paramref name="other"/> is used for splicing.</summary>
    public byte[] Mutate(byte[] data, byte[]? other, bool json)
    {
        var b = new List<byte>(data);
        int rounds = 1 + Below(Below(8) + 1);
        for (int r = 0; r < rounds; r++)
        {
            int kind = Below(json ? 14 : 11);
            if (b.Count == 0) kind = 5;
            switch (kind)
            {
                case 0: { int i = Below(b.Count); b[i] ^= (byte)(1 << Below(8)); break; }
                case 1: { int i = Below(b.Count); b[i] = (byte)Interesting[Below(Interesting.Length)]; break; }
                case 2: { int i = Below(b.Count); b[i] = (byte)Next(); break; }
                case 3: WriteInt(b, 2); break;
                case 4: WriteInt(b, Below(2) == 0 ? 4 : 8); break;
                case 5: { int i = Below(b.Count + 1); int n = 1 + Below(16); for (int k = 0; k < n; k++) b.Insert(i, (byte)Next()); break; }
                case 6: { if (b.Count < 2) break; int i = Below(b.Count); int n = 1 + Below(Math.Min(64, b.Count - i)); b.RemoveRange(i, n); break; }
                case 7: { int i = Below(b.Count); int n = 1 + Below(Math.Min(64, b.Count - i)); var chunk = b.GetRange(i, n); b.InsertRange(Below(b.Count + 1), chunk); break; }
                case 8: { int keep = Below(b.Count); b.RemoveRange(keep, b.Count - keep); if (b.Count == 0) b.Add(0); break; }
                case 9:
                    if (other != null && other.Length > 0)
                    {
                        int i = Below(b.Count), j = Below(other.Length), n = 1 + Below(Math.Min(256, other.Length - j));
                        b.RemoveRange(i, Math.Min(n, b.Count - i));
                        b.InsertRange(i, other.AsSpan(j, n).ToArray());
                    }
                    break;
                case 10: { int i = Below(b.Count); int n = 1 + Below(Math.Min(8, b.Count - i)); for (int k = 0; k < n; k++) b[i + k] = (byte)(Below(2) == 0 ? 0 : 0xff); break; }
                default: JsonMutate(b); break;
            }
        }
        return b.ToArray();
    }

    private void WriteInt(List<byte> b, int width)
    {
        if (b.Count < width) return;
        int i = Below(b.Count - width + 1);
        ulong v = Interesting[Below(Interesting.Length)];
        if (Below(4) == 0) v += (ulong)(Below(5) - 2);
        Span<byte> tmp = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(tmp, v);
        for (int k = 0; k < width; k++) b[i + k] = tmp[k];
    }

    /// <summary>Replace one JSON scalar, array or object (found by a light scan, not a parse) with another kind of value.</summary>
    private void JsonMutate(List<byte> b)
    {
        var text = Encoding.UTF8.GetString(b.ToArray());
        if (text.Length == 0) return;
        int start = Below(text.Length);
        // Find a value start at or after `start`: a digit, '-', '"', '[', '{', 't', 'f', 'n' after ':' ',' or '['.
        for (int i = start; i < text.Length; i++)
        {
            char c = text[i];
            if (i > 0 && text[i - 1] is ':' or ',' or '[' or ' ' && (char.IsDigit(c) || c is '-' or '"' or '[' or '{' or 't' or 'f' or 'n'))
            {
                int end = ValueEnd(text, i);
                if (end <= i) return;
                string repl = Below(8) == 0 ? new string('9', 1 + Below(40)) : JsonValues[Below(JsonValues.Length)];
                if (Below(10) == 0) repl = "[" + string.Join(",", Enumerable.Repeat(repl, 1 + Below(50))) + "]";
                var s = text[..i] + repl + text[end..];
                b.Clear();
                b.AddRange(Encoding.UTF8.GetBytes(s));
                return;
            }
        }
    }

    private static int ValueEnd(string t, int i)
    {
        char c = t[i];
        if (c == '"')
        {
            for (int j = i + 1; j < t.Length; j++)
            {
                if (t[j] == '\\') { j++; continue; }
                if (t[j] == '"') return j + 1;
            }
            return t.Length;
        }
        if (c is '[' or '{')
        {
            int depth = 0;
            bool str = false;
            for (int j = i; j < t.Length; j++)
            {
                char d = t[j];
                if (str) { if (d == '\\') j++; else if (d == '"') str = false; continue; }
                if (d == '"') str = true;
                else if (d is '[' or '{') depth++;
                else if (d is ']' or '}') { if (--depth == 0) return j + 1; }
            }
            return t.Length;
        }
        int k = i;
        while (k < t.Length && t[k] is not (',' or '}' or ']' or ' ' or '\n')) k++;
        return k;
    }
}
