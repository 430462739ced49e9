// The mLSTM cell (xlstm7b-spec.md §2.2 step 6 and §3), same float32 operation order as MlstmCpu.
// State of one block at S + soff: C [NH, dqk, dv], then n [NH, dqk], then m [NH].
// qkvo rows have qcols = 2·qkDim + 2·NH·dv floats (q | k | v | o); gate rows 2·NH floats (i | f pre-activations).

// ---- step form (one token) ----------------------------------------------------------------------------------------
// global = (dv, NH): item (j, head) updates column j of C and writes h[j]; the q·n_new product is recomputed per item
// from the old n (n and m are written afterwards by mlstm_step_post, so no item sees a half-updated state).
__kernel void mlstm_step(__global const float* qkvo, int qoff, int qkDim, __global const float* gates, int goff,
                         __global float* S, int soff, int NH, int dqk, int dv, float cap, float scale, float eps,
                         __global float* h, int hoff)
{
    int jj = get_global_id(0), hd = get_global_id(1);
    if (jj >= dv || hd >= NH) return;
    __global float* C = S + soff + (long)hd * dqk * dv;
    __global const float* n = S + soff + (long)NH * dqk * dv + hd * dqk;
    float m = S[soff + (long)NH * dqk * dv + NH * dqk + hd];
    float ig = soft_cap(gates[goff + hd], cap), fg = soft_cap(gates[goff + NH + hd], cap);
    float lf = log_sigmoid(fg);
    float mNew = fmax(lf + m, ig);
    float fa = exp(lf + m - mNew), ia = exp(ig - mNew);
    __global const float* q = qkvo + qoff + hd * dqk;
    __global const float* k = qkvo + qoff + qkDim + hd * dqk;
    float vj = qkvo[qoff + 2 * qkDim + hd * dv + jj];
    float acc = 0.0f, qn = 0.0f;
    for (int a = 0; a < dqk; a++)
    {
        float ka = ia * k[a];
        float qa = q[a] * scale;
        float cv = fa * C[a * dv + jj] + ka * vj;
        C[a * dv + jj] = cv;
        acc += qa * cv;
        qn += qa * (fa * n[a] + ka);
    }
    float den = fmax(fabs(qn), exp(-mNew)) + eps;
    h[hoff + hd * dv + jj] = acc * (1.0f / den);
}

// global = (NH): n ← fa·n + ia·k, m ← m_new for each head.
__kernel void mlstm_step_post(__global const float* qkvo, int qoff, int qkDim, __global const float* gates, int goff,
                              __global float* S, int soff, int NH, int dqk, int dv, float cap)
{
    int hd = get_global_id(0);
    if (hd >= NH) return;
    __global float* n = S + soff + (long)NH * dqk * dv + hd * dqk;
    __global float* mp = S + soff + (long)NH * dqk * dv + NH * dqk + hd;
    float m = *mp;
    float ig = soft_cap(gates[goff + hd], cap), fg = soft_cap(gates[goff + NH + hd], cap);
    float lf = log_sigmoid(fg);
    float mNew = fmax(lf + m, ig);
    float fa = exp(lf + m - mNew), ia = exp(ig - mNew);
    __global const float* k = qkvo + qoff + qkDim + hd * dqk;
    for (int a = 0; a < dqk; a++) n[a] = fa * n[a] + ia * k[a];
    *mp = mNew;
}

// ---- chunkwise form: per chunk of len ≤ L tokens starting at token t0, three kernels in order -------------------------
// Scratch per head (SCR_HEAD floats at X + hd·SCR_HEAD): b[L] ig[L] w[L] mi[L] den[L] M[L·L], mPrev mNew decay (+1), b_lo[L].
// The cumulative log-forget b_j is kept as a compensated pair b[j] + b_lo[j]: it reaches hundreds over a chunk when forget
// gates close, and the weights need b_i − b_j, the difference of two such sums; a plain float running sum put its
// rounding (|b|·2⁻²⁴ per token) into every exponent (up to 1e-4 relative on the weights; docs/NOTES.md, "Conformance").
#define SCR_HEAD(L) (6 * (L) + (L) * (L) + 4)
#define SCR_BLO (5 * L + L * L + 4)
#define SCR_B 0
#define SCR_IG (L)
#define SCR_W (2 * L)
#define SCR_MI (3 * L)
#define SCR_DEN (4 * L)
#define SCR_M (5 * L)
#define SCR_S (5 * L + L * L)

