#version 450
// dst[t] = table[ids[t]] (dequantized), for the rows [rowStart, rowStart + rowCount) held by this part of the table:
// a table split into several buffers is gathered with one dispatch per part; each token row is written by one part.
#include "common.glsl"

layout(local_size_x = 64) in;
layout(constant_id = 2) const uint WTYPE = 0u;

layout(std430, binding = 0) readonly buffer W4b { uvec4 W4[]; };
layout(std430, binding = 1) readonly buffer W1b { uint W1[]; };
layout(std430, binding = 2) readonly buffer Ib { int ids[]; };
layout(std430, binding = 3) writeonly buffer Db { float D[]; };

layout(push_constant) uniform PC
{
    uint rowStart, rowCount, cols, wStride, scaleBase, dOff, dStride, nTok;
} pc;

#include "weights.glsl"

void main()
{
    uint g = gl_GlobalInvocationID.x;
    uint t = gl_WorkGroupID.y;
    if (8u * g >= pc.cols || t >= pc.nTok) return;
    uint id = uint(ids[t]);
    if (id < pc.rowStart || id - pc.rowStart >= pc.rowCount) return;
    vec4 lo, hi;
    w_decode8(id - pc.rowStart, g, pc.wStride, pc.scaleBase, lo, hi);
    float v[8] = float[8](lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
    uint o = pc.dOff + t * pc.dStride + 8u * g;
    uint n = min(8u, pc.cols - 8u * g);
    for (uint e = 0u; e < n; e++) D[o + e] = v[e];
}
