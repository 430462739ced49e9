namespace XlstmRun.Conformance;

/// <summary>Error measures used by every conformance check (fixtures/README.md defines the relative error).</summary>
public static class Metrics
{
    /// <summary>‖ours − ref‖₂ / ‖ref‖₂ over the whole tensor, in double precision. 0 when both are zero.</summary>
    public static double RelErr(ReadOnlySpan<float> ours, ReadOnlySpan<float> reference)
    {
        if (ours.Length != reference.Length) throw new ArgumentException($"length {ours.Length} vs {reference.Length}");
        double num = 0, den = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            double d = (double)ours[i] - reference[i];
            num += d * d;
            den += (double)reference[i] * reference[i];
        }
        if (den == 0) return num == 0 ? 0 : double.PositiveInfinity;
        double r = Math.Sqrt(num / den);
        return double.IsNaN(r) ? double.PositiveInfinity : r;
    }

    /// <summary>As <see cref="RelErr(ReadOnlySpan{float}, ReadOnlySpan{float})"/> against a double-precision reference.</summary>
    public static double RelErr(ReadOnlySpan<float> ours, ReadOnlySpan<double> reference)
    {
        if (ours.Length != reference.Length) throw new ArgumentException($"length {ours.Length} vs {reference.Length}");
        double num = 0, den = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            double d = ours[i] - reference[i];
            num += d * d;
            den += reference[i] * reference[i];
        }
        if (den == 0) return num == 0 ? 0 : double.PositiveInfinity;
        double r = Math.Sqrt(num / den);
        return double.IsNaN(r) ? double.PositiveInfinity : r;
    }

    /// <summary>Relative error of each row of [rows, cols] tensors.</summary>
    public static double[] RowErrors(ReadOnlySpan<float> ours, ReadOnlySpan<float> reference, int cols)
    {
        int rows = ours.Length / cols;
        var e = new double[rows];
        for (int r = 0; r < rows; r++) e[r] = RelErr(ours.Slice(r * cols, cols), reference.Slice(r * cols, cols));
        return e;
    }

    /// <summary>Mean over rows of KL(softmax(p) ‖ softmax(q)) in nats; p is the reference.</summary>
    public static double MeanKl(ReadOnlySpan<float> p, ReadOnlySpan<float> q, int vocab)
    {
        int rows = p.Length / vocab;
        double total = 0;
        for (int r = 0; r < rows; r++)
        {
            var a = p.Slice(r * vocab, vocab);
            var b = q.Slice(r * vocab, vocab);
            double ma = double.NegativeInfinity, mb = double.NegativeInfinity;
            for (int i = 0; i < vocab; i++) { ma = Math.Max(ma, a[i]); mb = Math.Max(mb, b[i]); }
            double za = 0, zb = 0;
            for (int i = 0; i < vocab; i++) { za += Math.Exp(a[i] - ma); zb += Math.Exp(b[i] - mb); }
            double lza = Math.Log(za), lzb = Math.Log(zb), kl = 0;
            for (int i = 0; i < vocab; i++)
            {
                double lpa = a[i] - ma - lza, lpb = b[i] - mb - lzb;
                kl += Math.Exp(lpa) * (lpa - lpb);
            }
            total += kl;
        }
        double m = rows == 0 ? 0 : total / rows;
        return double.IsNaN(m) ? double.PositiveInfinity : m;
    }

    /// <summary>Index of the first maximum.</summary>
    public static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    public static bool AllFinite(ReadOnlySpan<float> x)
    {
        foreach (var v in x) if (!float.IsFinite(v)) return false;
        return true;
    }
}
