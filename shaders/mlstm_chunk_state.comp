#version 450
// Chunk part 3 of 3 (see mlstm_chunk.glsl): C = decay · C + Σ_j (w_j k_j) v_jᵀ, in place.
// Workgroup (column tile of 64, row tile of 64, head); invocation (column tx, row group ty) owns rows ty, ty+4, ...
#include "common.glsl"
#include "mlstm_chunk.glsl"
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Qb { float QKV[]; };
layout(std430, binding = 1) buffer Sb { float S[]; };
layout(std430, binding = 2) readonly buffer Xb { float SCR[]; };

layout(push_constant) uniform PC
{
    uint kOff, vOff, rowStride, len, dqk, dv;
} pc;

shared float Ks[16][65];
shared float Vs[16][64];

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid & 63u, ty = tid >> 6;
    uint h = gl_WorkGroupID.z;
    uint col = gl_WorkGroupID.x * 64u + tx;
    uint a0 = gl_WorkGroupID.y * 64u;
    uint len = pc.len;
    uint scr = h * SCR_HEAD;
    uint ko = pc.kOff + h * pc.dqk, vo = pc.vOff + h * pc.dv;
    uint cbase = h * pc.dqk * pc.dv;
    float decay = SCR[scr + SCR_DECAY];
    float acc[16];
    [[unroll]] for (uint i = 0u; i < 16u; i++)
    {
        uint a = a0 + ty + 4u * i;
        acc[i] = (a < pc.dqk && col < pc.dv) ? S[cbase + a * pc.dv + col] * decay : 0.0;
    }
    for (uint j0 = 0u; j0 < len; j0 += 16u)
    {
        [[unroll]] for (uint e = 0u; e < 4u; e++)
        {
            uint idx = tid + 256u * e;
            uint rj = idx >> 6, cc = idx & 63u;         // token j0 + rj; k column a0 + cc, v column tile + cc
            bool tok = j0 + rj < len;
            Ks[rj][cc] = (tok && a0 + cc < pc.dqk) ? SCR[scr + SCR_W + j0 + rj] * QKV[ko + (j0 + rj) * pc.rowStride + a0 + cc] : 0.0;
            uint gc = gl_WorkGroupID.x * 64u + cc;
            Vs[rj][cc] = (tok && gc < pc.dv) ? QKV[vo + (j0 + rj) * pc.rowStride + gc] : 0.0;
        }
        barrier();
        [[unroll]] for (uint c = 0u; c < 16u; c++)
        {
            float v = Vs[c][tx];
            [[unroll]] for (uint i = 0u; i < 16u; i++) acc[i] += Ks[c][ty + 4u * i] * v;
        }
        barrier();
    }
    if (col < pc.dv)
        [[unroll]] for (uint i = 0u; i < 16u; i++)
        {
            uint a = a0 + ty + 4u * i;
            if (a < pc.dqk) S[cbase + a * pc.dv + col] = acc[i];
        }
}
