using System.Text.Json;
using XlstmRun.Formats;
using XlstmRun.Tests.Support;
using XlstmRun.Tests.Tokenization;
using Xunit;
using static XlstmRun.Tests.Support.CliRunner;

namespace XlstmRun.Tests.Cli;

/// <summary>
/// `perplexity` against an independent computation from the logits the `logits` command writes: per-token NLL from a
/// float64 log-softmax, perplexity ± its standard error, and with --kl-base the KL statistics and top-1 agreement.
/// </summary>
public class CliPerplexityTests(CliModels m) : IClassFixture<CliModels>
{
    private const int Window = 16;
    private const string Text = "The quick brown fox jumps over the lazy dog, and the dog sleeps on in the warm sun. Then the fox runs home " +
                                "across the fields, past the old mill and the river, where the children play until the evening comes. " +
                                "At night the stars come out one by one.";

    private static Result Ok(Result r)
    {
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        return r;
    }

    /// <summary>Logits rows for each window, from fresh state with BOS, as perplexity's protocol feeds them.</summary>
    private static List<float[][]> WindowLogits(string model, int[] tokens, string dir)
    {
        var res = new List<float[][]>();
        for (int start = 0; start < tokens.Length; start += Window)
        {
            int len = Math.Min(Window, tokens.Length - start);
            int[] input = [0, .. tokens[start..(start + len - 1)]];
            string npy = Path.Combine(dir, Guid.NewGuid().ToString("N") + ".npy");
            Ok(Run($"logits -m {Q(model)} --backend cpu --ids {string.Join(",", input)} -o {Q(npy)}"));
            var (data, shape) = Npy.Read(npy);
            int v = (int)shape[1];
            res.Add(Enumerable.Range(0, len).Select(t => data.AsSpan(t * v, v).ToArray()).ToArray());
        }
        return res;
    }

    private static double Lse(float[] x)
    {
        double mx = x.Max(), s = 0;
        foreach (var v in x) s += Math.Exp(v - mx);
        return mx + Math.Log(s);
    }

    private static double StandardError(double[] v)
    {
        double mean = v.Average();
        return Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1) / v.Length);
    }

    /// <summary>NumPy's default percentile: linear between the closest ranks.</summary>
    private static double Percentile(double[] v, double q)
    {
        var s = v.OrderBy(x => x).ToArray();
        double pos = q * (s.Length - 1);
        int lo = (int)pos;
        return lo + 1 < s.Length ? s[lo] + (s[lo + 1] - s[lo]) * (pos - lo) : s[lo];
    }

    private static int ArgMax(float[] x)
    {
        int b = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[b]) b = i;
        return b;
    }

    private static void Close(double expected, double actual, string what, double rel = 1e-9) =>
        Assert.True(Math.Abs(expected - actual) <= rel * Math.Abs(expected) + 1e-15, $"{what}: expected {expected:R}, got {actual:R}");

    [Fact]
    public void PerplexityStandardErrorAndKlStatisticsMatchAnIndependentComputation()
    {
        string dir = TestPaths.TempDir();
        string textFile = Path.Combine(dir, "text.txt");
        File.WriteAllText(textFile, Text);
        string q8 = Path.Combine(dir, "q8.gguf");
        Ok(Run($"quantize {Q(m.Model)} {Q(q8)} q8_0 -q"));
        int[] tokens = TokTestPaths.Neox.Encode(Text);
        Assert.True(tokens.Length > 2 * Window, "the text should span several windows");

        var model = WindowLogits(q8, tokens, dir);
        var baseline = WindowLogits(m.Model, tokens, dir);
        var nll = new List<double>();
        var kl = new List<double>();
        int same = 0;
        for (int w = 0; w < model.Count; w++)
            for (int t = 0; t < model[w].Length; t++)
            {
                float[] q = model[w][t], p = baseline[w][t];
                double lq = Lse(q), lp = Lse(p);
                nll.Add(lq - q[tokens[w * Window + t]]);
                double k = 0;
                for (int i = 0; i < p.Length; i++) k += Math.Exp(p[i] - lp) * ((p[i] - lp) - (q[i] - lq));
                kl.Add(k);
                if (ArgMax(p) == ArgMax(q)) same++;
            }
        double ppl = Math.Exp(nll.Average()), pplSe = ppl * StandardError([.. nll]);
        double top1 = (double)same / tokens.Length;

        var r = Ok(Run($"perplexity -m {Q(q8)} --backend cpu -f {Q(textFile)} -c {Window} --kl-base {Q(m.Model)} --json -q"));
        Assert.Equal("", r.Stderr);
        var j = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(tokens.Length, j.GetProperty("tokens").GetInt32());
        Assert.Equal((tokens.Length + Window - 1) / Window, j.GetProperty("windows").GetInt32());
        Close(ppl, j.GetProperty("perplexity").GetDouble(), "perplexity");
        Close(pplSe, j.GetProperty("perplexity_se").GetDouble(), "perplexity standard error");
        Close(kl.Average(), j.GetProperty("mean_kl").GetDouble(), "mean KL", 1e-6);
        Close(StandardError([.. kl]), j.GetProperty("mean_kl_se").GetDouble(), "KL standard error", 1e-6);
        Close(Percentile([.. kl], 0.5), j.GetProperty("median_kl").GetDouble(), "median KL", 1e-6);
        Close(Percentile([.. kl], 0.99), j.GetProperty("p99_kl").GetDouble(), "99th percentile KL", 1e-6);
        Close(kl.Max(), j.GetProperty("max_kl").GetDouble(), "max KL", 1e-6);
        Close(top1, j.GetProperty("top1_agreement").GetDouble(), "top-1 agreement");
        Close(Math.Sqrt(top1 * (1 - top1) / tokens.Length), j.GetProperty("top1_agreement_se").GetDouble(), "top-1 standard error");
        Assert.True(kl.Average() > 0, "q8_0 should differ from f32");

        // the text report says the same with ± and llama-perplexity's names
        var text = Ok(Run($"perplexity -m {Q(q8)} --backend cpu -f {Q(textFile)} -c {Window} --kl-base {Q(m.Model)}"));
        Assert.Contains($"perplexity = {ppl:F4} ± {pplSe:F4} over {tokens.Length} tokens", text.Stdout);
        Assert.Contains("median", text.Stdout);
        Assert.Contains("99th percentile", text.Stdout);
        Assert.Contains("top-1 agreement:", text.Stdout);
    }
}
