#version 450
// Chunk part 1 of 3 (see mlstm_chunk.glsl). One workgroup per head.
#include "common.glsl"
#include "mlstm_chunk.glsl"
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Qb { float QKV[]; };
layout(std430, binding = 1) readonly buffer Gb { float G[]; };
layout(std430, binding = 2) buffer Sb { float S[]; };
layout(std430, binding = 3) writeonly buffer Xb { float SCR[]; };

layout(push_constant) uniform PC
{
    uint qOff, kOff, rowStride, gOff, gStride, len, NH, dqk, nOff, mOff;
    float cap, eps;
} pc;

shared float sIg[CL], sLf[CL], sB[CL], sBlo[CL], sA[CL], sM[CL], sQs[CL], sW[CL];
shared float sMPrev, sMNew, sDecay;
shared float Qs[CL][17], Ks[CL][17];
shared float Ms[CL][CL + 1u];

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint h = gl_WorkGroupID.x;
    uint len = pc.len;
    uint scr = h * SCR_HEAD;
    float scale = 1.0 / sqrt(float(pc.dqk));

    if (tid < len)
    {
        sIg[tid] = soft_cap(G[pc.gOff + tid * pc.gStride + h], pc.cap);
        sLf[tid] = log_sigmoid(soft_cap(G[pc.gOff + tid * pc.gStride + pc.NH + h], pc.cap));
    }
    barrier();
    if (tid == 0u)
    {
        // b_j = Σ_{r<=j} lf_r as a compensated pair sB + sBlo (it reaches hundreds when forget gates close, and the
        // weights need b_i − b_j); a_j = Σ_{r>j} lf_r + i_j (reverse running sum, no cancellation)
        precise float hi = 0.0, lo = 0.0;
        for (uint j = 0u; j < len; j++)
        {
            precise float x = sLf[j], t = hi + x;
            lo += abs(hi) >= abs(x) ? (hi - t) + x : (x - t) + hi;
            hi = t;
            sB[j] = hi;
            sBlo[j] = lo;
        }
        float rev = 0.0, amax = -1.0 / 0.0;
        for (uint j = len; j-- > 0u; ) { sA[j] = rev + sIg[j]; rev += sLf[j]; amax = max(amax, sA[j]); }
        float mPrev = S[pc.mOff + h];
        float g = sB[len - 1u] + sBlo[len - 1u];
        float mNew = max(g + mPrev, amax);
        sMPrev = mPrev;
        sMNew = mNew;
        sDecay = exp(g + mPrev - mNew);
    }
    barrier();
    if (tid < len)
    {
        uint i = tid;
        float mIntra = -1.0 / 0.0;
        for (uint j = 0u; j <= i; j++) mIntra = max(mIntra, ((sB[i] - sB[j]) + (sBlo[i] - sBlo[j])) + sIg[j]);
        float mInter = (sB[i] + sBlo[i]) + sMPrev;
        float mi = max(mInter, mIntra);
        sM[i] = mi;
        sQs[i] = exp(mInter - mi) * scale;
        sW[i] = exp(sA[i] - sMNew);
        SCR[scr + SCR_QS + i] = sQs[i];
        SCR[scr + SCR_W + i] = sW[i];
    }
    if (tid == 0u) SCR[scr + SCR_DECAY] = sDecay;

    // S = Q Kᵀ (64 x 64, 4 x 4 per invocation), dqk in slabs of 16
    uint tx = tid & 15u, ty = tid >> 4;
    float acc[4][4];
    [[unroll]] for (uint a = 0u; a < 4u; a++)
        [[unroll]] for (uint b = 0u; b < 4u; b++) acc[a][b] = 0.0;
    uint qo = pc.qOff + h * pc.dqk, ko = pc.kOff + h * pc.dqk;
    for (uint a0 = 0u; a0 < pc.dqk; a0 += 16u)
    {
        [[unroll]] for (uint e = 0u; e < 4u; e++)
        {
            uint idx = tid + 256u * e;           // 0 .. 1023 = 64 tokens x 16 columns
            uint r = idx >> 4, c = idx & 15u;
            bool ok = r < len && a0 + c < pc.dqk;
            Qs[r][c] = ok ? QKV[qo + r * pc.rowStride + a0 + c] : 0.0;
            Ks[r][c] = ok ? QKV[ko + r * pc.rowStride + a0 + c] : 0.0;
        }
        barrier();
        [[unroll]] for (uint c = 0u; c < 16u; c++)
        {
            float qa[4], kb[4];
            [[unroll]] for (uint a = 0u; a < 4u; a++) qa[a] = Qs[ty + 16u * a][c];
            [[unroll]] for (uint b = 0u; b < 4u; b++) kb[b] = Ks[tx + 16u * b][c];
            [[unroll]] for (uint a = 0u; a < 4u; a++)
                [[unroll]] for (uint b = 0u; b < 4u; b++) acc[a][b] += qa[a] * kb[b];
        }
        barrier();
    }
    [[unroll]] for (uint a = 0u; a < 4u; a++)
        [[unroll]] for (uint b = 0u; b < 4u; b++)
        {
            uint i = ty + 16u * a, j = tx + 16u * b;
            float m = 0.0;
            if (i < len && j <= i) m = acc[a][b] * scale * exp(((sB[i] - sB[j]) + (sBlo[i] - sBlo[j])) + sIg[j] - sM[i]);
            Ms[i][j] = m;
            SCR[scr + i * CL + j] = m;
        }
    barrier();

    // den_i = qs_i (q_i · n_prev) + Σ_j M_ij
    if (tid < len)
    {
        uint i = tid;
        float qn = 0.0;
        uint no = pc.nOff + h * pc.dqk;
        for (uint a = 0u; a < pc.dqk; a++) qn += QKV[qo + i * pc.rowStride + a] * S[no + a];
        float den = qn * sQs[i];
        for (uint j = 0u; j <= i; j++) den += Ms[i][j];
        SCR[scr + SCR_INVDEN + i] = 1.0 / (max(abs(den), exp(-sM[i])) + pc.eps);
    }
    barrier();

    // n_new = decay · n_prev + Σ_j w_j k_j ; m_new
    for (uint a = tid; a < pc.dqk; a += 256u)
    {
        uint no = pc.nOff + h * pc.dqk + a;
        float n = S[no] * sDecay;
        for (uint j = 0u; j < len; j++) n += sW[j] * QKV[ko + j * pc.rowStride + a];
        S[no] = n;
    }
    if (tid == 0u) S[pc.mOff + h] = sMNew;
}
