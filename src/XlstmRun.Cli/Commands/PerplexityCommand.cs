using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;

namespace XlstmRun.Cli.Commands;

/// <summary>
/// Perplexity over a text file, llama-perplexity style. Protocol (the same as scripts/train_default_model.py uses with
/// transformers): tokenize the whole text without BOS; cut it into consecutive windows of N tokens (the last may be
/// shorter); for each window w, from a fresh state, feed [BOS] + w[..^1] and score every token of w; perplexity =
/// exp(total NLL / token count), NLL from a log-softmax over the model's full output vocabulary, summed in float64.
/// The ± figures are standard errors over tokens (llama-perplexity's): of the mean NLL, carried to the perplexity as
/// ppl · se(NLL). With --kl-base, the same windows also run through a base model (e.g. the F32 file) and
/// llama-perplexity's KL statistics are reported: KL(p_base ‖ p_model) per token (mean ± se, median, 99th percentile,
/// maximum) and how often both models rank the same token first (top-1 agreement).
/// </summary>
internal static class PerplexityCommand
{
    public static Command Create()
    {
        var mo = new ModelOptions();
        var file = new Option<string>("--file", "-f") { Description = "Text file to score", Required = true };
        var ctx = new Option<int>("--context", "-c", "--ctx-size") { Description = "Window length N in tokens; each window starts from a fresh state with BOS", DefaultValueFactory = _ => 512, HelpName = "N" };
        var kl = new Option<string?>("--kl-base") { Description = "Base model (e.g. the F32 file) to compare against: KL divergence per token (mean, median, 99th percentile, max) and top-1 agreement", HelpName = "FILE" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "No progress on stderr" };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON" };
        var maxTok = new Option<int>("--max-tokens") { Description = "Score at most this many tokens (0 = all)", DefaultValueFactory = _ => 0 };
        var cmd = new Command("perplexity", "Perplexity of a model over a text file (and optionally KL divergence against a base model).");
        mo.AddTo(cmd, state: false);
        cmd.Options.Add(file);
        cmd.Options.Add(ctx);
        cmd.Options.Add(kl);
        cmd.Options.Add(json);
        cmd.Options.Add(maxTok);
        cmd.Options.Add(quiet);
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
                var be = mo.CreateBackend(pr, profile: false);
                baseModel = new ModelSession { File = bf, Config = bc, Backend = be, Runner = new ModelRunner(bf, be, Math.Min(512, n + 1), bc) };
            }
            using var _ = baseModel;
            int V = s.Config.Vocab, windows = (tokens.Length + n - 1) / n;
            var logits = new float[(long)n * V];
            var baseLogits = baseModel != null ? new float[(long)n * V] : null;
            var input = new int[n];
            var nlls = new double[tokens.Length];
            var kls = baseModel != null ? new double[tokens.Length] : null;
            double baseNll = 0, nllSum = 0;
            long count = 0, sameTop = 0;
            var sw = Stopwatch.StartNew();
            bool tty = !Console.IsErrorRedirected, progress = !pr.GetValue(quiet);
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
                    nlls[count + t] = lse - row[tokens[start + t]];
                    nllSum += nlls[count + t];
                    if (baseLogits != null)
                    {
                        var b = baseLogits.AsSpan(t * V, V);
                        double lseB = LogSumExp(b);
                        baseNll += lseB - b[tokens[start + t]];
                        kls![count + t] = Kl(b, lseB, row, lse);
                        if (ArgMax(b) == ArgMax(row)) sameTop++;
                    }
                }
                count += len;
                if (!progress) continue;
                string line = $"perplexity: window {w + 1}/{windows}, {count} tokens, ppl {Math.Exp(nllSum / count):F4}, {count / sw.Elapsed.TotalSeconds:F0} tok/s";
                if (tty) Console.Error.Write("\r" + line + "   ");
                else if ((w + 1) * 10 / windows != w * 10 / windows || w + 1 == windows) Console.Error.WriteLine(line);
            }
            if (tty && progress) Console.Error.WriteLine();
            var nll = Stats.Of(nlls);
            double ppl = Math.Exp(nll.Mean), pplSe = ppl * nll.StandardError;
            var klStats = kls != null ? Stats.Of(kls) : null;
            double top1 = (double)sameTop / count, top1Se = Math.Sqrt(top1 * (1 - top1) / count);
            double pplBase = Math.Exp(baseNll / count);
            var ci = CultureInfo.InvariantCulture;
            if (pr.GetValue(json))
            {
                using var o = TextIO.OpenStdout();
                o.Flush();
                using (var jw = new Utf8JsonWriter(o.BaseStream, JsonStrings.WriterOptions))
                {
                    jw.WriteStartObject();
                    jw.WriteNumber("perplexity", ppl);
                    jw.WriteNumber("perplexity_se", pplSe);
                    jw.WriteNumber("tokens", count);
                    jw.WriteNumber("windows", windows);
                    jw.WriteNumber("context", n);
                    jw.WriteNumber("mean_nll", nll.Mean);
                    jw.WriteNumber("mean_nll_se", nll.StandardError);
                    if (klStats != null)
                    {
                        jw.WriteNumber("base_perplexity", pplBase);
                        jw.WriteNumber("mean_kl", klStats.Mean);
                        jw.WriteNumber("mean_kl_se", klStats.StandardError);
                        jw.WriteNumber("median_kl", klStats.Percentile(0.5));
                        jw.WriteNumber("p99_kl", klStats.Percentile(0.99));
                        jw.WriteNumber("max_kl", klStats.Max);
                        jw.WriteNumber("top1_agreement", top1);
                        jw.WriteNumber("top1_agreement_se", top1Se);
                    }
                    jw.WriteEndObject();
                }
                o.BaseStream.Write("\n"u8);
            }
            else
            {
                Console.WriteLine(string.Format(ci, "perplexity = {0:F4} ± {1:F4} over {2} tokens ({3} windows of {4}, {5})", ppl, pplSe, count, windows, n, s.Backend.Name));
                if (klStats != null)
                {
                    Console.WriteLine(string.Format(ci, "base perplexity = {0:F4}; ratio model/base = {1:F5}", pplBase, ppl / pplBase));
                    Console.WriteLine(string.Format(ci, "KL(base || model) per token, nats: mean {0:E4} ± {1:E2}, median {2:E4}, 99th percentile {3:E4}, max {4:E4}",
                        klStats.Mean, klStats.StandardError, klStats.Percentile(0.5), klStats.Percentile(0.99), klStats.Max));
                    Console.WriteLine(string.Format(ci, "top-1 agreement: {0:F3} ± {1:F3} % of tokens", 100 * top1, 100 * top1Se));
                }
            }
            return 0;
        }));
        return cmd;
    }

    /// <summary>log Σ exp(x), in float64 throughout (the differences to the maximum too: small KL values need them exact).</summary>
    private static double LogSumExp(ReadOnlySpan<float> x)
    {
        double m = double.NegativeInfinity;
        foreach (var v in x) m = Math.Max(m, v);
        double sum = 0;
        foreach (var v in x) sum += Math.Exp((double)v - m);
        return m + Math.Log(sum);
    }

    private static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++)
            if (x[i] > x[best]) best = i;
        return best;
    }

    /// <summary>KL(softmax(p) ‖ softmax(q)), given both log-sum-exps.</summary>
    private static double Kl(ReadOnlySpan<float> p, double lseP, ReadOnlySpan<float> q, double lseQ)
    {
        double kl = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double lp = p[i] - lseP;
            kl += Math.Exp(lp) * (lp - (q[i] - lseQ));
        }
        return kl;
    }
}

/// <summary>Mean, standard error and percentiles of per-token values.</summary>
internal sealed class Stats
{
    private readonly double[] _sorted;

    private Stats(double[] v)
    {
        _sorted = (double[])v.Clone();
        Array.Sort(_sorted);
        Mean = v.Average();
        double ss = 0;
        foreach (var x in v) ss += (x - Mean) * (x - Mean);
        StandardError = v.Length > 1 ? Math.Sqrt(ss / (v.Length - 1) / v.Length) : 0;
    }

    public static Stats Of(double[] values) => values.Length > 0 ? new Stats(values) : throw new ArgumentException("no values");

    public double Mean { get; }
    /// <summary>Standard error of the mean: sample standard deviation / sqrt(count).</summary>
    public double StandardError { get; }
    public double Max => _sorted[^1];

    /// <summary>The q-quantile, linear between the closest ranks (NumPy's default).</summary>
    public double Percentile(double q)
    {
        double pos = q * (_sorted.Length - 1);
        int lo = (int)Math.Floor(pos), hi = Math.Min(lo + 1, _sorted.Length - 1);
        return _sorted[lo] + (_sorted[hi] - _sorted[lo]) * (pos - lo);
    }
}
