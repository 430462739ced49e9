#version 450
// Chunk kernel 4 of 4 (see mlstm_chunk.glsl): h of one chunk of one head for a tile of 64 columns of dv.
// Stabilizers m_i, scores M_ij (shared), denominators, then h_i = (q̄_i C_c + Σ_j M_ij v_j) · invden_i.
// The products run on 4 × 4 register tiles per invocation.
#include "common.glsl"
#include "mlstm_chunk.glsl"
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Qb { float QKV[]; };
layout(std430, binding = 1) buffer Sb { float S[]; };      // the block's state (m only: the final m from the scan)
layout(std430, binding = 2) readonly buffer Xb { float SCR[]; };
layout(std430, binding = 3) writeonly buffer Hb { float H[]; };

layout(push_constant) uniform PC
{
    uint qOff, vOff, rowStride, hOff, hStride, T, L, NH, dqk, dv, nc, mOffS, recOff, sOff, nOff, cOff;
    float eps;
} pc;

shared float sB[CL], sBlo[CL], sIg[CL], sM[CL], sQs[CL], sInv[CL];
shared float Ms[CL][CL + 1u];
shared float As[CL][17];
shared float Bs[16][64];

// item idx of a 16-deep slab at a0: token idx / 16's q at column a0 + idx % 16, and row a0 + idx / 64 of C at column
// col0 + idx % 64 (zeros outside)
void load_qc(uint idx, uint a0, uint len, uint qo, uint cb, uint col0, out float q, out float cv)
{
    uint r = idx >> 4, cc = idx & 15u;
    q = (r < len && a0 + cc < pc.dqk) ? QKV[qo + r * pc.rowStride + a0 + cc] : 0.0;
    uint ra = idx >> 6, c2 = idx & 63u;
    cv = (a0 + ra < pc.dqk && col0 + c2 < pc.dv) ? SCR[cb + (a0 + ra) * pc.dv + col0 + c2] : 0.0;
}

