#version 450
// x = cap · tanh(x / cap), in place
#include "common.glsl"
layout(local_size_x = 256) in;

layout(std430, binding = 0) buffer Xb { float X[]; };

layout(push_constant) uniform PC { uint xOff, xStride, cols, nTok; float cap; } pc;

void main()
{
    uint j = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (j >= pc.cols) return;
    uint o = pc.xOff + t * pc.xStride + j;
    X[o] = soft_cap(X[o], pc.cap);
}
