#version 450
// Chunk kernel 2 of 4 (see mlstm_chunk.glsl): ΔC_c = Σ_j (w_j k_j) v_jᵀ for a 64 × 64 tile (rows of dqk, columns of dv)
// of one chunk of one head; the dv-tile-0 workgroups also write Δn_c = Σ_j w_j k_j for their rows.
// Invocation (tx, ty) of 16 × 16 owns a 4 × 4 register tile: rows ty + 16·i, columns tx + 16·j.
#include "common.glsl"
#include "mlstm_chunk.glsl"
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Qb { float QKV[]; };
layout(std430, binding = 1) buffer Xb { float SCR[]; };

layout(push_constant) uniform PC
{
    uint kOff, vOff, rowStride, T, L, NH, dqk, dv, recOff, nOff, cOff;
} pc;

shared float Ks[16][64];
shared float Vs[16][64];

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid & 15u, ty = tid >> 4;
    uint ch = gl_WorkGroupID.z, c = ch / pc.NH, h = ch % pc.NH;
    uint col0 = gl_WorkGroupID.x * 64u;
    uint a0 = gl_WorkGroupID.y * 64u;
    uint t0 = c * pc.L;
    uint len = min(pc.L, pc.T - t0);
    uint rec = pc.recOff + ch * REC_SIZE;
    uint ko = pc.kOff + t0 * pc.rowStride + h * pc.dqk, vo = pc.vOff + t0 * pc.rowStride + h * pc.dv;
    float acc[4][4];
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;
    float nacc = 0.0;   // Δn for row a0 + tid (tid < 64, dv tile 0)
    for (uint j0 = 0u; j0 < len; j0 += 16u)
    {
        [[unroll]] for (uint e = 0u; e < 4u; e++)
        {
            uint idx = tid + 256u * e;
            uint rj = idx >> 6, cc = idx & 63u;         // token j0 + rj; k column a0 + cc, v column tile + cc
            bool tok = j0 + rj < len;
            Ks[rj][cc] = (tok && a0 + cc < pc.dqk) ? SCR[rec + REC_W + j0 + rj] * QKV[ko + (j0 + rj) * pc.rowStride + a0 + cc] : 0.0;
            Vs[rj][cc] = (tok && col0 + cc < pc.dv) ? QKV[vo + (j0 + rj) * pc.rowStride + col0 + cc] : 0.0;
        }
        barrier();
        [[unroll]] for (uint cc = 0u; cc < 16u; cc++)
        {
            float kr[4], vr[4];
            [[unroll]] for (uint i = 0u; i < 4u; i++) kr[i] = Ks[cc][ty + 16u * i];
            [[unroll]] for (uint j = 0u; j < 4u; j++) vr[j] = Vs[cc][tx + 16u * j];
            [[unroll]] for (uint i = 0u; i < 4u; i++)
                [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] += kr[i] * vr[j];
        }
        if (gl_WorkGroupID.x == 0u && tid < 64u)
            [[unroll]] for (uint cc = 0u; cc < 16u; cc++) nacc += Ks[cc][tid];
        barrier();
    }
    uint cb = pc.cOff + ch * pc.dqk * pc.dv;
    [[unroll]] for (uint i = 0u; i < 4u; i++)
    {
        uint a = a0 + ty + 16u * i;
        if (a >= pc.dqk) continue;
        [[unroll]] for (uint j = 0u; j < 4u; j++)
        {
            uint col = col0 + tx + 16u * j;
            if (col < pc.dv) SCR[cb + a * pc.dv + col] = acc[i][j];
        }
    }
    if (gl_WorkGroupID.x == 0u && tid < 64u && a0 + tid < pc.dqk) SCR[pc.nOff + ch * pc.dqk + a0 + tid] = nacc;
}
