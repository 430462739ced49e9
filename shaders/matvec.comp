#version 450
// dst[t, row] (+)= W[row] · x[t] (+ bias[row]), token t = workgroup z (decode: one token; also small weights with a
// few tokens, whose rows stay in L2 between tokens). A workgroup of WG invocations computes NUM_ROWS rows: every
// invocation strides over 16-byte weight chunks (8 elements for F32/F16/BF16, one 32-element block for Q8_0/Q4_0),
// dequantizes in registers, and the workgroup reduces with subgroupAdd (+ shared memory across subgroups). x is read
// as vec4 (activation rows are 16-byte aligned).
//
// Q8_0/Q4_0 quants become floats without conversion instructions (see magic_f in weights.glsl): each field is masked
// in place (one bitwise op), and each bit position keeps its own accumulator, scaled by 2^-p once per block. The values
// and products are exactly those of (q − 8)·x and q·x; only the summation order differs from the plain form.
//
// MODE (specialization constant) fuses the small ops around a decode-step matvec (see VulkanBackend, "deferred ops"):
//   M_NORM     x is the raw residual; the matvec applies RmsNorm on the fly: every workgroup sums x² over the row as
//              it streams x (it reads all of x anyway), multiplies x by the norm weight, and scales its row sums by
//              rsqrt(mean(x²) + eps) at the end. With flags bit 4, workgroup 0 also writes the normalized row to A
//              for other readers.
//   M_SWIGLU   rows are taken in pairs (j, half + j) of a gate|up weight: each workgroup computes NUM_ROWS/2 gate rows
//              and the matching up rows, writes both to D and silu(gate)·up to S (one token).
//   M_SOFTCAP  the result is soft-capped (cap · tanh(v / cap)) before it is stored.
#include "common.glsl"

layout(local_size_x_id = 0) in;                 // WG
layout(constant_id = 1) const uint NUM_ROWS = 2u;
layout(constant_id = 2) const uint WTYPE = 0u;
layout(constant_id = 3) const uint MODE = 0u;
#define M_NORM 1u
#define M_SWIGLU 2u
#define M_SOFTCAP 4u

layout(std430, binding = 0) readonly buffer W4b { uvec4 W4[]; };
layout(std430, binding = 1) readonly buffer W1b { uint W1[]; };
layout(std430, binding = 2) readonly buffer Xb { vec4 X4[]; };
layout(std430, binding = 3) buffer Db { float D[]; };
layout(std430, binding = 4) readonly buffer Bb { float B[]; };
layout(std430, binding = 5) readonly buffer NWb { vec4 NW4[]; };   // M_NORM: the norm weight (F32, zero-padded to 8)
layout(std430, binding = 6) writeonly buffer Ab { float A[]; };    // M_NORM: the normalized row (flags bit 4)
layout(std430, binding = 7) writeonly buffer Sb { float S[]; };    // M_SWIGLU: silu(gate) · up

layout(push_constant) uniform PC
{
    uint rows, cols, wStride, scaleBase, xOff, xStride, dOff, dStride, bOff, flags, nTok;
    uint aOff, aStride, sOff, half_;
    float eps, cap;
} pc;

#include "weights.glsl"

const uint NV = NUM_ROWS + 1u;   // row sums + Σx²
#if USE_SUBGROUPS
shared float red[64 * 9];
#else
shared float red[256 * 9];
#endif
shared float tot[9];

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

// Q4_0: one uint holds the low nibbles of 4 bytes (elements e..e+3, xl) and their high nibbles (e+16..e+19, xh).
// Nibble fields sit at bits 0, 4, 8, 12 of w and of w >> 16; accumulator a<p> collects 2^p·(q − 8)·x.
void q4_word(uint w, vec4 xl, vec4 xh, inout float a0, inout float a4, inout float a8, inout float a12)
{
    uint t = w >> 16;
    a0  += (magic_f(w & 0xFu)    - 8388616.0) * xl.x;   // 2^23 + 8
    a4  += (magic_f(w & 0xF0u)   - 8388736.0) * xh.x;   // 2^23 + 8·16
    a8  += (magic_f(w & 0xF00u)  - 8390656.0) * xl.y;   // 2^23 + 8·256
    a12 += (magic_f(w & 0xF000u) - 8421376.0) * xh.y;   // 2^23 + 8·4096
    a0  += (magic_f(t & 0xFu)    - 8388616.0) * xl.z;
    a4  += (magic_f(t & 0xF0u)   - 8388736.0) * xh.z;
    a8  += (magic_f(t & 0xF00u)  - 8390656.0) * xl.w;
    a12 += (magic_f(t & 0xF000u) - 8421376.0) * xh.w;
}

float q4_block(uvec4 u, vec4 x[8])
{
    float a0 = 0.0, a4 = 0.0, a8 = 0.0, a12 = 0.0;
    q4_word(u.x, x[0], x[4], a0, a4, a8, a12);
    q4_word(u.y, x[1], x[5], a0, a4, a8, a12);
    q4_word(u.z, x[2], x[6], a0, a4, a8, a12);
    q4_word(u.w, x[3], x[7], a0, a4, a8, a12);
    return a0 + a4 * (1.0 / 16.0) + a8 * (1.0 / 256.0) + a12 * (1.0 / 4096.0);
}

// Q8_0: bytes 0/2 at bit 0 and bytes 1/3 at bit 8 (of w and w >> 16); (b ^ 0x80) = q + 128.
void q8_word(uint w, vec4 xv, inout float b0, inout float b8)
{
    uint t = w >> 16;
    b0 += (uintBitsToFloat((w & 0xFFu) ^ 0x4B000080u) - 8388736.0) * xv.x;     // 2^23 + 128
    b8 += (uintBitsToFloat((w & 0xFF00u) ^ 0x4B008000u) - 8421376.0) * xv.y;   // 2^23 + 128·256
    b0 += (uintBitsToFloat((t & 0xFFu) ^ 0x4B000080u) - 8388736.0) * xv.z;
    b8 += (uintBitsToFloat((t & 0xFF00u) ^ 0x4B008000u) - 8421376.0) * xv.w;
}

