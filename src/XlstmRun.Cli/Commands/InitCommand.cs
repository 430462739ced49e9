using System.CommandLine;
using XlstmRun.Formats;
using XlstmRun.Formats.IO;
using XlstmRun.Model;
using XlstmRun.Model.Conversion;
using XlstmRun.Text;

namespace XlstmRun.Cli.Commands;

internal static class InitCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--output", "-o") { Description = "Output GGUF file (- = stdout)", Required = true };
        var preset = new Option<string>("--preset") { Description = "Model shape: tiny (64 hidden, 2 blocks), 1b, or 7b (the xLSTM 7B shape)", DefaultValueFactory = _ => "tiny" };
        preset.AcceptOnlyFromAmong("tiny", "1b", "7b");
        var hidden = new Option<int?>("--hidden") { Description = "Hidden size (overrides the preset)" };
        var blocks = new Option<int?>("--blocks") { Description = "Number of blocks (overrides the preset)" };
        var heads = new Option<int?>("--heads") { Description = "Number of mLSTM heads (overrides the preset)" };
        var vocab = new Option<int?>("--vocab") { Description = "Vocabulary size (overrides the preset; default: the tokenizer's, rounded up to 64)" };
        var type = new Option<string>("--type") { Description = $"Weight type: {GgmlTypes.NameList()}", DefaultValueFactory = _ => "f32" };
        type.AcceptOnlyFromAmong([.. GgmlTypes.All.Select(t => t.Name)]);
        var tok = new Option<string?>("--tokenizer") { Description = "tokenizer.json to store in the model" };
        var seed = new Option<ulong>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 42UL };
        var force = new Option<bool>("--force") { Description = "Overwrite the output file if it exists" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "No progress output" };
        var cmd = new Command("init", "Write a model of any shape with random weights (for tests and benchmarks).")
        {
            output, preset, hidden, blocks, heads, vocab, type, tok, seed, force, quiet,
        };
        cmd.SetAction(pr => Program.Run(() =>
        {
            string outPath = pr.GetValue(output)!;
            var outFile = OutputFile.Check(outPath, "-o", pr.GetValue(force), [new(pr.GetValue(tok), "tokenizer")]);
            outFile.CheckBinaryStdout();
            var baseCfg = RandomModel.Preset(pr.GetValue(preset)!);
            var tokenizer = pr.GetValue(tok) is string tp ? TokenizerGguf.LoadJson(tp) : null;
            int v = pr.GetValue(vocab) ?? (tokenizer != null ? (tokenizer.Tokens.Count + 63) / 64 * 64 : baseCfg.Vocab);
            int h = pr.GetValue(hidden) ?? baseCfg.Hidden, nh = pr.GetValue(heads) ?? baseCfg.Heads;
            if (h <= 0 || nh <= 0 || (pr.GetValue(blocks) ?? 1) <= 0 || v <= 0) throw new BadInputException("sizes must be positive");
            if (h / 2 % nh != 0) throw new BadInputException($"hidden/2 = {h / 2} is not divisible by heads = {nh}");
            if (tokenizer != null && tokenizer.Tokens.Count > v) throw new BadInputException($"--vocab {v} is smaller than the tokenizer's {tokenizer.Tokens.Count} tokens");
            var cfg = RandomModel.Shape(h, pr.GetValue(blocks) ?? baseCfg.Blocks, nh, v);
            var progress = pr.GetValue(quiet) ? null : new ConsoleProgress("init");
            var wanted = GgmlTypes.Parse(pr.GetValue(type)!);
            ModelWriter.Write(outFile, cfg, wanted, RandomModel.Sources(cfg, pr.GetValue(seed)), w =>
            {
                w.AddString("general.name", $"xlstm-random-{cfg.Hidden}x{cfg.Blocks}");
                if (tokenizer != null) TokenizerGguf.Write(w, tokenizer);
            }, progress);
            progress?.Done();
            Console.Error.WriteLine($"wrote {(outFile.IsStdout ? "standard output" : outPath)}: {cfg.Blocks} blocks, hidden {cfg.Hidden}, heads {cfg.Heads}, ffn {cfg.FfnDim}, vocab {cfg.Vocab}, {GgmlTypes.Name(wanted)}" +
                (outFile.IsStdout ? "" : $", {new FileInfo(outPath).Length / 1048576.0:F1} MiB"));
            return 0;
        }));
        return cmd;
    }
}
