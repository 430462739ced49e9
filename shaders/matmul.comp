#version 450
// dst[t, row] (+)= Σ_k x[t, k] · W[row, k] (+ bias[row]) for many tokens (prefill): a shared-memory tiled GEMM,
// 64 tokens x 64 rows per workgroup, K in steps of 32, each of the 256 invocations computing a 4x4 micro-tile.
// Weights are dequantized into shared memory as float32 (one 8-element group per invocation and step).
#include "common.glsl"

layout(local_size_x = 256) in;
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

const uint BM = 64u, BN = 64u, BK = 32u;
shared float Xs[BK][BM + 1u];
shared float Ws[BK][BN + 1u];

vec4 x4_at(uint t, uint k)
{
    if (t >= pc.nTok || k >= pc.cols) return vec4(0.0);
    vec4 v = X4[(pc.xOff + t * pc.xStride + k) >> 2];
    if (k + 4u > pc.cols)
    {
        uint n = pc.cols - k;
        v = vec4(v.x, n > 1u ? v.y : 0.0, n > 2u ? v.z : 0.0, 0.0);
    }
    return v;
}

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid & 15u, ty = tid >> 4;
    uint rowBase = gl_WorkGroupID.x * BN;
    uint tokBase = gl_WorkGroupID.y * BM;
    // loader roles: one (token | row, 8-element group) pair per invocation
    uint lm = tid >> 2, lq = tid & 3u;

    float acc[4][4];
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;

    uint padCols = wt_is_quant() ? pc.cols : ((pc.cols + 7u) & ~7u);
    for (uint k0 = 0u; k0 < pc.cols; k0 += BK)
    {
        uint k = k0 + 8u * lq;
        vec4 a = x4_at(tokBase + lm, k), b = x4_at(tokBase + lm, k + 4u);
        Xs[8u * lq + 0u][lm] = a.x; Xs[8u * lq + 1u][lm] = a.y; Xs[8u * lq + 2u][lm] = a.z; Xs[8u * lq + 3u][lm] = a.w;
        Xs[8u * lq + 4u][lm] = b.x; Xs[8u * lq + 5u][lm] = b.y; Xs[8u * lq + 6u][lm] = b.z; Xs[8u * lq + 7u][lm] = b.w;
        vec4 lo = vec4(0.0), hi = vec4(0.0);
        uint row = rowBase + lm;
        if (row < pc.rows && k < padCols) w_decode8(row, k >> 3, pc.wStride, pc.scaleBase, lo, hi);
        Ws[8u * lq + 0u][lm] = lo.x; Ws[8u * lq + 1u][lm] = lo.y; Ws[8u * lq + 2u][lm] = lo.z; Ws[8u * lq + 3u][lm] = lo.w;
        Ws[8u * lq + 4u][lm] = hi.x; Ws[8u * lq + 5u][lm] = hi.y; Ws[8u * lq + 6u][lm] = hi.z; Ws[8u * lq + 7u][lm] = hi.w;
        barrier();
        [[unroll]] for (uint kk = 0u; kk < BK; kk++)
        {
            float xa[4], wb[4];
            [[unroll]] for (uint i = 0u; i < 4u; i++) xa[i] = Xs[kk][ty + 16u * i];
            [[unroll]] for (uint j = 0u; j < 4u; j++) wb[j] = Ws[kk][tx + 16u * j];
            [[unroll]] for (uint i = 0u; i < 4u; i++)
                [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] += xa[i] * wb[j];
        }
        barrier();
    }

    [[unroll]] for (uint i = 0u; i < 4u; i++)
    {
        uint t = tokBase + ty + 16u * i;
        if (t >= pc.nTok) continue;
        [[unroll]] for (uint j = 0u; j < 4u; j++)
        {
            uint row = rowBase + tx + 16u * j;
            if (row >= pc.rows) continue;
            float v = acc[i][j];
            if ((pc.flags & 2u) != 0u) v += B[pc.bOff + row];
            uint o = pc.dOff + t * pc.dStride + row;
            if ((pc.flags & 1u) != 0u) v += D[o];
            D[o] = v;
        }
    }
}
