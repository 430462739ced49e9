using XlstmRun.Formats.Gguf;
using XlstmRun.Model;

namespace XlstmRun.Conformance;

/// <summary>What a long generation run saw: the extremes of the state and of the logits over every check point.</summary>
public sealed record LongRunResult(long Tokens, int Checks, bool Finite, double MaxAbsC, double MaxAbsN, double MinM, double MaxM, double MaxAbsLogit,
    double MinLogitRms, string? Problem)
{
    public bool Pass => Problem == null;
}

/// <summary>
/// Long runs stay sane (issue 9 item 6): generate many tokens greedily through the argmax op (the decode path) and, at
/// regular check points, feed one more token reading its logits and read the state back. The state must stay finite,
/// m (the stabilizer) within the gate soft-cap's range, C and n bounded, and the logits finite, within the output soft-cap
/// and not collapsed (a row of equal values).
/// </summary>
public static class LongRun
{
    /// <summary>Bounds: |m| ≤ gate soft-cap + 1 (m_t = max(log σ(f_t) + m_{t−1}, i_t) stays in [−cap, cap]); |C|, |n| ≤ 1e6.</summary>
    public const double MaxState = 1e6;

    public static LongRunResult Run(GgufFile file, IBackend be, long tokens, int checkEvery, ulong seed = 1)
    {
        var r = new ModelRunner(file, be);
        var c = r.Config;
        int V = c.Vocab;
        var rng = new Reference.RandomModels.Normal(seed);
        var logits = new float[V];
        double maxC = 0, maxN = 0, minM = double.PositiveInfinity, maxM = double.NegativeInfinity, maxL = 0, minRms = double.PositiveInfinity;
        bool finite = true;
        string? problem = null;
        int checks = 0;
        int next = rng.Int(0, V);
        long t = 0;
        while (t < tokens && problem == null)
        {
            long stop = Math.Min(tokens, t + checkEvery);
            for (; t < stop - 1; t++) next = r.StepGreedy(next, V);
            // check point: a fresh token (so that a greedy loop cannot hide a broken state), its logits, the state
            r.Forward([rng.Int(0, V)], LogitsMode.Last, logits);
            t++;
            checks++;
            double ss = 0;
            foreach (var v in logits)
            {
                if (!float.IsFinite(v)) { finite = false; problem = $"non-finite logit at token {t}"; break; }
                maxL = Math.Max(maxL, Math.Abs(v));
                ss += (double)v * v;
            }
            minRms = Math.Min(minRms, Math.Sqrt(ss / V));
            var s = r.SaveState();
            for (int b = 0; b < c.Blocks && problem == null; b++)
            {
                long o = b * c.StateFloatsPerBlock;
                long nc = (long)c.Heads * c.DQk * c.DV, nn = (long)c.Heads * c.DQk;
                for (long i = 0; i < c.StateFloatsPerBlock; i++)
                {
                    float v = s[o + i];
                    if (!float.IsFinite(v)) { finite = false; problem = $"non-finite state (block {b}) at token {t}"; break; }
                    if (i < nc) maxC = Math.Max(maxC, Math.Abs(v));
                    else if (i < nc + nn) maxN = Math.Max(maxN, Math.Abs(v));
                    else { minM = Math.Min(minM, v); maxM = Math.Max(maxM, v); }
                }
            }
            if (problem != null) break;
            if (maxL > c.LogitSoftCap * 1.0001) problem = $"logit {maxL:G4} beyond the soft-cap {c.LogitSoftCap}";
            else if (minRms <= 0) problem = $"a logits row collapsed to zeros at token {t}";
            else if (Math.Max(Math.Abs(minM), Math.Abs(maxM)) > c.GateSoftCap + 1) problem = $"stabilizer m left [−{c.GateSoftCap}, {c.GateSoftCap}]: {minM:G4}..{maxM:G4}";
            else if (maxC > MaxState || maxN > MaxState) problem = $"state grew: max |C| {maxC:G3}, max |n| {maxN:G3}";
            next = Metrics.ArgMax(logits);
        }
        return new LongRunResult(t, checks, finite, maxC, maxN, minM, maxM, maxL, minRms, problem);
    }
}
