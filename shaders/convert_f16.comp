#version 450
// f16 operands for the tensor-core GEMM (matmul_coopmat.glsl), converted once instead of once per tile:
//   MODE 0: activations, x[t, k] float32 (xOff, xStride in floats) → D[t, kPad] halves;
//   MODE 1: a weight of type WTYPE (weights.glsl), rows [rowStart, rowStart + rows) → D[r, kPad] halves (the F16 layout).
// Each invocation writes 8 halves (one uvec4); columns past `cols` are zero. Rounding is packHalf2x16's, the same as the
// GEMM's own conversion, so both give the same bits.
#extension GL_EXT_control_flow_attributes : enable
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint MODE = 0u;
layout(constant_id = 1) const uint WTYPE = 0u;

layout(std430, binding = 0) readonly buffer W4b { uvec4 W4[]; };
layout(std430, binding = 1) readonly buffer W1b { uint W1[]; };
layout(std430, binding = 2) readonly buffer Xb { float X[]; };
layout(std430, binding = 3) writeonly buffer Db { uvec4 D[]; };

layout(push_constant) uniform PC { uint rows, cols, groups, wStride, scaleBase, xOff, xStride, rowStart; } pc;

#include "weights.glsl"

void main()
{
    uint n = pc.rows * pc.groups;
    for (uint i = gl_GlobalInvocationID.x; i < n; i += gl_NumWorkGroups.x * 256u)
    {
        uint r = i / pc.groups, k = 8u * (i % pc.groups);
        vec4 lo = vec4(0.0), hi = vec4(0.0);
        if (MODE == 1u)
        {
            if (k < pc.cols) w_decode8(pc.rowStart + r, k >> 3, pc.wStride, pc.scaleBase, lo, hi);
        }
        else
        {
            float v[8];
            uint e = pc.xOff + r * pc.xStride + k;
            [[unroll]] for (uint j = 0u; j < 8u; j++) v[j] = k + j < pc.cols ? X[e + j] : 0.0;
            lo = vec4(v[0], v[1], v[2], v[3]);
            hi = vec4(v[4], v[5], v[6], v[7]);
        }
        D[i] = uvec4(packHalf2x16(lo.xy), packHalf2x16(lo.zw), packHalf2x16(hi.xy), packHalf2x16(hi.zw));
    }
}
