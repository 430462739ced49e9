using System.CommandLine;
using System.Runtime.InteropServices;
using XlstmRun.Formats;
using XlstmRun.Formats.IO;
using XlstmRun.Model;

namespace XlstmRun.Cli.Commands;

internal static class LogitsCommand
{
    public static Command Create()
    {
        var mo = new ModelOptions();
        var ids = new Option<string?>("--ids") { Description = "Token ids, comma separated (no BOS is added)" };
        var idsFile = new Option<string?>("--ids-file") { Description = "File with token ids (separated by commas, spaces or newlines; a JSON array works)" };
        var output = new Option<string>("--output", "-o") { Description = "Output .npy file (- = stdout): float32 logits [T, vocab] after the output soft-cap; an existing file needs --force", Required = true };
        var cmd = new Command("logits", "Feed token ids and write the logits of every position as a NumPy .npy file (for scripts and tests).");
        mo.AddTo(cmd);
        cmd.Options.Add(ids);
        cmd.Options.Add(idsFile);
        cmd.Options.Add(output);
        cmd.SetAction(pr => Program.Run(() =>
        {
            var tokens = Ids.FromOptions(pr.GetValue(ids), pr.GetValue(idsFile));
            var idsIn = new InputRole(pr.GetValue(idsFile), "ids file");
            InputRole[] inputs = [new(ModelSession.ResolveModelPath(pr.GetValue(mo.Model)), "model"), new(pr.GetValue(mo.LoadState), "state file"), idsIn];
            var outFile = OutputFile.Check(pr.GetValue(output)!, "-o", pr.GetValue(mo.Force), inputs);
            outFile.CheckBinaryStdout();
            var saveOut = mo.CheckSaveState(pr, stdoutTaken: false, idsIn);
            OutputFile.CheckDistinct(outFile, saveOut);
            using var s = ModelSession.Open(pr, mo);
            Ids.CheckRange(tokens, s.Config.Vocab);
            int vocab = s.Config.Vocab;
            // Streamed in slices (the runner splits each into its own batches): memory stays at one slice of logits
            // whatever the number of ids.
            const int slice = 256;
            var logits = new float[(long)slice * vocab];
            outFile.Write(stream =>
            {
                Npy.WriteHeader(stream, tokens.Length, vocab);
                for (int start = 0; start < tokens.Length; start += slice)
                {
                    int n = Math.Min(slice, tokens.Length - start);
                    var part = logits.AsSpan(0, n * vocab);
                    s.Runner.Forward(tokens.AsSpan(start, n), LogitsMode.All, part);
                    stream.Write(MemoryMarshal.AsBytes(part));
                }
            });
            s.SaveStateIfAsked(saveOut);
            return 0;
        }));
        return cmd;
    }
}
