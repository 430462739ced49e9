#version 450
// Activations to 8 bits for the Q8_0/Q4_0 matvecs with pre-quantized input (matvec.glsl, PREQ): token t's row of x
// (times an RmsNorm weight when NORM) in 32-element blocks, d = max|x| / 127, q = roundEven(x / d): the quantization
// the matvec otherwise does in every workgroup for its own rows (same expressions, same bits), here once per token.
// Writes per block the 32 quants (two uvec4: XQ4[2b], XQ4[2b + 1]) and vec2(d, Σq) (XD[b]; Σq folds Q4_0's −8 offset
// in), and per block the partial Σ x² of the raw row (XSS[t·nb + b], for the fused RmsNorm; the matvec adds the
// partials). A matvec whose output is the next fused norm's input quantizes it the same way (M_QOUT in matvec.glsl):
// the same bits.
// With NORM and `totals` (several tokens) it also writes each token's whole Σ x² (XSS[xsOff + T·nb + t]), summed as the
// matvec's parts_sum sums the partials (invocation i adds blocks i, i + 128, ... in order, then reduce.glsl's wg_sum over
// a workgroup of 128, the matvec's size): a matvec over several tokens reads it instead of every workgroup summing every
// token's partials again, and gets the same bits as a single token's matvec summing them itself.
// Grid (1, tokens): one workgroup of 128 per token (the matvec's workgroup size, whose sum order the total follows).
// x's columns are whole 32-blocks (a quantized weight's rows are).
#include "common.glsl"
#include "quant8.glsl"
layout(local_size_x = 128) in;
#include "reduce.glsl"
layout(constant_id = 0) const uint NORM = 0u;

layout(std430, binding = 0) readonly buffer Xb { vec4 X4[]; };
layout(std430, binding = 1) readonly buffer NWb { vec4 NW4[]; };
layout(std430, binding = 2) writeonly buffer XQb { uvec4 XQ4[]; };
layout(std430, binding = 3) writeonly buffer XDb { vec2 XD[]; };
layout(std430, binding = 4) writeonly buffer XSb { float XSS[]; };

layout(push_constant) uniform PC
{
    uint xOff, xStride, nb, xdOff, xsOff;
    uint totals;   // write each token's whole Σ x² (NORM; several tokens: one token's matvec sums the partials itself)
} pc;

void main()
{
    const uint WG = gl_WorkGroupSize.x;
    uint tid = gl_LocalInvocationID.x;
    uint t = gl_WorkGroupID.y;
    uint xb0 = (pc.xOff + t * pc.xStride) >> 2;
    float own = 0.0;   // this invocation's blocks' Σ x², in order
    for (uint c = tid; c < pc.nb; c += WG)
    {
        vec4 x[8], nw[8];
        [[unroll]] for (uint i = 0u; i < 8u; i++)
        {
            x[i] = X4[xb0 + 8u * c + i];
            nw[i] = NORM != 0u ? NW4[8u * c + i] : vec4(1.0);
        }
        uvec4 qa, qb;
        vec2 dd;
        float ss;
        quant8_block(x, NORM != 0u, nw, qa, qb, dd, ss);
        uint o = t * pc.nb + c;
        XQ4[2u * o] = qa;
        XQ4[2u * o + 1u] = qb;
        XD[pc.xdOff + o] = dd;
        if (NORM != 0u) XSS[pc.xsOff + o] = ss;
        own += ss;
    }
    if (NORM != 0u && pc.totals != 0u)   // uniform
    {
        float total = wg_sum(own);
        if (tid == 0u) XSS[pc.xsOff + gl_NumWorkGroups.y * pc.nb + t] = total;
    }
}
