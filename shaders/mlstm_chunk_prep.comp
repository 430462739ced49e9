#version 450
// Chunk kernel 1 of 4 (see mlstm_chunk.glsl): gates and raw scores of one chunk of one head.
#include "common.glsl"
#include "mlstm_chunk.glsl"
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Qb { float QKV[]; };
layout(std430, binding = 1) readonly buffer Gb { float G[]; };
layout(std430, binding = 2) buffer Xb { float SCR[]; };

layout(push_constant) uniform PC
{
    uint qOff, kOff, rowStride, gOff, gStride, T, L, NH, dqk, recOff, sOff;
    float cap;
} pc;

shared float sIg[CL], sLf[CL], sB[CL], sBlo[CL], sA[CL];
shared float sMax;
shared float Qs[CL][17], Ks[CL][17];

// item idx (token idx / 16, column a0 + idx % 16) of a 16-column slab of q and k (zero outside the chunk and dqk)
void load_qk(uint idx, uint a0, uint len, uint qo, uint ko, out float q, out float k)
{
    uint r = idx >> 4, cc = idx & 15u;
    bool ok = r < len && a0 + cc < pc.dqk;
    q = ok ? QKV[qo + r * pc.rowStride + a0 + cc] : 0.0;
    k = ok ? QKV[ko + r * pc.rowStride + a0 + cc] : 0.0;
}

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint c = gl_WorkGroupID.x, h = gl_WorkGroupID.y;
    uint t0 = c * pc.L;
    uint len = min(pc.L, pc.T - t0);
    uint ch = c * pc.NH + h;
    uint rec = pc.recOff + ch * REC_SIZE;

    if (tid < len)
    {
        uint t = t0 + tid;
        sIg[tid] = soft_cap(G[pc.gOff + t * pc.gStride + h], pc.cap);
        sLf[tid] = log_sigmoid(soft_cap(G[pc.gOff + t * pc.gStride + pc.NH + h], pc.cap));
    }
    barrier();
    if (tid == 0u)
    {
        // b_j = Σ_{r<=j} lf_r as a compensated pair (hi, lo) (Neumaier); a_j = Σ_{r>j} lf_r + i_j (reverse running
        // sum, no cancellation). The running sums stay in shared memory (stored to the record by every invocation
        // below): read back from the record, each w_j waited for its own store, a chain of memory round trips.
        precise float acc = 0.0, lo = 0.0;
        for (uint j = 0u; j < len; j++)
        {
            precise float x = sLf[j], t = acc + x;
            lo += abs(acc) >= abs(x) ? (acc - t) + x : (x - t) + acc;
            acc = t;
            sB[j] = acc;
            sBlo[j] = lo;
        }
        float rev = 0.0, amax = -1.0 / 0.0;
        for (uint j = len; j-- > 0u; ) { float a = rev + sIg[j]; sA[j] = a; rev += sLf[j]; amax = max(amax, a); }
        SCR[rec + REC_G] = acc + lo;
        SCR[rec + REC_MLOC] = amax;
        sMax = amax;
    }
    barrier();
    if (tid < len)
    {
        SCR[rec + REC_B + tid] = sB[tid];
        SCR[rec + REC_BLO + tid] = sBlo[tid];
        SCR[rec + REC_IG + tid] = sIg[tid];
        SCR[rec + REC_W + tid] = exp(sA[tid] - sMax);
    }

    // S = Q Kᵀ (64 x 64, 4 x 4 per invocation), dqk in slabs of 16
    uint tx = tid & 15u, ty = tid >> 4;
    float acc[4][4];
    [[unroll]] for (uint a = 0u; a < 4u; a++)
        [[unroll]] for (uint b = 0u; b < 4u; b++) acc[a][b] = 0.0;
    uint qo = pc.qOff + t0 * pc.rowStride + h * pc.dqk, ko = pc.kOff + t0 * pc.rowStride + h * pc.dqk;
    // the next slab's loads are issued before this slab's products (a slab at a time was a chain of memory round trips)
    float qn[4], kn[4];
    [[unroll]] for (uint e = 0u; e < 4u; e++) load_qk(tid + 256u * e, 0u, len, qo, ko, qn[e], kn[e]);
    for (uint a0 = 0u; a0 < pc.dqk; a0 += 16u)
    {
        [[unroll]] for (uint e = 0u; e < 4u; e++)
        {
            uint idx = tid + 256u * e;           // 0 .. 1023 = 64 tokens x 16 columns
            Qs[idx >> 4][idx & 15u] = qn[e];
            Ks[idx >> 4][idx & 15u] = kn[e];
        }
        barrier();
        if (a0 + 16u < pc.dqk)
            [[unroll]] for (uint e = 0u; e < 4u; e++) load_qk(tid + 256u * e, a0 + 16u, len, qo, ko, qn[e], kn[e]);
        [[unroll]] for (uint cc = 0u; cc < 16u; cc++)
        {
            float qa[4], kb[4];
            [[unroll]] for (uint a = 0u; a < 4u; a++) qa[a] = Qs[ty + 16u * a][cc];
            [[unroll]] for (uint b = 0u; b < 4u; b++) kb[b] = Ks[tx + 16u * b][cc];
            [[unroll]] for (uint a = 0u; a < 4u; a++)
                [[unroll]] for (uint b = 0u; b < 4u; b++) acc[a][b] += qa[a] * kb[b];
        }
        barrier();
    }
    uint so = pc.sOff + ch * CL * CL;
    [[unroll]] for (uint a = 0u; a < 4u; a++)
        [[unroll]] for (uint b = 0u; b < 4u; b++)
            SCR[so + (ty + 16u * a) * CL + tx + 16u * b] = acc[a][b];
}
