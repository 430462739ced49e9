namespace XlstmRun.Text.Tokenization;

/// <summary>
/// GPT-2's <c>bytes_to_unicode</c> table: every byte maps to one printable char. Bytes '!'..'~', '¡'..'¬' and
/// '®'..'ÿ' map to themselves; the other 68 bytes map, in byte order, to U+0100, U+0101, ... (so space = 'Ġ' U+0120,
/// '\n' = 'Ċ' U+010A).
/// </summary>
internal static class ByteLevelAlphabet
{
    /// <summary>byte -> char.</summary>
    public static readonly char[] ByteToChar = BuildByteToChar();

    /// <summary>char (all below U+0144) -> byte, or -1.</summary>
    private static readonly short[] CharToByteTable = BuildCharToByte();

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)(0x100 + next++);
        }
        return map;
    }

    private static short[] BuildCharToByte()
    {
        var table = new short[0x144];
        Array.Fill(table, (short)-1);
        for (int b = 0; b < 256; b++)
        {
            table[ByteToChar[b]] = (short)b;
        }
        return table;
    }

    /// <summary>The byte a byte-level char stands for, or -1 if the char is not in the alphabet.</summary>
    public static int CharToByte(char c) => c < CharToByteTable.Length ? CharToByteTable[c] : -1;

    /// <summary>
    /// Bytes of a vocabulary token the way Hugging Face's ByteLevel decoder produces them: every char mapped back
    /// through the table; if any char is outside the alphabet, the token's own UTF-8 bytes instead.
    /// </summary>
    public static byte[] TokenToBytes(string token)
    {
        var bytes = new byte[token.Length];
        for (int i = 0; i < token.Length; i++)
        {
            int b = CharToByte(token[i]);
            if (b < 0)
            {
                return System.Text.Encoding.UTF8.GetBytes(token);
            }
            bytes[i] = (byte)b;
        }
        return bytes;
    }
}
