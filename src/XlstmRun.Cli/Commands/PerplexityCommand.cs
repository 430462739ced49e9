using System.CommandLine;
using System.Diagnostics;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;

namespace XlstmRun.Cli.Commands;

/// <summary>
/// Perplexity over a text file, llama-perplexity style. Protocol (the same as scripts/train_default_model.py uses with
/// transformers): tokenize the whole text without BOS; cut it into consecutive windows of N tokens (the last may be
/// shorter); for each window w, from a fresh state, feed [BOS] + w[..^1] and score every token of w; perplexity =
/// exp(total NLL / token count), NLL from a log-softmax over the model's full output vocabulary, summed in float64.
/// With --kl-base, the same windows also run through a base model (e.g. the F32 file) and the mean
/// KL(p_base ‖ p_model) per token is reported.
/// </summary>
public static class PerplexityCommand
{
    public static Command Create()
    {
        var mo = new ModelOptions();
        var file = new Option<string>("--file", "-f") { Description = "Text file to score", Required = true };
        var ctx = new Option<int>("--context", "-c") { Description = "Window length N in tokens; each window starts from a fresh state with BOS", DefaultValueFactory = _ => 512 };
        var kl = new Option<string?>("--kl-base") { Description = "Base model (e.g. the F32 file) to compare against: reports the mean KL divergence per token" };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON" };
        var maxTok = new Option<int>("--max-tokens") { Description = "Score at most this many tokens (0 = all)", DefaultValueFactory = _ => 0 };
        var cmd = new Command("perplexity", "Perplexity of a model over a text file (and optionally KL divergence against a base model).");
        mo.AddTo(cmd, state: false);
        cmd.Options.Add(file);
        cmd.Options.Add(ctx);
        cmd.Options.Add(kl);
        cmd.Options.Add(json);
        cmd.Options.Add(maxTok);
        cmd.SetAction(pr => Program.Run(() =>
        {
            string path = pr.GetValue(file)!;
            int n = pr.GetValue(ctx);
            if (n < 1) throw new BadInputException("--context must be at least 1");
            string text = TextIO.ReadFile(path, Formats.IO.InputKind.PerplexityText);
            using var s = ModelSession.Open(pr, mo, needTokenizer: true, maxBatch: Math.Min(512, n + 1));
            var tokens = s.Tokenizer!.Encode(text);
            if (pr.GetValue(maxTok) is int mt && mt > 0 && tokens.Length > mt) tokens = tokens[..mt];
            if (tokens.Length == 0) throw new BadInputException($"{path}: no tokens in the file");
            ModelSession? baseModel = null;
            if (pr.GetValue(kl) is string kp)
            {
                var bf = GgufFile.Open(kp);
                var bc = ModelConfig.FromGguf(bf);
                if (bc.Vocab != s.Config.Vocab) throw new BadInputException($"{kp}: vocabulary {bc.Vocab} differs from the model's {s.Config.Vocab}");
                var be = BackendFactory.Create(pr.GetValue(mo.Backend) ?? "auto", pr.GetValue(mo.Device), pr.GetValue(mo.Threads));
                baseModel = new ModelSession { File = bf, Config = bc, Backend = be, Runner = new ModelRunner(bf, be, Math.Min(512, n + 1), bc) };
            }
            using var _ = baseModel;
            int V = s.Config.Vocab, windows = (tokens.Length + n - 1) / n;
            var logits = new float[(long)n * V];
            var baseLogits = baseModel != null ? new float[(long)n * V] : null;
            var input = new int[n];
            double nll = 0, klSum = 0;
            long count = 0;
            var sw = Stopwatch.StartNew();
            bool tty = !Console.IsErrorRedirected;
            for (int w = 0; w < windows; w++)
            {
                int start = w * n, len = Math.Min(n, tokens.Length - start);
                input[0] = s.Config.BosId;
                Array.Copy(tokens, start, input, 1, len - 1);
                s.Runner.ResetState();
                s.Runner.Forward(input.AsSpan(0, len), LogitsMode.All, logits);
                if (baseModel != null)
                {
                    baseModel.Runner.ResetState();
                    baseModel.Runner.Forward(input.AsSpan(0, len), LogitsMode.All, baseLogits);
                }
                for (int t = 0; t < len; t++)
                {
                    var row = logits.AsSpan(t * V, V);
                    double lse = LogSumExp(row);
                    nll += lse - row[tokens[start + t]];
                    if (baseLogits != null) klSum += Kl(baseLogits.AsSpan(t * V, V), row, lse);
                }
                count += len;
                string line = $"perplexity: window {w + 1}/{windows}, {count} tokens, ppl {Math.Exp(nll / count):F4}, {count / sw.Elapsed.TotalSeconds:F0} tok/s";
                if (tty) Console.Error.Write("\r" + line + "   ");
                else if ((w + 1) * 10 / windows != w * 10 / windows || w + 1 == windows) Console.Error.WriteLine(line);
            }
            if (tty) Console.Error.WriteLine();
            double ppl = Math.Exp(nll / count);
            if (pr.GetValue(json))
            {
                Console.WriteLine($"{{\"perplexity\":{ppl:R},\"tokens\":{count},\"windows\":{windows},\"context\":{n},\"mean_nll\":{nll / count:R}" +
                    (baseModel != null ? $",\"mean_kl\":{klSum / count:R}" : "") + "}");
            }
            else
            {
                Console.WriteLine($"perplexity = {ppl:F4} over {count} tokens ({windows} windows of {n}, {s.Backend.Name})");
                if (baseModel != null) Console.WriteLine($"mean KL(base || model) = {klSum / count:E4} nats per token");
            }
            return 0;
        }));
        return cmd;
    }

    private static double LogSumExp(ReadOnlySpan<float> x)
    {
        float m = float.NegativeInfinity;
        foreach (var v in x) m = MathF.Max(m, v);
        double sum = 0;
        foreach (var v in x) sum += Math.Exp(v - m);
        return m + Math.Log(sum);
    }

    /// <summary>KL(softmax(p) ‖ softmax(q)), given q's log-sum-exp.</summary>
    private static double Kl(ReadOnlySpan<float> p, ReadOnlySpan<float> q, double lseQ)
    {
        double lseP = LogSumExp(p), kl = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double lp = p[i] - lseP;
            kl += Math.Exp(lp) * (lp - (q[i] - lseQ));
        }
        return kl;
    }
}
