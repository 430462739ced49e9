#version 450
// dst[t] = x[t] · rsqrt(mean(x[t]²) + eps) · w, one workgroup per row.
#include "common.glsl"
layout(local_size_x_id = 0) in;
#include "reduce.glsl"

layout(std430, binding = 0) readonly buffer Xb { float X[]; };
layout(std430, binding = 1) readonly buffer Wb { float W[]; };
layout(std430, binding = 2) writeonly buffer Db { float D[]; };

layout(push_constant) uniform PC { uint xOff, xStride, dOff, dStride, cols, wOff; float eps; } pc;

void main()
{
    uint t = gl_WorkGroupID.x;
    uint tid = gl_LocalInvocationIndex;
    uint xo = pc.xOff + t * pc.xStride;
    float ss = 0.0;
    for (uint i = tid; i < pc.cols; i += WG_INVOCATIONS) { float v = X[xo + i]; ss += v * v; }
    ss = wg_sum(ss);
    float inv = 1.0 / sqrt(ss / float(pc.cols) + pc.eps);
    uint d = pc.dOff + t * pc.dStride;
    for (uint i = tid; i < pc.cols; i += WG_INVOCATIONS) D[d + i] = X[xo + i] * inv * W[pc.wOff + i];
}
