namespace XlstmRun.Backends.Cpu.Kernels;

/// <summary>
/// The mLSTM cell for one head, vectorized and allocation-free (xlstm7b-spec.md §2.2 step 6 and §3). State C [dqk, dv],
/// n [dqk], m (scalar), float32. q/k/v rows are read in place from the q|k|v|o activation rows (stride ldx).
/// </summary>
public static unsafe class MlstmKernels
{
    public static float LogSigmoid(float x) => MathF.Min(x, 0f) - MathF.Log(1f + MathF.Exp(-MathF.Abs(x)));

    /// <summary>Floats of scratch <see cref="Chunk"/> needs for chunks of up to L tokens.</summary>
    public static long ChunkScratch(int L, int dqk) => 3L * dqk * L + (long)L * L + 8L * L + 64;

    /// <summary>One token (the recurrent step form): updates C, n, m and writes h [dv].</summary>
    public static void Step(SimdLevel level, float* C, float* n, ref float m, float* q, float* k, float* v, int dqk, int dv,
        float ig, float fg, float eps, float* h)
    {
        switch (level)
        {
            case SimdLevel.V512: Step<V512>(C, n, ref m, q, k, v, dqk, dv, ig, fg, eps, h); break;
            case SimdLevel.V256: Step<V256>(C, n, ref m, q, k, v, dqk, dv, ig, fg, eps, h); break;
            case SimdLevel.V128: Step<V128>(C, n, ref m, q, k, v, dqk, dv, ig, fg, eps, h); break;
            default: Step<V1>(C, n, ref m, q, k, v, dqk, dv, ig, fg, eps, h); break;
        }
    }

