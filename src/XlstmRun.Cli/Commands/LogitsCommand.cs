using System.CommandLine;
using XlstmRun.Formats;
using XlstmRun.Model;

namespace XlstmRun.Cli.Commands;

public static class LogitsCommand
{
    public static Command Create()
    {
        var mo = new ModelOptions();
        var ids = new Option<string?>("--ids") { Description = "Token ids, comma separated (no BOS is added)" };
        var idsFile = new Option<string?>("--ids-file") { Description = "File with token ids (separated by commas, spaces or newlines; a JSON array works)" };
        var output = new Option<string>("--output", "-o") { Description = "Output .npy file: float32 logits [T, vocab] after the output soft-cap", Required = true };
        var cmd = new Command("logits", "Feed token ids and write the logits of every position as a NumPy .npy file (for scripts and tests).");
        mo.AddTo(cmd);
        cmd.Options.Add(ids);
        cmd.Options.Add(idsFile);
        cmd.Options.Add(output);
        cmd.SetAction(pr => Program.Run(() =>
        {
            var tokens = Ids.FromOptions(pr.GetValue(ids), pr.GetValue(idsFile));
            string outPath = pr.GetValue(output)!;
            OutputPath.Check(outPath, force: true);
            using var s = ModelSession.Open(pr, mo);
            Ids.CheckRange(tokens, s.Config.Vocab);
            var logits = new float[(long)tokens.Length * s.Config.Vocab];
            s.Runner.Forward(tokens, LogitsMode.All, logits);
            Npy.WriteFile(outPath, logits, tokens.Length, s.Config.Vocab);
            s.SaveStateIfAsked(pr, mo);
            return 0;
        }));
        return cmd;
    }
}