// One work-group of RED_LS items per head (global = (RED_LS, NH), local = (RED_LS, 1)): gates, cumulative log-forgets,
// the new stabilizer, the decay weights, M_ij = S_ij·exp(logD_ij − m_i) and the denominators of every row.
__kernel void mlstm_chunk_prep(__global const float* qkvo, int qoff, int qcols, int qkDim, __global const float* gates, int goff,
                               __global const float* S, int soff, int NH, int dqk, int dv, float cap, float scale, float eps,
                               __global float* X, int L, int t0, int len)
{
    int lid = get_local_id(0), hd = get_group_id(1);
    __global float* sc = X + (long)hd * SCR_HEAD(L);
    __global const float* n = S + soff + (long)NH * dqk * dv + hd * dqk;
    if (lid == 0)
    {
        float mPrev = S[soff + (long)NH * dqk * dv + NH * dqk + hd];
        float hi = 0.0f, lo = 0.0f;
        for (int j = 0; j < len; j++)
        {
            __global const float* gr = gates + goff + (long)(t0 + j) * 2 * NH;
            sc[SCR_IG + j] = soft_cap(gr[hd], cap);
            float lf = log_sigmoid(soft_cap(gr[NH + hd], cap));
            sc[SCR_DEN + j] = lf;
            // compensated running sum (Neumaier): hi + lo = Σ lf to about 2⁻⁴⁸ relative
            float t = hi + lf;
            lo += fabs(hi) >= fabs(lf) ? (hi - t) + lf : (lf - t) + hi;
            hi = t;
            sc[SCR_B + j] = hi;
            sc[SCR_BLO + j] = lo;
        }
        float g = hi + lo;
        float rev = 0.0f, amax = -INFINITY;
        for (int j = len - 1; j >= 0; j--)
        {
            float av = rev + sc[SCR_IG + j];
            sc[SCR_W + j] = av;
            amax = fmax(amax, av);
            rev += sc[SCR_DEN + j];
        }
        float mNew = fmax(g + mPrev, amax);
        for (int j = 0; j < len; j++) sc[SCR_W + j] = exp(sc[SCR_W + j] - mNew);
        sc[SCR_S + 0] = mPrev;
        sc[SCR_S + 1] = mNew;
        sc[SCR_S + 2] = exp(g + mPrev - mNew);
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    float mPrev = sc[SCR_S + 0];
    for (int i = lid; i < len; i += RED_LS)
    {
        float bi = sc[SCR_B + i], bl = sc[SCR_BLO + i];
        float mInter = (bi + bl) + mPrev, mIntra = -INFINITY;
        for (int j = 0; j <= i; j++) mIntra = fmax(mIntra, ((bi - sc[SCR_B + j]) + (bl - sc[SCR_BLO + j])) + sc[SCR_IG + j]);
        sc[SCR_MI + i] = fmax(mInter, mIntra);
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int p = lid; p < len * len; p += RED_LS)
    {
        int i = p / len, j = p % len;
        if (j > i) continue;
        __global const float* qi = qkvo + qoff + (long)(t0 + i) * qcols + hd * dqk;
        __global const float* kj = qkvo + qoff + (long)(t0 + j) * qcols + qkDim + hd * dqk;
        float s = 0.0f;
        for (int a = 0; a < dqk; a++) s += qi[a] * kj[a];
        float bij = (sc[SCR_B + i] - sc[SCR_B + j]) + (sc[SCR_BLO + i] - sc[SCR_BLO + j]);
        sc[SCR_M + i * L + j] = s * scale * exp(bij + sc[SCR_IG + j] - sc[SCR_MI + i]);
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int i = lid; i < len; i += RED_LS)
    {
        float mi = sc[SCR_MI + i];
        float qs = exp((sc[SCR_B + i] + sc[SCR_BLO + i]) + mPrev - mi) * scale;
        __global const float* qi = qkvo + qoff + (long)(t0 + i) * qcols + hd * dqk;
        float d = 0.0f;
        for (int a = 0; a < dqk; a++) d += qi[a] * qs * n[a];
        for (int j = 0; j <= i; j++) d += sc[SCR_M + i * L + j];
        sc[SCR_DEN + i] = fmax(fabs(d), exp(-mi)) + eps;
    }
}

// global = (dv, len, NH): h_i[j] = (q̄_iᵀ C_prev + Σ_{j'≤i} M_ij' v_j') / den_i.
__kernel void mlstm_chunk_out(__global const float* qkvo, int qoff, int qcols, int qkDim, __global const float* S, int soff,
                              int NH, int dqk, int dv, float scale, __global const float* X, int L, int t0, int len,
                              __global float* h, int hoff)
{
    int jj = get_global_id(0), i = get_global_id(1), hd = get_global_id(2);
    if (jj >= dv || i >= len || hd >= NH) return;
    __global const float* sc = X + (long)hd * SCR_HEAD(L);
    __global const float* C = S + soff + (long)hd * dqk * dv;
    float mPrev = sc[SCR_S + 0];
    float qs = exp((sc[SCR_B + i] + sc[SCR_BLO + i]) + mPrev - sc[SCR_MI + i]) * scale;
    __global const float* qi = qkvo + qoff + (long)(t0 + i) * qcols + hd * dqk;
    float acc = 0.0f;
    for (int a = 0; a < dqk; a++) acc += qi[a] * qs * C[a * dv + jj];
    for (int j = 0; j <= i; j++) acc += sc[SCR_M + i * L + j] * qkvo[qoff + (long)(t0 + j) * qcols + 2 * qkDim + hd * dv + jj];
    h[hoff + (long)(t0 + i) * NH * dv + hd * dv + jj] = acc * (1.0f / sc[SCR_DEN + i]);
}

// global = (dv + 1, dqk, NH): C[a, j] ← decay·C[a, j] + Σ_j' w_j' k_j'[a] v_j'[j]; column dv updates n[a]; (0, 0) also m.
__kernel void mlstm_chunk_state(__global const float* qkvo, int qoff, int qcols, int qkDim, __global float* S, int soff,
                                int NH, int dqk, int dv, __global const float* X, int L, int t0, int len)
{
    int jj = get_global_id(0), a = get_global_id(1), hd = get_global_id(2);
    if (jj > dv || a >= dqk || hd >= NH) return;
    __global const float* sc = X + (long)hd * SCR_HEAD(L);
    float decay = sc[SCR_S + 2];
    __global const float* kcol = qkvo + qoff + (long)t0 * qcols + qkDim + hd * dqk + a;
    if (jj < dv)
    {
        __global float* c = S + soff + (long)hd * dqk * dv + a * dv + jj;
        __global const float* vcol = qkvo + qoff + (long)t0 * qcols + 2 * qkDim + hd * dv + jj;
        float cv = *c * decay;
        for (int j = 0; j < len; j++) cv += (sc[SCR_W + j] * kcol[(long)j * qcols]) * vcol[(long)j * qcols];
        *c = cv;
    }
    else
    {
        __global float* np = S + soff + (long)NH * dqk * dv + hd * dqk + a;
        float nv = *np * decay;
        for (int j = 0; j < len; j++) nv += sc[SCR_W + j] * kcol[(long)j * qcols];
        *np = nv;
        if (a == 0) S[soff + (long)NH * dqk * dv + NH * dqk + hd] = sc[SCR_S + 1];
    }
}
