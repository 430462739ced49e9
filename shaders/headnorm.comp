#version 450
// Multi-head LayerNorm (weight only) and output gate: for head h of token t,
// dst = (h - mean) · rsqrt(var + eps) · w · sigmoid(o), two-pass mean/variance. One workgroup per (head, token).
#include "common.glsl"
layout(local_size_x_id = 0) in;
#include "reduce.glsl"

layout(std430, binding = 0) readonly buffer Hb { float H[]; };
layout(std430, binding = 1) readonly buffer Ob { float O[]; };
layout(std430, binding = 2) readonly buffer Wb { float W[]; };
layout(std430, binding = 3) writeonly buffer Db { float D[]; };

layout(push_constant) uniform PC { uint hOff, hStride, oOff, oStride, dOff, dStride, dv, wOff; float eps; } pc;

void main()
{
    uint head = gl_WorkGroupID.x, t = gl_WorkGroupID.y;
    uint tid = gl_LocalInvocationIndex;
    uint base = head * pc.dv;
    uint ho = pc.hOff + t * pc.hStride + base;
    float s = 0.0;
    for (uint j = tid; j < pc.dv; j += WG_INVOCATIONS) s += H[ho + j];
    float mean = wg_sum(s) / float(pc.dv);
    float q = 0.0;
    for (uint j = tid; j < pc.dv; j += WG_INVOCATIONS) { float d = H[ho + j] - mean; q += d * d; }
    float var = wg_sum(q) / float(pc.dv);
    float inv = 1.0 / sqrt(var + pc.eps);
    uint oo = pc.oOff + t * pc.oStride + base;
    uint dd = pc.dOff + t * pc.dStride + base;
    for (uint j = tid; j < pc.dv; j += WG_INVOCATIONS)
        D[dd + j] = (H[ho + j] - mean) * inv * W[pc.wOff + base + j] * sigmoid(O[oo + j]);
}
