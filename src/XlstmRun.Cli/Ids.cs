using System.Text.RegularExpressions;
using XlstmRun.Formats;
using XlstmRun.Formats.IO;

namespace XlstmRun.Cli;

internal static partial class Ids
{
    [GeneratedRegex(@"[\s,\[\]]+")]
    private static partial Regex Separators();

    /// <summary>Parse "1,2,3" (or whitespace/JSON-array separated) into ids.</summary>
    public static int[] Parse(string text, string what)
    {
        var parts = Separators().Split(text).Where(p => p.Length > 0).ToArray();
        var res = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], out res[i]) || res[i] < 0) throw new BadInputException($"{what}: '{parts[i]}' is not a token id");
        if (res.Length == 0) throw new BadInputException($"{what}: no token ids given");
        return res;
    }

    public static int[] FromOptions(string? ids, string? idsFile)
    {
        if (ids != null && idsFile != null) throw new BadInputException("give either --ids or --ids-file, not both");
        if (ids != null) return Parse(ids, "--ids");
        if (idsFile != null) return Parse(InputFiles.ReadAllText(idsFile, InputKind.IdsFile, "ids file"), idsFile);
        throw new BadInputException("no token ids given (use --ids 1,2,3 or --ids-file FILE)");
    }

    public static void CheckRange(int[] ids, int vocab)
    {
        foreach (var id in ids)
            if (id >= vocab) throw new BadInputException($"token id {id} is out of range (vocabulary size {vocab})");
    }
}
