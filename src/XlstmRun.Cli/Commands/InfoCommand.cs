using System.CommandLine;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Text;

namespace XlstmRun.Cli.Commands;

internal static class InfoCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model", "-m") { Description = "GGUF model file (default: $XLSTM_MODEL, then the default model; 'file:' shows which)", HelpName = "FILE" };
        var devices = new Option<bool>("--devices") { Description = "List the Vulkan and OpenCL devices found (or why none)" };
        var cmd = new Command("info", "Show a model's architecture, shapes, tensor types, size and state size, or the compute devices.") { model, devices };
        cmd.SetAction(pr => Program.Run(() =>
        {
            if (pr.GetValue(devices))
            {
                foreach (var line in Backends.BackendProviders.Describe()) Console.WriteLine(line);
                return 0;
            }
            string path = ModelSession.ResolveModelPath(pr.GetValue(model));
            using var f = GgufFile.Open(path);
            var c = ModelConfig.FromGguf(f);
            var byType = f.TensorNames.Select(n => f.Tensor(n)).GroupBy(t => t.Type).OrderByDescending(g => g.Sum(t => t.Bytes));
            long bytes = f.TensorNames.Sum(n => f.Tensor(n).Bytes);
            long parms = f.TensorNames.Sum(n => f.Tensor(n).Elements);
            Console.WriteLine($"file:          {path}");
            Console.WriteLine($"name:          {Formats.IO.TerminalText.Escape(f.Metadata.TryGetString("general.name") ?? "-")}");
            Console.WriteLine($"architecture:  {ModelConfig.Arch} (GGUF v{f.Version})");
            Console.WriteLine($"shape:         hidden {c.Hidden}, blocks {c.Blocks}, heads {c.Heads} (qk head dim {c.DQk}, v head dim {c.DV}), ffn {c.FfnDim}, vocab {c.Vocab}");
            Console.WriteLine($"constants:     gate soft-cap {c.GateSoftCap}, logit soft-cap {c.LogitSoftCap}, norm eps {c.NormEps}, cell eps {c.CellEps}, chunk {c.ChunkSize}");
            Console.WriteLine($"parameters:    {parms:N0} ({Units.Count(parms)})");
            Console.WriteLine($"weights:       {bytes:N0} bytes ({Units.Bytes(bytes)}) in {f.TensorNames.Count} tensors: " +
                string.Join(", ", byType.Select(g => $"{GgmlTypes.Name(g.Key)} {g.Count()} tensors {Units.Bytes(g.Sum(t => t.Bytes))}")));
            Console.WriteLine($"state:         {c.StateFloats:N0} floats = {Units.Bytes(c.StateFloats * 4L)} per sequence (float32, constant in length)");
            if (TokenizerGguf.Has(f))
            {
                var t = TokenizerGguf.Read(f);
                Console.WriteLine($"tokenizer:     byte-level BPE, {t.Tokens.Count} tokens, {t.Merges.Count} merges, BOS {t.BosId}, EOS {t.EosId}, NFC {(t.Nfc ? "on" : "off")}");
            }
            else Console.WriteLine("tokenizer:     none (token ids only)");
            return 0;
        }));
        return cmd;
    }
}