float q8_block(uvec4 u, uvec4 v, vec4 x[8])
{
    float b0 = 0.0, b8 = 0.0, c0 = 0.0, c8 = 0.0;
    q8_word(u.x, x[0], b0, b8);
    q8_word(u.y, x[1], c0, c8);
    q8_word(u.z, x[2], b0, b8);
    q8_word(u.w, x[3], c0, c8);
    q8_word(v.x, x[4], b0, b8);
    q8_word(v.y, x[5], c0, c8);
    q8_word(v.z, x[6], b0, b8);
    q8_word(v.w, x[7], c0, c8);
    return (b0 + c0) + (b8 + c8) * (1.0 / 256.0);
}

// Weight row of accumulator r in workgroup wgi.
uint row_of(uint wgi, uint r)
{
    if ((MODE & M_SWIGLU) != 0u)
    {
        const uint HALF = NUM_ROWS / 2u;
        uint j = min(wgi * HALF + (r % HALF), pc.half_ - 1u);
        return r < HALF ? j : pc.half_ + j;
    }
    return min(wgi * NUM_ROWS + r, pc.rows - 1u);
}

void main()
{
    const uint WG = gl_WorkGroupSize.x;
    const bool NORM = (MODE & M_NORM) != 0u;
    uint tid = gl_LocalInvocationID.x;
    uint wgi = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint xOff = pc.xOff + gl_WorkGroupID.z * pc.xStride;
    uint dOff = pc.dOff + gl_WorkGroupID.z * pc.dStride;
    float acc[NUM_ROWS];
    [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) acc[r] = 0.0;
    float ss = 0.0;

    if (wt_is_quant())
    {
        uint nb = pc.wStride;
        for (uint c = tid; c < nb; c += WG)
        {
            uint xb = (xOff >> 2) + 8u * c;
            vec4 x[8];
            [[unroll]] for (uint i = 0u; i < 8u; i++) x[i] = X4[xb + i];
            if (NORM)
                [[unroll]] for (uint i = 0u; i < 8u; i++)
                {
                    ss += dot(x[i], x[i]);
                    x[i] *= NW4[8u * c + i];
                }
            [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++)
            {
                uint blk = row_of(wgi, r) * nb + c;
                float d = w_scale(pc.scaleBase + blk);
                float s = WTYPE == WT_Q8_0 ? q8_block(W4[2u * blk], W4[2u * blk + 1u], x) : q4_block(W4[blk], x);
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
            if (NORM)
            {
                ss += dot(x0, x0) + dot(x1, x1);
                x0 *= NW4[2u * g];
                x1 *= NW4[2u * g + 1u];
            }
            [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++)
            {
                vec4 lo, hi;
                w_decode8(row_of(wgi, r), g, pc.wStride, pc.scaleBase, lo, hi);
                acc[r] += dot(lo, x0) + dot(hi, x1);
            }
        }
    }

#if USE_SUBGROUPS
    [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) acc[r] = subgroupAdd(acc[r]);
    if (NORM) ss = subgroupAdd(ss);
    if (subgroupElect())
    {
        [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) red[gl_SubgroupID * NV + r] = acc[r];
        red[gl_SubgroupID * NV + NUM_ROWS] = ss;
    }
    barrier();
    if (tid < NV)
    {
        float s = 0.0;
        for (uint i = 0u; i < gl_NumSubgroups; i++) s += red[i * NV + tid];
        tot[tid] = s;
    }
#else
    [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) red[r * WG + tid] = acc[r];
    red[NUM_ROWS * WG + tid] = ss;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1u)
    {
        if (tid < s)
            [[unroll]] for (uint r = 0u; r < NV; r++) red[r * WG + tid] += red[r * WG + tid + s];
        barrier();
    }
    if (tid < NV) tot[tid] = red[tid * WG];
#endif
    barrier();

    float inv = NORM ? 1.0 / sqrt(tot[NUM_ROWS] / float(pc.cols) + pc.eps) : 1.0;
    if ((MODE & M_SWIGLU) != 0u)
    {
        const uint HALF = NUM_ROWS / 2u;
        uint j = wgi * HALF + tid;
        if (tid < HALF && j < pc.half_)
        {
            float g = tot[tid] * inv, u = tot[tid + HALF] * inv;
            D[dOff + j] = g;
            D[dOff + pc.half_ + j] = u;
            S[pc.sOff + j] = g / (1.0 + exp(-g)) * u;
        }
    }
    else if (tid < NUM_ROWS && wgi * NUM_ROWS + tid < pc.rows)
    {
        uint row = wgi * NUM_ROWS + tid;
        float v = tot[tid] * inv;
        if ((pc.flags & 2u) != 0u) v += B[pc.bOff + row];
        uint o = dOff + row;
        if ((pc.flags & 1u) != 0u) v += D[o];
        if ((MODE & M_SOFTCAP) != 0u) v = soft_cap(v, pc.cap);
        D[o] = v;
    }
    if (NORM && (pc.flags & 4u) != 0u && wgi == 0u)
    {
        uint ao = pc.aOff + gl_WorkGroupID.z * pc.aStride;
        for (uint k = tid; k < pc.cols; k += WG)
        {
            uint e = xOff + k;
            A[ao + k] = X4[e >> 2][e & 3u] * inv * NW4[k >> 2][k & 3u];
        }
    }
}
