using System.CommandLine;
using XlstmRun.Formats;

namespace XlstmRun.Cli.Commands;

/// <summary>`tokenize` (text → JSON ids) and `detokenize` (ids → text), with the tokenizer stored in a model.</summary>
internal static class TokenizeCommand
{
    private static Option<string?> ModelOpt() => new("--model", "-m") { Description = "GGUF model whose tokenizer to use (default: $XLSTM_MODEL, then the installed default model)", HelpName = "FILE" };
    private static Option<string?> JsonOpt() => new("--tokenizer") { Description = "Use a Hugging Face tokenizer.json instead of a model's tokenizer", HelpName = "FILE" };

    public static Command Create()
    {
        var model = ModelOpt();
        var tokJson = JsonOpt();
        var prompt = new Option<string?>("--prompt", "-p") { Description = "Text to tokenize (else -f FILE, else stdin), taken exactly as given", HelpName = "TEXT" };
        var file = new Option<string?>("--file", "-f") { Description = "Read the text from a file, exactly (no newline is dropped)", HelpName = "FILE" };
        var bos = new Option<bool>("--bos") { Description = "Put BOS (<|endoftext|>, id 0) first, as generation does for a fresh state" };
        var pieces = new Option<bool>("--show-pieces") { Description = "One token per line, llama-tokenize style: id -> 'piece' (control characters and partial UTF-8 as escapes)" };
        var count = new Option<bool>("--count") { Description = "Print only the number of tokens" };
        var cmd = new Command("tokenize", "Print the token ids of a text as a JSON array (no BOS unless --bos).") { model, tokJson, prompt, file, bos, pieces, count };
        cmd.SetAction(pr => Program.Run(() =>
        {
            string? p = pr.GetValue(prompt), f = pr.GetValue(file);
            if (p != null && f != null) throw new BadInputException("give either -p TEXT or -f FILE, not both");
            string text = p ?? (f != null ? TextIO.ReadFile(f)
                : TextIO.StdinIsData ? TextIO.ReadStdin()
                : throw new BadInputException("no text given: use -p TEXT, -f FILE or pipe text to stdin"));
            var tok = TokenizerSource.Load(pr.GetValue(model), pr.GetValue(tokJson));
            var ids = tok.Encode(text);
            if (pr.GetValue(bos)) ids = [tok.BosId, .. ids];
            if (pr.GetValue(pieces) && pr.GetValue(count)) throw new BadInputException("give --show-pieces or --count, not both");
            using var o = TextIO.OpenStdout();
            if (pr.GetValue(count)) o.WriteLine(ids.Length);
            else if (pr.GetValue(pieces))
                foreach (var id in ids) o.WriteLine($"{id,6} -> '{Piece(tok.GetTokenBytes(id))}'");
            else o.WriteLine("[" + string.Join(",", ids) + "]");
            return ExitCodes.Ok;
        }));
        return cmd;
    }

    /// <summary>
    /// A token's bytes as readable text: UTF-8 characters as they are, except \n \r \t \\ \', other control characters
    /// and invisible format characters, which are escaped; bytes that are not (whole) UTF-8 characters as \xNN.
    /// </summary>
    public static string Piece(ReadOnlySpan<byte> bytes)
    {
        var sb = new System.Text.StringBuilder();
        while (!bytes.IsEmpty)
        {
            var status = System.Text.Rune.DecodeFromUtf8(bytes, out var r, out int used);
            if (status != System.Buffers.OperationStatus.Done)
            {
                sb.Append($"\\x{bytes[0]:x2}");
                bytes = bytes[1..];
                continue;
            }
            bytes = bytes[used..];
            switch (r.Value)
            {
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\\': sb.Append("\\\\"); break;
                case '\'': sb.Append("\\'"); break;
                default:
                    if (System.Text.Rune.IsControl(r) || System.Text.Rune.GetUnicodeCategory(r) is System.Globalization.UnicodeCategory.Format
                        or System.Globalization.UnicodeCategory.LineSeparator or System.Globalization.UnicodeCategory.ParagraphSeparator)
                        sb.Append(r.Value < 0x80 ? $"\\x{r.Value:x2}" : $"\\u{r.Value:x4}");
                    else sb.Append(r.ToString());
                    break;
            }
        }
        return sb.ToString();
    }

    public static Command CreateDetokenize()
    {
        var model = ModelOpt();
        var tokJson = JsonOpt();
        var ids = new Option<string?>("--ids") { Description = "Token ids, separated by commas or spaces (a JSON array works); else read from stdin", HelpName = "IDS" };
        var cmd = new Command("detokenize", "Print the text of token ids, exactly (no newline is added when stdout is a pipe or file).") { model, tokJson, ids };
        cmd.SetAction(pr => Program.Run(() =>
        {
            string? given = pr.GetValue(ids);
            string src = given ?? (TextIO.StdinIsData ? TextIO.ReadStdin()
                : throw new BadInputException("no token ids given: use --ids 1,2,3 or pipe them to stdin"));
            var list = Ids.Parse(src, given != null ? "--ids" : "stdin");
            var tok = TokenizerSource.Load(pr.GetValue(model), pr.GetValue(tokJson));
            Ids.CheckRange(list, tok.VocabSize);
            string text = tok.Decode(list);
            using var o = TextIO.OpenStdout();
            o.Write(text);
            if (!Console.IsOutputRedirected && !text.EndsWith('\n')) o.WriteLine();
            return ExitCodes.Ok;
        }));
        return cmd;
    }
}
