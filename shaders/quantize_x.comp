#version 450
// Activations to 8 bits for the Q8_0/Q4_0 matvecs with pre-quantized input (matvec.glsl, PREQ): token t's row of x
// (times an RmsNorm weight when NORM) in 32-element blocks, d = max|x| / 127, q = roundEven(x / d): the quantization
// the matvec otherwise does in every workgroup for its own rows (same expressions, same bits), here once per token.
// Writes per block the 32 quants (two uvec4: XQ4[2b], XQ4[2b + 1]) and vec2(d, Σq) (XD[b]; Σq folds Q4_0's −8 offset
// in), and per token and workgroup the partial Σ x² of the raw row (XSS[t·groups + g], for the fused RmsNorm; the
// matvec adds the partials in order).
// Grid (⌈nb / 64⌉ workgroups, tokens): one 32-block per invocation, so that a token is spread over the GPU (one
// workgroup per token took ~5 µs on the H200, a fifth of a 4096² matvec). x's columns are whole 32-blocks (a
// quantized weight's rows are).
#include "common.glsl"
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint NORM = 0u;

layout(std430, binding = 0) readonly buffer Xb { vec4 X4[]; };
layout(std430, binding = 1) readonly buffer NWb { vec4 NW4[]; };
layout(std430, binding = 2) writeonly buffer XQb { uvec4 XQ4[]; };
layout(std430, binding = 3) writeonly buffer XDb { vec2 XD[]; };
layout(std430, binding = 4) writeonly buffer XSb { float XSS[]; };

layout(push_constant) uniform PC
{
    uint cols, xOff, xStride, nb, xdOff, xsOff;
} pc;

#if USE_SUBGROUPS
shared float red[64];
#else
shared float red[64];
#endif

void main()
{
    const uint WG = gl_WorkGroupSize.x;
    uint tid = gl_LocalInvocationID.x;
    uint t = gl_WorkGroupID.y;
    uint xs = t * gl_NumWorkGroups.x + gl_WorkGroupID.x;   // this workgroup's Σx² partial
    uint xb0 = (pc.xOff + t * pc.xStride) >> 2;
    float ss = 0.0;
    uint c = gl_WorkGroupID.x * WG + tid;
    if (c < pc.nb)
    {
        vec4 x[8];
        [[unroll]] for (uint i = 0u; i < 8u; i++) x[i] = X4[xb0 + 8u * c + i];
        if (NORM != 0u)
            [[unroll]] for (uint i = 0u; i < 8u; i++)
            {
                ss += dot(x[i], x[i]);
                x[i] *= NW4[8u * c + i];
            }
        vec4 m4 = max(abs(x[0]), abs(x[1]));
        [[unroll]] for (uint i = 2u; i < 8u; i++) m4 = max(m4, abs(x[i]));
        float amax = max(max(m4.x, m4.y), max(m4.z, m4.w));
        float dx = amax / 127.0;
        float rinv = dx != 0.0 ? 1.0 / dx : 0.0;
        uint xq[8];
        int sum = 0;
        [[unroll]] for (uint i = 0u; i < 8u; i++)
        {
            ivec4 q = ivec4(roundEven(x[i] * rinv));
            sum += q.x + q.y + q.z + q.w;
            uvec4 b = uvec4(q) & 0xFFu;
            xq[i] = b.x | (b.y << 8) | (b.z << 16) | (b.w << 24);
        }
        uint o = t * pc.nb + c;
        XQ4[2u * o] = uvec4(xq[0], xq[1], xq[2], xq[3]);
        XQ4[2u * o + 1u] = uvec4(xq[4], xq[5], xq[6], xq[7]);
        XD[pc.xdOff + o] = vec2(dx, float(sum));
    }
    if (NORM == 0u) return;
#if USE_SUBGROUPS
    ss = subgroupAdd(ss);
    if (gl_NumSubgroups == 1u)
    {
        if (subgroupElect()) XSS[pc.xsOff + xs] = ss;
        return;
    }
    if (subgroupElect()) red[gl_SubgroupID] = ss;
    barrier();
    if (tid == 0u)
    {
        float s = 0.0;
        for (uint i = 0u; i < gl_NumSubgroups; i++) s += red[i];
        XSS[pc.xsOff + xs] = s;
    }
#else
    red[tid] = ss;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1u)
    {
        if (tid < s) red[tid] += red[tid + s];
        barrier();
    }
    if (tid == 0u) XSS[pc.xsOff + xs] = red[0];
#endif
}