    private static void Step<TV>(float* C, float* n, ref float m, float* q, float* k, float* v, int dqk, int dv,
        float ig, float fg, float eps, float* h) where TV : struct, IVec<TV>
    {
        float lf = LogSigmoid(fg);
        float mNew = MathF.Max(lf + m, ig);
        float fa = MathF.Exp(lf + m - mNew), ia = MathF.Exp(ig - mNew);
        m = mNew;
        float scale = 1f / MathF.Sqrt(dqk);
        int V = TV.Count, dvv = dv / V * V;
        new Span<float>(h, dv).Clear();
        var vfa = TV.Bcast(fa);
        float qn = 0;
        int a = 0;
        // four rows of C per pass over h: h += Σ_r qa_r · (fa·C[a+r] + ka_r·v)
        for (; a + 4 <= dqk; a += 4)
        {
            float* c0 = C + (long)a * dv, c1 = c0 + dv, c2 = c1 + dv, c3 = c2 + dv;
            float k0 = ia * k[a], k1 = ia * k[a + 1], k2 = ia * k[a + 2], k3 = ia * k[a + 3];
            float q0 = q[a] * scale, q1 = q[a + 1] * scale, q2 = q[a + 2] * scale, q3 = q[a + 3] * scale;
            TV vk0 = TV.Bcast(k0), vk1 = TV.Bcast(k1), vk2 = TV.Bcast(k2), vk3 = TV.Bcast(k3);
            TV vq0 = TV.Bcast(q0), vq1 = TV.Bcast(q1), vq2 = TV.Bcast(q2), vq3 = TV.Bcast(q3);
            int j = 0;
            for (; j < dvv; j += V)
            {
                var vv = TV.Load(v + j);
                var n0 = TV.Fma(vfa, TV.Load(c0 + j), TV.Mul(vk0, vv)); TV.Store(c0 + j, n0);
                var n1 = TV.Fma(vfa, TV.Load(c1 + j), TV.Mul(vk1, vv)); TV.Store(c1 + j, n1);
                var n2 = TV.Fma(vfa, TV.Load(c2 + j), TV.Mul(vk2, vv)); TV.Store(c2 + j, n2);
                var n3 = TV.Fma(vfa, TV.Load(c3 + j), TV.Mul(vk3, vv)); TV.Store(c3 + j, n3);
                var hv = TV.Fma(vq0, n0, TV.Load(h + j));
                hv = TV.Fma(vq1, n1, hv); hv = TV.Fma(vq2, n2, hv); hv = TV.Fma(vq3, n3, hv);
                TV.Store(h + j, hv);
            }
            for (; j < dv; j++)
            {
                float vj = v[j];
                float n0 = fa * c0[j] + k0 * vj, n1 = fa * c1[j] + k1 * vj, n2 = fa * c2[j] + k2 * vj, n3 = fa * c3[j] + k3 * vj;
                c0[j] = n0; c1[j] = n1; c2[j] = n2; c3[j] = n3;
                h[j] += q0 * n0 + q1 * n1 + q2 * n2 + q3 * n3;
            }
            for (int r = 0; r < 4; r++)
            {
                float ka = ia * k[a + r];
                n[a + r] = fa * n[a + r] + ka;
                qn += q[a + r] * scale * n[a + r];
            }
        }
        for (; a < dqk; a++)
        {
            float* row = C + (long)a * dv;
            float ka = ia * k[a], qa = q[a] * scale;
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
        Scale<TV>(h, dv, 1f / den);
    }

    private static void Scale<TV>(float* x, int n, float s) where TV : struct, IVec<TV>
    {
        int V = TV.Count, j = 0;
        var vs = TV.Bcast(s);
        for (; j + V <= n; j += V) TV.Store(x + j, TV.Mul(TV.Load(x + j), vs));
        for (; j < n; j++) x[j] *= s;
    }

    /// <summary>
    /// One chunk of L tokens in the chunkwise-parallel form, using and then updating the incoming state.
    /// q, k of token i at q + i·ldx, k + i·ldx (dqk values); v at v + i·ldx (dv values); ig, fg: soft-capped gate
    /// pre-activations [L]; h of token i at h + i·ldh (dv values).
    /// </summary>
    public static void Chunk(SimdLevel level, float* C, float* n, ref float m, int L, int dqk, int dv,
        float* q, float* k, float* v, long ldx, float* ig, float* fg, float eps, float* h, long ldh, float* scratch)
    {
        // scratch: Kt [dqk][L], Ktw [dqk][L], Qs [L][dqk], S [L][L], mi, den [L]
        float* Kt = scratch, Ktw = Kt + (long)dqk * L, Qs = Ktw + (long)dqk * L, S = Qs + (long)L * dqk;
        float* mi = S + (long)L * L + 2L * L, den = mi + L;
        // The log-gate bookkeeping is in double: the cumulative log-forget b_j reaches hundreds over a chunk when forget
        // gates close (log σ(f) down to −15 per token), and the weights need b_i − b_j, a difference of two such sums. In
        // float the rounding of b (|b|·2⁻²⁴ per step) went into every exponent, up to 1e-4 relative on the weights; in
        // double the differences are exact to float precision (see docs/NOTES.md, "Conformance").
        double* bv = stackalloc double[L];
        double* av = stackalloc double[L];
        double acc = 0;
        for (int j = 0; j < L; j++) { acc += LogSigmoid(fg[j]); bv[j] = acc; }
        double g = bv[L - 1];
        // a_j = Σ_{r>j} lf_r + i_j, as a reverse running sum (no cancellation)
        double rev = 0;
        for (int j = L - 1; j >= 0; j--) { av[j] = rev + ig[j]; rev += LogSigmoid(fg[j]); }
        float scale = 1f / MathF.Sqrt(dqk);
        double mPrev = m;

        // Kt = Kᵀ
        for (int j = 0; j < L; j++)
        {
            float* kj = k + j * ldx;
            for (int a = 0; a < dqk; a++) Kt[(long)a * L + j] = kj[a];
        }
        // S = Q Kᵀ (L × L)
        new Span<float>(S, L * L).Clear();
        FloatGemm.Gemm(level, L, L, dqk, q, ldx, Kt, L, S, L);
        for (int i = 0; i < L; i++)
        {
            double mInter = bv[i] + mPrev;
            double mIntra = double.NegativeInfinity;
            for (int j = 0; j <= i; j++) mIntra = Math.Max(mIntra, bv[i] - bv[j] + ig[j]);
            double mx = Math.Max(mInter, mIntra);
            mi[i] = (float)mx;
            float* srow = S + (long)i * L;
            float d = 0;
            for (int j = 0; j <= i; j++)
            {
                float mij = srow[j] * scale * MathF.Exp((float)(bv[i] - bv[j] + ig[j] - mx));
                srow[j] = mij;
                d += mij;
            }
            for (int j = i + 1; j < L; j++) srow[j] = 0;
            // q̄_i = q_i · exp(m_inter − m_i) · scale, and its product with n_prev
            float qs = MathF.Exp((float)(mInter - mx)) * scale;
            float* qi = q + i * ldx;
            float* qsi = Qs + (long)i * dqk;
            float dn = 0;
            for (int a = 0; a < dqk; a++) { qsi[a] = qi[a] * qs; dn += qsi[a] * n[a]; }
            den[i] = d + dn;
        }
        // H = Q̄ C_prev + M V
        for (int i = 0; i < L; i++) new Span<float>(h + i * ldh, dv).Clear();
        FloatGemm.Gemm(level, L, dv, dqk, Qs, dqk, C, dv, h, ldh);
        FloatGemm.Gemm(level, L, dv, L, S, L, v, ldx, h, ldh);
        for (int i = 0; i < L; i++)
        {
            float inv = 1f / (MathF.Max(MathF.Abs(den[i]), MathF.Exp(-mi[i])) + eps);
            float* hi = h + i * ldh;
            for (int jj = 0; jj < dv; jj++) hi[jj] *= inv;
        }
        // state update: C = decay·C + Σ_j w_j k_j v_jᵀ, n likewise, w_j = exp(a_j − m_new)
        double amax = double.NegativeInfinity;
        for (int j = 0; j < L; j++) amax = Math.Max(amax, av[j]);
        double mNew = Math.Max(g + mPrev, amax);
        float decay = MathF.Exp((float)(g + mPrev - mNew));
        for (int j = 0; j < L; j++) mi[j] = MathF.Exp((float)(av[j] - mNew)); // reuse mi as w
        for (int a = 0; a < dqk; a++)
        {
            float* kt = Kt + (long)a * L, kw = Ktw + (long)a * L;
            float sn = 0;
            for (int j = 0; j < L; j++) { kw[j] = kt[j] * mi[j]; sn += kw[j]; }
            n[a] = n[a] * decay + sn;
        }
        long csz = (long)dqk * dv;
        if (decay != 1f) Ops.Scale(level, C, csz, decay);
        FloatGemm.Gemm(level, dqk, dv, L, Ktw, L, v, ldx, C, dv);
        m = (float)mNew;
    }
}
