#version 450
// dst[t] = index of the first maximum of x[t, 0 .. validCols), one workgroup per row (greedy decode reads back one id).
#include "common.glsl"
layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer Xb { float X[]; };
layout(std430, binding = 1) writeonly buffer Ob { int O[]; };

layout(push_constant) uniform PC { uint xOff, xStride, validCols, oOff; } pc;

#if USE_SUBGROUPS
shared float sv[128];
shared uint si[128];
#else
shared float sv[1024];
shared uint si[1024];
#endif

// a beats b: larger value, or equal value and smaller index
bool better(float va, uint ia, float vb, uint ib) { return va > vb || (va == vb && ia < ib); }

void main()
{
    uint t = gl_WorkGroupID.x;
    uint tid = gl_LocalInvocationIndex;
    const uint WG = gl_WorkGroupSize.x;
    uint xo = pc.xOff + t * pc.xStride;
    float best = -1.0 / 0.0;
    uint bi = 0xFFFFFFFFu;
    for (uint j = tid; j < pc.validCols; j += WG)
    {
        float v = X[xo + j];
        if (!isnan(v) && (bi == 0xFFFFFFFFu || v > best)) { best = v; bi = j; }
    }
#if USE_SUBGROUPS
    float m = subgroupMax(bi == 0xFFFFFFFFu ? -1.0 / 0.0 : best);
    uint cand = (bi != 0xFFFFFFFFu && best == m) ? bi : 0xFFFFFFFFu;
    uint ci = subgroupMin(cand);
    if (subgroupElect()) { sv[gl_SubgroupID] = m; si[gl_SubgroupID] = ci; }
    barrier();
    if (tid == 0u)
    {
        float b = sv[0]; uint i0 = si[0];
        for (uint s = 1u; s < gl_NumSubgroups; s++)
            if (si[s] != 0xFFFFFFFFu && (i0 == 0xFFFFFFFFu || better(sv[s], si[s], b, i0))) { b = sv[s]; i0 = si[s]; }
        O[pc.oOff + t] = i0 == 0xFFFFFFFFu ? 0 : int(i0);
    }
#else
    sv[tid] = best; si[tid] = bi;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1u)
    {
        if (tid < s)
        {
            float vb = sv[tid + s]; uint ib = si[tid + s];
            if (ib != 0xFFFFFFFFu && (si[tid] == 0xFFFFFFFFu || better(vb, ib, sv[tid], si[tid]))) { sv[tid] = vb; si[tid] = ib; }
        }
        barrier();
    }
    if (tid == 0u) O[pc.oOff + t] = si[0] == 0xFFFFFFFFu ? 0 : int(si[0]);
#endif
}
