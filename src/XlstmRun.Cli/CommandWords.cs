using System.CommandLine;
using XlstmRun.Formats;

namespace XlstmRun.Cli;

/// <summary>
/// What the command line means before System.CommandLine parses it: the first word that is not an option or an
/// option's value names a command. Options given before the command move after it (`xlstm-run -m m.gguf tokenize
/// -p hi` works). A first word that names no command is an error with a suggestion, unless it holds spaces (a quoted
/// prompt, `xlstm-run "Once upon a time"`); prompts are otherwise given with -p, -f, stdin, or after `--`.
/// </summary>
internal static class CommandWords
{
    /// <summary>Other tools' names for our commands (llama.cpp, ollama, habits), used only for suggestions.</summary>
    private static readonly Dictionary<string, string> Synonyms = new(StringComparer.OrdinalIgnoreCase)
    {
        ["run"] = "generate", ["complete"] = "generate", ["completion"] = "generate", ["infer"] = "generate", ["gen"] = "generate",
        ["interactive"] = "chat", ["repl"] = "chat", ["cli"] = "chat",
        ["ppl"] = "perplexity", ["requantize"] = "quantize", ["quant"] = "quantize",
        ["encode"] = "tokenize", ["decode"] = "detokenize", ["benchmark"] = "bench", ["show"] = "info",
    };

    /// <summary>Commands whose positional words are a prompt (their first word is checked like the root's).</summary>
    private static readonly HashSet<string> PromptCommands = ["generate", "chat"];

    public sealed record Prepared(string[] Args, bool DoubleDash);

    /// <summary>Reorders options before the command and rejects unknown command words (BadInputException).</summary>
    public static Prepared Prepare(RootCommand root, string[] args)
    {
        int dd = Array.IndexOf(args, "--");
        var arity = OptionArity(root);
        int first = FirstWord(args, 0, arity);
        if (first < 0) return new Prepared(args, dd >= 0);
        string word = args[first];
        var cmd = Find(root, word);
        if (cmd != null)
        {
            // the command first, then the options that came before it, then the rest
            string[] reordered = [word, .. args[..first], .. args[(first + 1)..]];
            if (PromptCommands.Contains(cmd.Name))
            {
                int next = FirstWord(reordered, 1, arity);
                if (next > 0) CheckPromptWord(root, reordered[next], cmd.Name);
            }
            return new Prepared(reordered, dd >= 0);
        }
        CheckPromptWord(root, word, null);
        return new Prepared(args, dd >= 0);
    }

    /// <summary>The command named <paramref name="word"/> (exact name or alias), or null.</summary>
    public static Command? Find(RootCommand root, string word) =>
        root.Subcommands.FirstOrDefault(c => c.Name == word || c.Aliases.Contains(word));

    /// <summary>A first word without spaces that names no command is a mistake, not a prompt.</summary>
    private static void CheckPromptWord(RootCommand root, string word, string? command)
    {
        if (word.Any(char.IsWhiteSpace)) return;
        string shown = word.Length > 40 ? word[..40] + "..." : word;
        string? hint = Suggest(root, word);
        string where = command == null ? "" : $" after '{command}'";
        string prompt = $"a prompt goes in -p \"...\", -f FILE, stdin, or after --";
        if (command == null)
            throw new BadInputException(hint != null
                ? $"unknown command '{shown}': did you mean '{hint}'? ({prompt}; commands: xlstm-run help)"
                : $"unknown command '{shown}' ({prompt}; commands: xlstm-run help)");
        throw new BadInputException($"unexpected word '{shown}'{where} ({prompt})");
    }

    /// <summary>The command the word was probably meant to be: a known synonym, a close spelling, or a prefix.</summary>
    public static string? Suggest(RootCommand root, string word)
    {
        var names = root.Subcommands.Where(c => !c.Hidden).Select(c => c.Name).ToList();
        if (Synonyms.TryGetValue(word, out var syn) && names.Contains(syn)) return syn;
        string w = word.ToLowerInvariant();
        string? best = null;
        int bestD = int.MaxValue;
        foreach (var n in names)
        {
            int d = Distance(w, n);
            if (d < bestD) (best, bestD) = (n, d);
        }
        if (best != null && bestD <= Math.Max(1, Math.Min(best.Length, w.Length) / 3)) return best;
        if (w.Length >= 3)
        {
            var pre = names.Where(n => n.StartsWith(w, StringComparison.Ordinal) || w.StartsWith(n, StringComparison.Ordinal)).ToList();
            if (pre.Count == 1) return pre[0];
        }
        return null;
    }

    /// <summary>The closest option name of <paramref name="cmd"/> to <paramref name="given"/>, if close.</summary>
    public static string? SuggestOption(Command cmd, string given)
    {
        string? best = null;
        int bestD = int.MaxValue;
        foreach (var o in cmd.Options.Where(o => !o.Hidden))
            foreach (var n in o.Aliases.Append(o.Name).Where(n => n.StartsWith("--", StringComparison.Ordinal)))
            {
                int d = Distance(given, n);
                if (d < bestD) (best, bestD) = (n, d);
            }
        return best != null && bestD <= Math.Max(1, best.Length / 4) ? best : null;
    }

    private enum Takes { Nothing, Value, OptionalBool }

    /// <summary>Index of the first token that is neither an option nor an option's value, before any "--"; -1 if none.</summary>
    private static int FirstWord(string[] args, int start, Dictionary<string, Takes> options)
    {
        for (int i = start; i < args.Length; i++)
        {
            string a = args[i];
            if (a == "--") return -1;
            if (a.Length > 1 && a[0] == '-' && !IsNumber(a))
            {
                if (a.IndexOfAny(['=', ':']) > 0) continue;
                if (!options.TryGetValue(a, out var takes))
                {
                    // a long option no command has: say so now, rather than read its value as a command word
                    if (a.StartsWith("--", StringComparison.Ordinal)) throw UnknownOption(a, options.Keys);
                    continue;
                }
                if (takes == Takes.Value || (takes == Takes.OptionalBool && i + 1 < args.Length && args[i + 1] is "true" or "false")) i++;
                continue;
            }
            return i;
        }
        return -1;
    }

    private static BadInputException UnknownOption(string given, IEnumerable<string> known)
    {
        string? best = known.Where(n => n.StartsWith("--", StringComparison.Ordinal)).MinBy(n => Distance(given, n));
        bool close = best != null && Distance(given, best) <= Math.Max(1, best.Length / 4);
        return new BadInputException($"unknown option '{given}'" + (close ? $": did you mean {best}?" : " (see xlstm-run --help)"));
    }

    private static bool IsNumber(string s) => double.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out _);

    /// <summary>Every option name and alias of the root and the commands, with what follows it (the first one seen wins).</summary>
    private static Dictionary<string, Takes> OptionArity(RootCommand root)
    {
        var d = new Dictionary<string, Takes>(StringComparer.Ordinal);
        foreach (var c in new Command[] { root }.Concat(root.Subcommands))
            foreach (var o in c.Options)
            {
                var t = o.ValueType == typeof(bool) ? Takes.OptionalBool : o.Arity.MaximumNumberOfValues > 0 ? Takes.Value : Takes.Nothing;
                foreach (var n in o.Aliases.Append(o.Name)) d.TryAdd(n, t);
            }
        return d;
    }

    /// <summary>Optimal string alignment distance (Levenshtein plus adjacent swaps).</summary>
    public static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        return d[a.Length, b.Length];
    }
}
