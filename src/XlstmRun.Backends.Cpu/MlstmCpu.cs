using System.Numerics;

namespace XlstmRun.Backends.Cpu;

/// <summary>
/// Scalar reference of the mLSTM cell, for one head: the recurrent step form and the chunkwise-parallel form
/// (xlstm7b-spec.md §2.2 step 6 and §3), generic over the element type: float (what the kernels compute) or double (the
/// float64 reference engine of the conformance checks). The backend runs the vectorized Kernels/Mlstm.cs; tests compare the
/// two. State: C [dqk, dv], n [dqk], m (scalar).
/// </summary>
public static class MlstmCpu<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public static T LogSigmoid(T x) => T.Min(x, T.Zero) - T.Log(T.One + T.Exp(-T.Abs(x)));

    /// <summary>One token. q, k: [dqk]; v: [dv]; ig, fg soft-capped pre-activations; h: [dv].</summary>
    public static void Step(Span<T> C, Span<T> n, ref T m, ReadOnlySpan<T> q, ReadOnlySpan<T> k,
        ReadOnlySpan<T> v, T ig, T fg, T eps, Span<T> h)
    {
        int dqk = q.Length, dv = v.Length;
        T lf = LogSigmoid(fg);
        T mNew = T.Max(lf + m, ig);
        T fa = T.Exp(lf + m - mNew), ia = T.Exp(ig - mNew);
        m = mNew;
        T scale = T.One / T.Sqrt(T.CreateChecked(dqk));
        h.Clear();
        T qn = T.Zero;
        for (int a = 0; a < dqk; a++)
        {
            var row = C.Slice(a * dv, dv);
            T ka = ia * k[a];
            T qa = q[a] * scale;
            for (int j = 0; j < dv; j++)
            {
                T cv = fa * row[j] + ka * v[j];
                row[j] = cv;
                h[j] += qa * cv;
            }
            n[a] = fa * n[a] + ka;
            qn += qa * n[a];
        }
        T den = T.Max(T.Abs(qn), T.Exp(-mNew)) + eps;
        T inv = T.One / den;
        for (int j = 0; j < dv; j++) h[j] *= inv;
    }

    /// <summary>Scratch elements <see cref="Chunk"/> needs for chunks of up to L tokens (the layout keeps the float version's size).</summary>
    public static int ChunkScratch(int L) => 2 * L + L * L;

    /// <summary>
    /// One chunk of L tokens with the chunkwise form, using and then updating the incoming state.
    /// Q, K: [L, dqk]; V, H: [L, dv]; ig, fg: [L] soft-capped gate pre-activations; scratch ≥ <see cref="ChunkScratch"/>.
    /// </summary>
    public static void Chunk(Span<T> C, Span<T> n, ref T m, int L, int dqk, int dv,
        ReadOnlySpan<T> Q, ReadOnlySpan<T> K, ReadOnlySpan<T> V,
        ReadOnlySpan<T> ig, ReadOnlySpan<T> fg, T eps, Span<T> H, Span<T> scratch)
    {
        // scratch layout: M [L·L] (b and a are kept in double below, whatever T is)
        var M = scratch.Slice(2 * L, L * L);
        // The log-gate bookkeeping (cumulative log-forget b, reverse sums a, stabilizers and every exponent argument) is
        // in double for every T: b reaches hundreds over a chunk when forget gates close, and the weights need the
        // difference b_i − b_j of two such sums (in float its rounding reached 1e-4 relative on the weights).
        Span<double> b = L <= 256 ? stackalloc double[L] : new double[L];
        Span<double> av = L <= 256 ? stackalloc double[L] : new double[L];
        double acc = 0;
        for (int j = 0; j < L; j++) { acc += double.CreateChecked(LogSigmoid(fg[j])); b[j] = acc; }
        double g = b[L - 1];
        // a_j = Σ_{r>j} lf_r + i_j, computed as a reverse running sum (no cancellation)
        double rev = 0;
        for (int j = L - 1; j >= 0; j--) { av[j] = rev + double.CreateChecked(ig[j]); rev += double.CreateChecked(LogSigmoid(fg[j])); }
        T scale = T.One / T.Sqrt(T.CreateChecked(dqk));
        double mPrev = double.CreateChecked(m);
        for (int i = 0; i < L; i++)
        {
            var qi = Q.Slice(i * dqk, dqk);
            double mInter = b[i] + mPrev;
            double mIntra = double.NegativeInfinity;
            for (int j = 0; j <= i; j++) mIntra = Math.Max(mIntra, b[i] - b[j] + double.CreateChecked(ig[j]));
            double mi = Math.Max(mInter, mIntra);
            var h = H.Slice(i * dv, dv);
            // inter-chunk part: qbar^T C_prev, qbar·n_prev
            T qs = T.Exp(T.CreateChecked(mInter - mi)) * scale;
            h.Clear();
            T den = T.Zero;
            for (int a = 0; a < dqk; a++)
            {
                T qa = qi[a] * qs;
                if (qa == T.Zero) continue;
                var row = C.Slice(a * dv, dv);
                for (int jj = 0; jj < dv; jj++) h[jj] += qa * row[jj];
                den += qa * n[a];
            }
            // intra-chunk part
            for (int j = 0; j <= i; j++)
            {
                var kj = K.Slice(j * dqk, dqk);
                T s = T.Zero;
                for (int a = 0; a < dqk; a++) s += qi[a] * kj[a];
                T mij = s * scale * T.Exp(T.CreateChecked(b[i] - b[j] + double.CreateChecked(ig[j]) - mi));
                M[i * L + j] = mij;
                den += mij;
                var vj = V.Slice(j * dv, dv);
                for (int jj = 0; jj < dv; jj++) h[jj] += mij * vj[jj];
            }
            T inv = T.One / (T.Max(T.Abs(den), T.Exp(-T.CreateChecked(mi))) + eps);
            for (int jj = 0; jj < dv; jj++) h[jj] *= inv;
        }
        // state update
        double amax = double.NegativeInfinity;
        for (int j = 0; j < L; j++) amax = Math.Max(amax, av[j]);
        double mNew = Math.Max(g + mPrev, amax);
        T decay = T.Exp(T.CreateChecked(g + mPrev - mNew));
        for (int a = 0; a < dqk; a++)
        {
            var row = C.Slice(a * dv, dv);
            for (int jj = 0; jj < dv; jj++) row[jj] *= decay;
            n[a] *= decay;
        }
        for (int j = 0; j < L; j++)
        {
            T w = T.Exp(T.CreateChecked(av[j] - mNew));
            var kj = K.Slice(j * dqk, dqk);
            var vj = V.Slice(j * dv, dv);
            for (int a = 0; a < dqk; a++)
            {
                T ka = w * kj[a];
                if (ka == T.Zero) continue;
                var row = C.Slice(a * dv, dv);
                for (int jj = 0; jj < dv; jj++) row[jj] += ka * vj[jj];
                n[a] += ka;
            }
        }
        m = T.CreateChecked(mNew);
    }
}

/// <summary>The float32 instance of <see cref="MlstmCpu{T}"/> (what the vectorized kernels are compared with).</summary>
public static class MlstmCpu
{
    public static float LogSigmoid(float x) => MlstmCpu<float>.LogSigmoid(x);

    public static void Step(Span<float> C, Span<float> n, ref float m, ReadOnlySpan<float> q, ReadOnlySpan<float> k,
        ReadOnlySpan<float> v, float ig, float fg, float eps, Span<float> h) =>
        MlstmCpu<float>.Step(C, n, ref m, q, k, v, ig, fg, eps, h);

    public static void Chunk(Span<float> C, Span<float> n, ref float m, int L, int dqk, int dv,
        ReadOnlySpan<float> Q, ReadOnlySpan<float> K, ReadOnlySpan<float> V,
        ReadOnlySpan<float> ig, ReadOnlySpan<float> fg, float eps, Span<float> H, float[] scratch) =>
        MlstmCpu<float>.Chunk(C, n, ref m, L, dqk, dv, Q, K, V, ig, fg, eps, H, scratch);
}
