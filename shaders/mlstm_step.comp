#version 450
// The mLSTM cell for one token (recurrent step form, xlstm7b-spec.md §2.2 step 6), fused: gate soft-cap, stabilizer,
// state update and output in one dispatch per block. Workgroup (column tile of 64, head): each invocation owns one
// column j of C for a quarter of the dqk rows; every workgroup recomputes the gates and q̂·n_new (cheap); the n and m
// updates are written by the last workgroup of the head to finish (atomic counter, reset to 0 by that workgroup), after
// every other workgroup of the head has read the old n and m.
#include "common.glsl"
layout(local_size_x = 64, local_size_y = 4) in;
#include "reduce.glsl"

layout(std430, binding = 0) readonly buffer Qb { float QKV[]; };
layout(std430, binding = 1) readonly buffer Gb { float G[]; };
layout(std430, binding = 2) buffer Sb { float S[]; };
layout(std430, binding = 3) writeonly buffer Hb { float H[]; };
layout(std430, binding = 4) buffer Cb { uint CNT[]; };

layout(push_constant) uniform PC
{
    uint qOff, kOff, vOff, gOff, hOff, NH, dqk, dv, nOff, mOff, cntOff, tiles;
    float cap, eps;
} pc;

shared float part[4][64];
shared bool isLast;

void main()
{
    uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
    uint tid = gl_LocalInvocationIndex;
    uint h = gl_WorkGroupID.y;
    uint j = gl_WorkGroupID.x * 64u + lx;
    uint qo = pc.qOff + h * pc.dqk, ko = pc.kOff + h * pc.dqk, vo = pc.vOff + h * pc.dv;
    uint no = pc.nOff + h * pc.dqk;

    float ig = soft_cap(G[pc.gOff + h], pc.cap);
    float fg = soft_cap(G[pc.gOff + pc.NH + h], pc.cap);
    float mOld = S[pc.mOff + h];
    float lf = log_sigmoid(fg);
    float mNew = max(lf + mOld, ig);
    float fa = exp(lf + mOld - mNew);
    float ia = exp(ig - mNew);
    float scale = 1.0 / sqrt(float(pc.dqk));

    // q̂ · n_new
    float qn = 0.0;
    for (uint a = tid; a < pc.dqk; a += 256u)
        qn += (QKV[qo + a] * scale) * (fa * S[no + a] + ia * QKV[ko + a]);
    qn = wg_sum(qn);
    float inv = 1.0 / (max(abs(qn), exp(-mNew)) + pc.eps);

    // C update and q̂ᵀC
    float acc = 0.0;
    if (j < pc.dv)
    {
        float vj = QKV[vo + j];
        uint cbase = h * pc.dqk * pc.dv + j;
        for (uint a = ly; a < pc.dqk; a += 4u)
        {
            uint idx = cbase + a * pc.dv;
            float c = fa * S[idx] + (ia * QKV[ko + a]) * vj;
            S[idx] = c;
            acc += (QKV[qo + a] * scale) * c;
        }
    }
    part[ly][lx] = acc;
    barrier();
    if (ly == 0u && j < pc.dv)
        H[pc.hOff + h * pc.dv + j] = (part[0][lx] + part[1][lx] + part[2][lx] + part[3][lx]) * inv;

    // n and m: written once per head, by the workgroup that finishes last
    if (tid == 0u)
    {
        memoryBarrierBuffer();
        uint done = atomicAdd(CNT[pc.cntOff + h], 1u);
        isLast = done == pc.tiles - 1u;
    }
    barrier();
    if (isLast)
    {
        for (uint a = tid; a < pc.dqk; a += 256u) S[no + a] = fa * S[no + a] + ia * QKV[ko + a];
        if (tid == 0u)
        {
            S[pc.mOff + h] = mNew;
            atomicExchange(CNT[pc.cntOff + h], 0u);
        }
    }
}