// item idx of v: token j0 + idx / 64 at column col0 + idx % 64 (zeros outside)
float load_v(uint idx, uint j0, uint len, uint vo, uint col0)
{
    uint rj = idx >> 6, c2 = idx & 63u;
    return (j0 + rj < len && col0 + c2 < pc.dv) ? QKV[vo + (j0 + rj) * pc.rowStride + col0 + c2] : 0.0;
}

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint c = gl_WorkGroupID.y, h = gl_WorkGroupID.z;
    uint ch = c * pc.NH + h;
    uint rec = pc.recOff + ch * REC_SIZE;
    uint t0 = c * pc.L;
    uint len = min(pc.L, pc.T - t0);
    float scale = 1.0 / sqrt(float(pc.dqk));
    uint qo = pc.qOff + t0 * pc.rowStride + h * pc.dqk, vo = pc.vOff + t0 * pc.rowStride + h * pc.dv;
    float mEnter = SCR[rec + REC_MENTER];

    if (tid < len) { sB[tid] = SCR[rec + REC_B + tid]; sBlo[tid] = SCR[rec + REC_BLO + tid]; sIg[tid] = SCR[rec + REC_IG + tid]; }
    barrier();
    if (tid < len)
    {
        uint i = tid;
        float mIntra = -1.0 / 0.0;
        for (uint j = 0u; j <= i; j++) mIntra = max(mIntra, ((sB[i] - sB[j]) + (sBlo[i] - sBlo[j])) + sIg[j]);
        float mInter = (sB[i] + sBlo[i]) + mEnter;
        float mi = max(mInter, mIntra);
        sM[i] = mi;
        sQs[i] = exp(mInter - mi) * scale;
    }
    barrier();
    // M_ij = S_ij · scale · exp(b_i − b_j + i_j − m_i) for j <= i
    uint so = pc.sOff + ch * CL * CL;
    for (uint idx = tid; idx < CL * CL; idx += 256u)
    {
        uint i = idx >> 6, j = idx & 63u;
        float mv = 0.0;
        if (i < len && j <= i) mv = SCR[so + idx] * scale * exp(((sB[i] - sB[j]) + (sBlo[i] - sBlo[j])) + sIg[j] - sM[i]);
        Ms[i][j] = mv;
    }
    barrier();
    // den_i = qs_i (q_i · n_c) + Σ_j M_ij, four invocations per token
    {
        uint i = tid >> 2, part = tid & 3u;
        float qn = 0.0, ms = 0.0;
        if (i < len)
        {
            uint nb = pc.nOff + ch * pc.dqk;
            for (uint a = part; a < pc.dqk; a += 4u) qn += QKV[qo + i * pc.rowStride + a] * SCR[nb + a];
            for (uint j = part; j <= i; j += 4u) ms += Ms[i][j];
        }
        // the four partial sums of a token sit in consecutive invocations: combine them through shared memory
        As[i][part] = qn;
        As[i][4u + part] = ms;
        barrier();
        if (part == 0u && i < len)
        {
            float q4 = As[i][0] + As[i][1] + As[i][2] + As[i][3];
            float m4 = As[i][4] + As[i][5] + As[i][6] + As[i][7];
            float den = q4 * sQs[i] + m4;
            sInv[i] = 1.0 / (max(abs(den), exp(-sM[i])) + pc.eps);
        }
        barrier();
    }

    // h tile 64 tokens × 64 columns: invocation (tx, ty) of 16 × 16 owns tokens ty + 16·i, columns tx + 16·j
    uint tx4 = tid & 15u, ty4 = tid >> 4;
    float acc[4][4];
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;
    // q_iᵀ C_c
    uint cb = pc.cOff + ch * pc.dqk * pc.dv;
    uint col0 = gl_WorkGroupID.x * 64u;
    // the next slab's loads are issued before this slab's products (a slab at a time was a chain of memory round trips)
    float an[4], bn[4];
    [[unroll]] for (uint e = 0u; e < 4u; e++) load_qc(tid + 256u * e, 0u, len, qo, cb, col0, an[e], bn[e]);
    for (uint a0 = 0u; a0 < pc.dqk; a0 += 16u)
    {
        [[unroll]] for (uint e = 0u; e < 4u; e++)
        {
            uint idx = tid + 256u * e;
            As[idx >> 4][idx & 15u] = an[e];
            Bs[idx >> 6][idx & 63u] = bn[e];
        }
        barrier();
        if (a0 + 16u < pc.dqk)
            [[unroll]] for (uint e = 0u; e < 4u; e++) load_qc(tid + 256u * e, a0 + 16u, len, qo, cb, col0, an[e], bn[e]);
        [[unroll]] for (uint cc = 0u; cc < 16u; cc++)
        {
            float qa[4], cv[4];
            [[unroll]] for (uint i = 0u; i < 4u; i++) qa[i] = As[ty4 + 16u * i][cc];
            [[unroll]] for (uint j = 0u; j < 4u; j++) cv[j] = Bs[cc][tx4 + 16u * j];
            [[unroll]] for (uint i = 0u; i < 4u; i++)
                [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] += qa[i] * cv[j];
        }
        barrier();
    }
    [[unroll]] for (uint i = 0u; i < 4u; i++)
    {
        uint t = ty4 + 16u * i;
        float q = t < len ? sQs[t] : 0.0;
        [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] *= q;
    }
    // + M V
    [[unroll]] for (uint e = 0u; e < 4u; e++) bn[e] = load_v(tid + 256u * e, 0u, len, vo, col0);
    for (uint j0 = 0u; j0 < len; j0 += 16u)
    {
        [[unroll]] for (uint e = 0u; e < 4u; e++)
        {
            uint idx = tid + 256u * e;
            Bs[idx >> 6][idx & 63u] = bn[e];
        }
        barrier();
        if (j0 + 16u < len)
            [[unroll]] for (uint e = 0u; e < 4u; e++) bn[e] = load_v(tid + 256u * e, j0 + 16u, len, vo, col0);
        [[unroll]] for (uint cc = 0u; cc < 16u; cc++)
        {
            float mr[4], vr[4];
            [[unroll]] for (uint i = 0u; i < 4u; i++) mr[i] = Ms[ty4 + 16u * i][j0 + cc];
            [[unroll]] for (uint j = 0u; j < 4u; j++) vr[j] = Bs[cc][tx4 + 16u * j];
            [[unroll]] for (uint i = 0u; i < 4u; i++)
                [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] += mr[i] * vr[j];
        }
        barrier();
    }
    [[unroll]] for (uint i = 0u; i < 4u; i++)
    {
        uint t = ty4 + 16u * i;
        if (t >= len) continue;
        [[unroll]] for (uint j = 0u; j < 4u; j++)
        {
            uint col = col0 + tx4 + 16u * j;
            if (col < pc.dv) H[pc.hOff + (t0 + t) * pc.hStride + h * pc.dv + col] = acc[i][j] * sInv[t];
        }
    }
    // the final m (from the scan) goes to the state once every chunk's kernels have read the old one
    if (gl_WorkGroupID.x == 0u && c == 0u && tid == 0u) S[pc.mOffS + h] = SCR[pc.recOff + (pc.nc * pc.NH + h) * REC_SIZE + REC_MENTER];
}
