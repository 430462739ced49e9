#version 450
// dst[t, row] (+)= W[row] · x[t] (+ bias[row]), token t = workgroup z (decode: one token; also small weights with a
// few tokens, whose rows stay in L2 between tokens). A workgroup of WG invocations computes NUM_ROWS
// consecutive rows: every invocation strides over 16-byte weight chunks (8 elements for F32/F16/BF16, one 32-element
// block for Q8_0/Q4_0), dequantizes in registers, and the workgroup reduces with subgroupAdd (+ shared memory across
// subgroups). x is read as vec4 (activation rows are 16-byte aligned).
#include "common.glsl"

layout(local_size_x_id = 0) in;                 // WG
layout(constant_id = 1) const uint NUM_ROWS = 2u;
layout(constant_id = 2) const uint WTYPE = 0u;

layout(std430, binding = 0) readonly buffer W4b { uvec4 W4[]; };
layout(std430, binding = 1) readonly buffer W1b { uint W1[]; };
layout(std430, binding = 2) readonly buffer Xb { vec4 X4[]; };
layout(std430, binding = 3) buffer Db { float D[]; };
layout(std430, binding = 4) readonly buffer Bb { float B[]; };

layout(push_constant) uniform PC
{
    uint rows, cols, wStride, scaleBase, xOff, xStride, dOff, dStride, bOff, flags, nTok;
} pc;

#include "weights.glsl"

#if USE_SUBGROUPS
shared float red[64 * 8];
#else
shared float red[2048];
#endif

vec4 x4_guarded(uint xOff, uint k)
{
    // elements [k, k+4) of x; those >= cols are 0 (never read past the row)
    if (k >= pc.cols) return vec4(0.0);
    vec4 v = X4[(xOff + k) >> 2];
    if (k + 4u > pc.cols)
    {
        uint n = pc.cols - k;
        v = vec4(v.x, n > 1u ? v.y : 0.0, n > 2u ? v.z : 0.0, 0.0);
    }
    return v;
}

void main()
{
    const uint WG = gl_WorkGroupSize.x;
    uint tid = gl_LocalInvocationID.x;
    uint r0 = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * NUM_ROWS;
    uint xOff = pc.xOff + gl_WorkGroupID.z * pc.xStride;
    uint dOff = pc.dOff + gl_WorkGroupID.z * pc.dStride;
    float acc[NUM_ROWS];
    [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) acc[r] = 0.0;

    if (wt_is_quant())
    {
        uint nb = pc.wStride;
        for (uint c = tid; c < nb; c += WG)
        {
            uint xb = (xOff >> 2) + 8u * c;
            vec4 x0 = X4[xb], x1 = X4[xb + 1u], x2 = X4[xb + 2u], x3 = X4[xb + 3u];
            vec4 x4 = X4[xb + 4u], x5 = X4[xb + 5u], x6 = X4[xb + 6u], x7 = X4[xb + 7u];
            [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++)
            {
                uint row = min(r0 + r, pc.rows - 1u);
                uint blk = row * nb + c;
                float d = w_scale(pc.scaleBase + blk);
                float s;
                if (WTYPE == WT_Q8_0)
                {
                    uvec4 u = W4[2u * blk], v = W4[2u * blk + 1u];
                    s = dot(unpack_i8x4(u.x), x0) + dot(unpack_i8x4(u.y), x1) + dot(unpack_i8x4(u.z), x2) + dot(unpack_i8x4(u.w), x3)
                      + dot(unpack_i8x4(v.x), x4) + dot(unpack_i8x4(v.y), x5) + dot(unpack_i8x4(v.z), x6) + dot(unpack_i8x4(v.w), x7);
                }
                else
                {
                    uvec4 u = W4[blk];
                    s = dot(unpack_q4x4(u.x, 0u), x0) + dot(unpack_q4x4(u.y, 0u), x1) + dot(unpack_q4x4(u.z, 0u), x2) + dot(unpack_q4x4(u.w, 0u), x3)
                      + dot(unpack_q4x4(u.x, 4u), x4) + dot(unpack_q4x4(u.y, 4u), x5) + dot(unpack_q4x4(u.z, 4u), x6) + dot(unpack_q4x4(u.w, 4u), x7);
                }
                acc[r] += s * d;
            }
        }
    }
    else
    {
        uint ng = (pc.cols + 7u) >> 3;
        for (uint g = tid; g < ng; g += WG)
        {
            uint k = 8u * g;
            vec4 x0, x1;
            if (k + 8u <= pc.cols)
            {
                uint xb = (xOff + k) >> 2;
                x0 = X4[xb];
                x1 = X4[xb + 1u];
            }
            else
            {
                x0 = x4_guarded(xOff, k);
                x1 = x4_guarded(xOff, k + 4u);
            }
            [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++)
            {
                uint row = min(r0 + r, pc.rows - 1u);
                vec4 lo, hi;
                w_decode8(row, g, pc.wStride, pc.scaleBase, lo, hi);
                acc[r] += dot(lo, x0) + dot(hi, x1);
            }
        }
    }

#if USE_SUBGROUPS
    [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) acc[r] = subgroupAdd(acc[r]);
    if (subgroupElect())
        [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) red[gl_SubgroupID * NUM_ROWS + r] = acc[r];
    barrier();
    if (tid < NUM_ROWS)
    {
        float s = 0.0;
        for (uint i = 0u; i < gl_NumSubgroups; i++) s += red[i * NUM_ROWS + tid];
        acc[0] = s;
    }
#else
    [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) red[r * WG + tid] = acc[r];
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1u)
    {
        if (tid < s)
            [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) red[r * WG + tid] += red[r * WG + tid + s];
        barrier();
    }
    if (tid < NUM_ROWS) acc[0] = red[tid * WG];
#endif
    if (tid < NUM_ROWS && r0 + tid < pc.rows)
    {
        uint row = r0 + tid;
        float v = acc[0];
        if ((pc.flags & 2u) != 0u) v += B[pc.bOff + row];
        uint o = dOff + row;
        if ((pc.flags & 1u) != 0u) v += D[o];
        D[o] = v;
    }
}
