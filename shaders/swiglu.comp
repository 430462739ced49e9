#version 450
// dst[t, j] = silu(gu[t, j]) · gu[t, F + j]
#include "common.glsl"
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Gb { float G[]; };
layout(std430, binding = 1) writeonly buffer Db { float D[]; };

layout(push_constant) uniform PC { uint gOff, gStride, dOff, dStride, F, nTok; } pc;

void main()
{
    uint j = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (j >= pc.F) return;
    uint g = pc.gOff + t * pc.gStride;
    float a = G[g + j];
    D[pc.dOff + t * pc.dStride + j] = a / (1.0 + exp(-a)) * G[g + pc.F + j];
}
