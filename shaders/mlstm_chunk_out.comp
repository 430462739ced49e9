#version 450
// Chunk part 2 of 3 (see mlstm_chunk.glsl): h_i = (qs_i · q_iᵀ C_prev + Σ_j M_ij v_j) · invden_i.
// Workgroup (column tile of 64, head); invocation (column tx, token group ty) computes tokens ty, ty+4, ... (16 each).
#include "common.glsl"
#include "mlstm_chunk.glsl"
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Qb { float QKV[]; };
layout(std430, binding = 1) readonly buffer Sb { float S[]; };
layout(std430, binding = 2) readonly buffer Xb { float SCR[]; };
layout(std430, binding = 3) writeonly buffer Hb { float H[]; };

layout(push_constant) uniform PC
{
    uint qOff, vOff, rowStride, hOff, hStride, len, dqk, dv;
} pc;

shared float As[CL][17];
shared float Bs[16][64];

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid & 63u, ty = tid >> 6;
    uint h = gl_WorkGroupID.y;
    uint col = gl_WorkGroupID.x * 64u + tx;
    uint len = pc.len;
    uint scr = h * SCR_HEAD;
    uint qo = pc.qOff + h * pc.dqk, vo = pc.vOff + h * pc.dv;
    uint cbase = h * pc.dqk * pc.dv;
    float acc[16];
    [[unroll]] for (uint i = 0u; i < 16u; i++) acc[i] = 0.0;

    // q_iᵀ C_prev
    for (uint a0 = 0u; a0 < pc.dqk; a0 += 16u)
    {
        [[unroll]] for (uint e = 0u; e < 4u; e++)
        {
            uint idx = tid + 256u * e;
            uint r = idx >> 4, c = idx & 15u;          // token r, column a0 + c
            As[r][c] = (r < len && a0 + c < pc.dqk) ? QKV[qo + r * pc.rowStride + a0 + c] : 0.0;
            uint ra = idx >> 6, cc = idx & 63u;         // row a0 + ra of C, column tile + cc
            uint gc = gl_WorkGroupID.x * 64u + cc;
            Bs[ra][cc] = (a0 + ra < pc.dqk && gc < pc.dv) ? S[cbase + (a0 + ra) * pc.dv + gc] : 0.0;
        }
        barrier();
        [[unroll]] for (uint c = 0u; c < 16u; c++)
        {
            float b = Bs[c][tx];
            [[unroll]] for (uint i = 0u; i < 16u; i++) acc[i] += As[ty + 4u * i][c] * b;
        }
        barrier();
    }
    [[unroll]] for (uint i = 0u; i < 16u; i++)
    {
        uint t = ty + 4u * i;
        acc[i] *= t < len ? SCR[scr + SCR_QS + t] : 0.0;
    }

    // + M V
    for (uint j0 = 0u; j0 < len; j0 += 16u)
    {
        [[unroll]] for (uint e = 0u; e < 4u; e++)
        {
            uint idx = tid + 256u * e;
            uint r = idx >> 4, c = idx & 15u;          // M[r][j0 + c]
            As[r][c] = (j0 + c < len) ? SCR[scr + r * CL + j0 + c] : 0.0;
            uint rj = idx >> 6, cc = idx & 63u;         // v_{j0 + rj}[tile + cc]
            uint gc = gl_WorkGroupID.x * 64u + cc;
            Bs[rj][cc] = (j0 + rj < len && gc < pc.dv) ? QKV[vo + (j0 + rj) * pc.rowStride + gc] : 0.0;
        }
        barrier();
        [[unroll]] for (uint c = 0u; c < 16u; c++)
        {
            float b = Bs[c][tx];
            [[unroll]] for (uint i = 0u; i < 16u; i++) acc[i] += As[ty + 4u * i][c] * b;
        }
        barrier();
    }

    if (col < pc.dv)
        [[unroll]] for (uint i = 0u; i < 16u; i++)
        {
            uint t = ty + 4u * i;
            if (t < len) H[pc.hOff + t * pc.hStride + h * pc.dv + col] = acc[i] * SCR[scr + SCR_INVDEN + t];
        }
}
