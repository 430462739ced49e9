using XlstmRun.Model;

namespace XlstmRun.Backends.Cpu;

/// <summary>
/// Scalar reference of the mLSTM cell, for one head: the recurrent step form and the chunkwise-parallel form
/// (xlstm7b-spec.md §2.2 step 6 and §3). The backend runs the vectorized Kernels/Mlstm.cs; tests compare the two. State: C [dqk, dv], n [dqk], m (scalar), float32.
/// </summary>
public static class MlstmCpu
{
    public static float LogSigmoid(float x) => MathF.Min(x, 0f) - MathF.Log(1f + MathF.Exp(-MathF.Abs(x)));

    /// <summary>One token. q, k: [dqk]; v: [dv]; ig, fg soft-capped pre-activations; h: [dv].</summary>
    public static void Step(Span<float> C, Span<float> n, ref float m, ReadOnlySpan<float> q, ReadOnlySpan<float> k,
        ReadOnlySpan<float> v, float ig, float fg, float eps, Span<float> h)
    {
        int dqk = q.Length, dv = v.Length;
        float lf = LogSigmoid(fg);
        float mNew = MathF.Max(lf + m, ig);
        float fa = MathF.Exp(lf + m - mNew), ia = MathF.Exp(ig - mNew);
        m = mNew;
        float scale = 1f / MathF.Sqrt(dqk);
        h.Clear();
        float qn = 0;
        for (int a = 0; a < dqk; a++)
        {
            var row = C.Slice(a * dv, dv);
            float ka = ia * k[a];
            float qa = q[a] * scale;
            for (int j = 0; j < dv; j++)
            {
                float cv = fa * row[j] + ka * v[j];
                row[j] = cv;
                h[j] += qa * cv;
            }
            n[a] = fa * n[a] + ka;
            qn += qa * n[a];
        }
        float den = MathF.Max(MathF.Abs(qn), MathF.Exp(-mNew)) + eps;
        float inv = 1f / den;
        for (int j = 0; j < dv; j++) h[j] *= inv;
    }

    /// <summary>
    /// One chunk of L tokens with the chunkwise form, using and then updating the incoming state.
    /// Q, K: [L, dqk]; V, H: [L, dv]; ig, fg: [L] soft-capped gate pre-activations; scratch ≥ 2L + L² floats.
    /// </summary>
    public static void Chunk(Span<float> C, Span<float> n, ref float m, int L, int dqk, int dv,
        ReadOnlySpan<float> Q, ReadOnlySpan<float> K, ReadOnlySpan<float> V,
        ReadOnlySpan<float> ig, ReadOnlySpan<float> fg, float eps, Span<float> H, float[] scratch)
    {
        // scratch layout: b[L], a[L], logD/M [L·L]
        var b = scratch.AsSpan(0, L);
        var av = scratch.AsSpan(L, L);
        var M = scratch.AsSpan(2 * L, L * L);
        float acc = 0;
        for (int j = 0; j < L; j++) { acc += LogSigmoid(fg[j]); b[j] = acc; }
        float g = b[L - 1];
        // a_j = Σ_{r>j} lf_r + i_j, computed as a reverse running sum (no cancellation)
        float rev = 0;
        for (int j = L - 1; j >= 0; j--) { av[j] = rev + ig[j]; rev += LogSigmoid(fg[j]); }
        float scale = 1f / MathF.Sqrt(dqk);
        float mPrev = m;
        for (int i = 0; i < L; i++)
        {
            var qi = Q.Slice(i * dqk, dqk);
            float mInter = b[i] + mPrev;
            float mIntra = float.NegativeInfinity;
            for (int j = 0; j <= i; j++) mIntra = MathF.Max(mIntra, b[i] - b[j] + ig[j]);
            float mi = MathF.Max(mInter, mIntra);
            var h = H.Slice(i * dv, dv);
            // inter-chunk part: qbar^T C_prev, qbar·n_prev
            float qs = MathF.Exp(mInter - mi) * scale;
            h.Clear();
            float den = 0;
            for (int a = 0; a < dqk; a++)
            {
                float qa = qi[a] * qs;
                if (qa == 0) continue;
                var row = C.Slice(a * dv, dv);
                for (int jj = 0; jj < dv; jj++) h[jj] += qa * row[jj];
                den += qa * n[a];
            }
            // intra-chunk part
            for (int j = 0; j <= i; j++)
            {
                var kj = K.Slice(j * dqk, dqk);
                float s = 0;
                for (int a = 0; a < dqk; a++) s += qi[a] * kj[a];
                float mij = s * scale * MathF.Exp(b[i] - b[j] + ig[j] - mi);
                M[i * L + j] = mij;
                den += mij;
                var vj = V.Slice(j * dv, dv);
                for (int jj = 0; jj < dv; jj++) h[jj] += mij * vj[jj];
            }
            float inv = 1f / (MathF.Max(MathF.Abs(den), MathF.Exp(-mi)) + eps);
            for (int jj = 0; jj < dv; jj++) h[jj] *= inv;
        }
        // state update
        float amax = float.NegativeInfinity;
        for (int j = 0; j < L; j++) amax = MathF.Max(amax, av[j]);
        float mNew = MathF.Max(g + mPrev, amax);
        float decay = MathF.Exp(g + mPrev - mNew);
        for (int a = 0; a < dqk; a++)
        {
            var row = C.Slice(a * dv, dv);
            for (int jj = 0; jj < dv; jj++) row[jj] *= decay;
            n[a] *= decay;
        }
        for (int j = 0; j < L; j++)
        {
            float w = MathF.Exp(av[j] - mNew);
            var kj = K.Slice(j * dqk, dqk);
            var vj = V.Slice(j * dv, dv);
            for (int a = 0; a < dqk; a++)
            {
                float ka = w * kj[a];
                if (ka == 0) continue;
                var row = C.Slice(a * dv, dv);
                for (int jj = 0; jj < dv; jj++) row[jj] += ka * vj[jj];
                n[a] += ka;
            }
        }
        m = mNew;
    }
}
