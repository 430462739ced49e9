using System.Text;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Formats.IO;
using XlstmRun.Text;
using XlstmRun.Text.Tokenization;

namespace XlstmRun.Cli;

/// <summary>UTF-8 text in and out, whatever the locale says; one-line errors for unreadable input.</summary>
internal static class TextIO
{
    public static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>A UTF-8 writer on stdout (no BOM); flush it yourself.</summary>
    public static StreamWriter OpenStdout() => new(Terminal.StdStreams.Stdout, Utf8, 1 << 16, leaveOpen: true) { AutoFlush = false };

    /// <summary>All of stdin as UTF-8 text, at most <paramref name="kind"/>'s limit (<see cref="InputLimits"/>).</summary>
    public static string ReadStdin(InputKind kind = InputKind.PromptText)
    {
        return InputFiles.ReadAllText(Terminal.StdStreams.Stdin, kind, "standard input", "input");
    }

    /// <summary>A whole text file ("-" = stdin): a regular file of at most <paramref name="kind"/>'s limit, with one-line errors.</summary>
    public static string ReadFile(string path, InputKind kind = InputKind.PromptText)
    {
        if (path == "-") return ReadStdin(kind);
        return InputFiles.ReadAllText(path, kind, kind == InputKind.PromptText ? "prompt file" : "text file");
    }

    /// <summary>Drops one trailing newline (\n or \r\n), as llama.cpp does for -f files; `echo` adds one.</summary>
    public static string StripOneNewline(string s) =>
        s.EndsWith("\r\n", StringComparison.Ordinal) ? s[..^2] : s.EndsWith('\n') ? s[..^1] : s;

    /// <summary>Whether stdin is a pipe or file (then it is read); "-" or /dev/stdin as a file name reads it instead.</summary>
    public static bool StdinIsData => Console.IsInputRedirected;
}

/// <summary>Loads only the tokenizer: from a model's GGUF metadata or from a tokenizer.json.</summary>
internal static class TokenizerSource
{
    public static XlstmTokenizer Load(string? modelPath, string? tokenizerJson)
    {
        if (modelPath != null && tokenizerJson != null) throw new BadInputException("give either --model or --tokenizer, not both");
        if (tokenizerJson != null) return TokenizerGguf.Build(TokenizerGguf.LoadJson(tokenizerJson), tokenizerJson);
        string path = ModelSession.ResolveModelPath(modelPath);
        using var f = GgufFile.Open(path);
        if (!TokenizerGguf.Has(f)) throw new BadInputException($"{path}: the model has no tokenizer (convert it with a tokenizer.json beside the checkpoint or --tokenizer)");
        return TokenizerGguf.Build(TokenizerGguf.Read(f), path);
    }
}
