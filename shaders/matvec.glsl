// Matrix × vector for a few tokens (decode, and the multi-sequence decode step): dst[t, row] (+)= W[row] · x[t]
// (+ bias[row]). A workgroup of WG invocations computes NUM_ROWS rows for NTOK tokens (workgroup z = group of NTOK
// tokens): each weight load serves the NTOK tokens. Every token's sums are formed in the same order whatever NTOK and
// NUM_ROWS are (invocation tid takes chunks tid, tid + WG, ...; the same reduction), so a token's result does not
// depend on how many tokens share the workgroup: the multi-sequence step equals the one-sequence step bit for bit.
// Invocations stride over 16-byte weight chunks (8 elements of F32/F16/BF16, or one 32-element block of Q8_0/Q4_0),
// UNROLL chunks per iteration with every weight load of the iteration issued before any arithmetic; the workgroup
// reduces with subgroupAdd (+ shared memory across subgroups).
//
// Q8_0/Q4_0 weights:
//   INT_DOT 1    the activations are quantized to int8 per 32-block in registers (d = max|x|/127, q = roundEven(x/d), as
//                the CPU engine's 8-bit path; the
//                invocation that handles a block quantizes it once for all NUM_ROWS rows) and each block is a handful of
//                packed 4×8-bit integer dot products (SPV_KHR_integer_dot_product); Q4_0's −8 offset is folded in with
//                the block's sum of quantized activations. Activations are then 8-bit: docs/precision.md.
//                PREQ (specialization constant): the quantized activations come from quantize_x.comp or from the
//                previous matvec (M_QOUT) once per token (XQ4 quants, XD (d, Σq), XSS per-block raw Σx² for M_NORM)
//                instead of every workgroup quantizing its slice of x. All of them quantize with quant8.glsl, so a
//                token's sums are the same bits on every path.
//   INT_DOT 0    float activations; quants become floats without conversion instructions (magic_f in weights.glsl), each
//                bit position in its own accumulator. Exact float products (the --precision f32 path).
//
// MODE (specialization constant) fuses the small ops around a decode matvec (the Vulkan planner decides, see
// Planner.cs):
//   M_NORM     x is the raw residual; RmsNorm is applied on the fly: every workgroup sums x² as it streams x (it reads
//              all of x anyway), multiplies x by the norm weight, and scales its row sums by rsqrt(mean(x²) + eps).
//              flags bit 4: workgroup 0 also writes the normalized row to A (only when a later op reads it).
//              Over pre-quantized input each token's Σx² comes from the per-block partials (XSS), summed by every
//              workgroup (parts_sum), or with flags bit 32 read as quantize_x summed them (the same bits).
//   M_SWIGLU   rows are taken in pairs (j, half + j) of a gate|up weight: each workgroup computes NUM_ROWS/2 gate rows
//              and the matching up rows and writes silu(gate)·up to S (flags bit 8: also both rows to D).
//   M_SOFTCAP  the result is soft-capped (cap · tanh(v / cap)) before it is stored.
//   M_QOUT     (INT_DOT, one token) the result is the input of the next matvec's fused RmsNorm: the last workgroup to
//              finish a 32-row block (atomic counter QC, reset by it) quantizes that block of D times the next norm's
//              weight (NW, free here: no M_NORM) into XQ4/XD and its Σx² into XSS, as quantize_x.comp would: the next
//              matvec needs no quantize dispatch.
//   M_AUX      a second, small F32 weight (AW, rows auxRows, bias AB) on the same input: workgroups past the main
//              weight's compute its rows into AD (the xLSTM gate pre-activations beside the q|k|v|o projection);
//              flags bit 16: add the bias AB.
// Built twice: matvec.comp (INT_DOT 0: float activations everywhere; no integer-dot capability in the module) and
// matvec_idot.comp (INT_DOT 1: Q8_0/Q4_0 with int8 activations; the device must have shaderIntegerDotProduct). And
// matvec_tc.comp / matvec_tc_emu.comp (TC_LAYOUT: several tokens' int8 products on tensor cores with the same bits;
// tc_group at the end; off by default).
#include "common.glsl"
#if USE_SUBGROUPS
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#if INT_DOT
#extension GL_EXT_spirv_intrinsics : require
#endif
#ifndef TC_LAYOUT
#define TC_LAYOUT 0
#endif

layout(local_size_x_id = 0) in;                 // WG
layout(constant_id = 1) const uint NUM_ROWS = 2u;
layout(constant_id = 2) const uint WTYPE = 0u;
layout(constant_id = 3) const uint MODE = 0u;
layout(constant_id = 4) const uint UNROLL = 1u;
layout(constant_id = 5) const uint NTOK = 1u;     // tokens per workgroup, at most MAX_NTOK
layout(constant_id = 6) const uint PREQ = 0u;     // INT_DOT only: activations pre-quantized by quantize_x.comp
layout(constant_id = 7) const uint RLOOP = 1u;    // row groups (of NUM_ROWS rows) per workgroup, one after the other
layout(constant_id = 8) const uint AUX_ROWS = 0u; // M_AUX rows per workgroup (0: NUM_ROWS)
layout(constant_id = 9) const uint RSCATTER = 1u; // reduce the row sums by reduce-scatter (reduce_rows)
layout(constant_id = 10) const uint TSG = 32u;    // TC_LAYOUT: the one-token matvec's subgroup size (its sum order)
layout(constant_id = 11) const uint TC_KB = 4u;   // TC_LAYOUT: blocks loaded per step
const uint AUXR = AUX_ROWS == 0u ? NUM_ROWS : AUX_ROWS;   // at most NUM_ROWS (the host checks)
#define MAX_NTOK 16u
#define M_NORM 1u
#define M_SWIGLU 2u
#define M_SOFTCAP 4u
#define M_AUX 8u
#define M_QOUT 16u

layout(std430, binding = 0) readonly buffer W4b { uvec4 W4[]; };
layout(std430, binding = 1) readonly buffer W1b { uint W1[]; };
layout(std430, binding = 2) readonly buffer Xb { vec4 X4[]; };
layout(std430, binding = 3) coherent buffer Db { float D[]; };   // coherent: M_QOUT reads other workgroups' rows
layout(std430, binding = 4) readonly buffer Bb { float B[]; };
layout(std430, binding = 5) readonly buffer NWb { vec4 NW4[]; };   // M_NORM: the norm weight (F32, zero-padded to 8)
layout(std430, binding = 6) writeonly buffer Ab { float A[]; };    // M_NORM: the normalized row (flags bit 4)
layout(std430, binding = 7) writeonly buffer Sb { float S[]; };    // M_SWIGLU: silu(gate) · up
layout(std430, binding = 8) readonly buffer AWb { vec4 AW4[]; };   // M_AUX: F32 weight, rows padded to 8 elements
layout(std430, binding = 9) writeonly buffer ADb { float AD[]; };  // M_AUX: its output
layout(std430, binding = 10) readonly buffer ABb { float AB[]; };  // M_AUX: its bias
#if INT_DOT
layout(std430, binding = 11) buffer XQb { uvec4 XQ4[]; };  // PREQ/M_QOUT: quants, token t block b at 2·(t·xqStride + b)
layout(std430, binding = 12) buffer XDb { vec2 XD[]; };    // PREQ/M_QOUT: (d, Σq) at xdOff + t·xqStride + b
layout(std430, binding = 13) buffer XSb { float XSS[]; };  // PREQ/M_QOUT: Σx² of block b of token t at xsOff + t·xqStride + b;
                                                           // flags bit 32: token t's whole Σx² at xsOff + nTok·xqStride + t
layout(std430, binding = 14) buffer QCb { uint QC[]; };    // M_QOUT: finished row groups per 32-row block
#include "quant8.glsl"
#endif

layout(push_constant) uniform PC
{
    uint rows, cols, wStride, scaleBase, xOff, xStride, dOff, dStride, bOff, flags;
    uint aOff, aStride, sOff, sStride, half_;
    float eps, cap;
    uint auxRows, auxOff, auxStride, mainGroups, nTok;
    uint xqStride, xdOff, xsOff;   // PREQ: the layout of the quantized input; M_QOUT: of the quantized output
    uint rowGroups;                         // groups of NUM_ROWS rows (mainGroups = ⌈rowGroups / RLOOP⌉)
} pc;

#include "weights.glsl"

#if INT_DOT
// OpSDotKHR with the packed 4×8-bit format (Debian's glslang has no GL_EXT_integer_dot_product: declared directly)
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4x8(uint a, uint b, spirv_literal int packedFormat);
#define DOT4(a, b) sdot4x8(a, b, 0)
#endif

const uint NV = NUM_ROWS + 1u;   // row sums + Σx²
#if USE_SUBGROUPS
const uint RED_N = 32u * 17u;   // floats of red[]: up to 32 subgroups' sums of up to 16 rows and Σx²
shared float red[RED_N];
#else
shared float red[256 * 17];
#endif
shared float tot[17u * MAX_NTOK];   // token j's row sums at j·NV, its Σx² at j·NV + NUM_ROWS

#if !INT_DOT
// Q4_0, float activations: one uint holds the low nibbles of 4 bytes (elements e..e+3, xl) and their high nibbles
// (e+16..e+19, xh). Nibble fields sit at bits 0, 4, 8, 12 of w and of w >> 16; accumulator a<p> collects 2^p·(q − 8)·x.
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

// Q8_0, float activations: bytes 0/2 at bit 0 and bytes 1/3 at bit 8 (of w and w >> 16); (b ^ 0x80) = q + 128.
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
#endif

#if INT_DOT
// A block's integer dot product, accumulated onto s0. The callers start from the bit pattern of the float 1.5·2^23 (minus
// Q4_0's offset term) so that the sum s comes out as the float 1.5·2^23 + Σ, exactly (|Σ| < 2^22: at most 32·127·127):
// sum_of() is then one float subtraction instead of an int → float conversion (a quarter-rate instruction on NVIDIA),
// with the same value.
#define SUM_BIAS 0x4B400000   // 1.5·2^23 as float bits
float sum_of(int s) { return intBitsToFloat(s) - 12582912.0; }

// Q4_0 × int8 activations: Σ (n − 8)·q = Σ n·q − 8·Σ q (s0 carries −8·Σ q); low nibbles pair with elements 0..15, high
// with 16..31.
int q4_idot(uvec4 u, uint xq[8], int s0)
{
    const uint M = 0x0F0F0F0Fu;
    int s = s0;
    s += DOT4(u.x & M, xq[0]);
    s += DOT4(u.y & M, xq[1]);
    s += DOT4(u.z & M, xq[2]);
    s += DOT4(u.w & M, xq[3]);
    s += DOT4((u.x >> 4) & M, xq[4]);
    s += DOT4((u.y >> 4) & M, xq[5]);
    s += DOT4((u.z >> 4) & M, xq[6]);
    s += DOT4((u.w >> 4) & M, xq[7]);
    return s;
}

int q8_idot(uvec4 u, uvec4 v, uint xq[8], int s0)
{
    int s = s0;
    s += DOT4(u.x, xq[0]);
    s += DOT4(u.y, xq[1]);
    s += DOT4(u.z, xq[2]);
    s += DOT4(u.w, xq[3]);
    s += DOT4(v.x, xq[4]);
    s += DOT4(v.y, xq[5]);
    s += DOT4(v.z, xq[6]);
    s += DOT4(v.w, xq[7]);
    return s;
}
#endif

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

// elements [8g, 8g+8) of x (norm weight applied, Σx² accumulated when NORM)
void load_x8(uint xOff, uint g, out vec4 x0, out vec4 x1, inout float ss)
{
    uint k = 8u * g;
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
    if ((MODE & M_NORM) != 0u)
    {
        ss += dot(x0, x0) + dot(x1, x1);
        x0 *= NW4[2u * g];
        x1 *= NW4[2u * g + 1u];
    }
}

// log2(NUM_ROWS) for a power of two up to 16 (else 0: no reduce-scatter)
const uint LOG_ROWS = NUM_ROWS == 16u ? 4u : NUM_ROWS == 8u ? 3u : NUM_ROWS == 4u ? 2u : NUM_ROWS == 2u ? 1u : 0u;

// A subgroup's sum: into tot[] (the workgroup's result) or red[] (one subgroup's part).
void put_sum(bool direct, uint i, float v)
{
    if (direct) tot[i] = v;
    else red[i] = v;
}

#if USE_SUBGROUPS
// Reductions with subgroups come in two parts, so that several tokens share the workgroup barriers: reduce_subgroup
// puts one token's subgroup sums in red[] (or, with one subgroup, its final sums in tot[]), reduce_finish adds the
// subgroups' sums of the tokens gathered so far, in subgroup order from 0, into tot[]. A token's sums are formed in the
// same order whatever the number of tokens (one sequence and several stay the same bits).
// Tokens whose subgroup sums fit red[] together.
uint red_tokens() { return max(1u, RED_N / (gl_NumSubgroups * NV)); }

// Token j's NUM_ROWS row sums and (withSS) ss over this subgroup: to red[] at slot j % red_tokens(), or (one subgroup)
// straight to tot[j·NV ..].
void reduce_subgroup(float acc[NUM_ROWS], float ss, uint j, bool withSS)
{
    bool direct = gl_NumSubgroups == 1u;
    uint base = direct ? j * NV : ((j % red_tokens()) * gl_NumSubgroups + gl_SubgroupID) * NV;
    if (RSCATTER != 0u && LOG_ROWS > 0u && gl_SubgroupSize >= NUM_ROWS)
    {
        // reduce-scatter: at each of the first LOG_ROWS halvings a lane keeps half of its rows and adds its partner's
        // copies of them (NUM_ROWS − 1 shuffles in all), then the single row left is summed over the remaining lanes:
        // lane l ends with the subgroup's sum of row l / (S >> LOG_ROWS) (9 shuffles for 8 rows of a 32-wide subgroup
        // instead of 40). The same order for every token count, so a token's sums do not depend on how many share
        // the workgroup.
        uint lane = gl_SubgroupInvocationID, S = gl_SubgroupSize;
        [[unroll]] for (uint l = 0u; l < LOG_ROWS; l++)
        {
            uint off = S >> (l + 1u);
            bool up = (lane & off) != 0u;
            uint h = NUM_ROWS >> (l + 1u);
            [[unroll]] for (uint i = 0u; i < NUM_ROWS / 2u; i++)
            {
                if (i >= h) continue;
                float send = up ? acc[i] : acc[i + h];
                float keep = up ? acc[i + h] : acc[i];
                acc[i] = keep + subgroupShuffleXor(send, off);
            }
        }
        for (uint off = S >> (LOG_ROWS + 1u); off > 0u; off >>= 1u) acc[0] += subgroupShuffleXor(acc[0], off);
        uint span = S >> LOG_ROWS;
        if (lane % span == 0u) put_sum(direct, base + lane / span, acc[0]);
    }
    else
    {
        [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) acc[r] = subgroupAdd(acc[r]);
        if (subgroupElect()) [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) put_sum(direct, base + r, acc[r]);
    }
    if (withSS)
    {
        ss = subgroupAdd(ss);
        if (subgroupElect()) put_sum(direct, base + NUM_ROWS, ss);
    }
}

// The sums of tokens first .. first + n − 1 (gathered by reduce_subgroup since the last reduce_finish) into tot[].
// Every invocation calls it (barriers); red[] is free again after it.
void reduce_finish(uint first, uint n, bool withSS)
{
    uint tid = gl_LocalInvocationID.x;
    if (gl_NumSubgroups != 1u)
    {
        barrier();
        uint nv = withSS ? NV : NUM_ROWS;
        for (uint c = tid; c < n * NV; c += gl_WorkGroupSize.x)
        {
            uint jj = c / NV, k = c % NV;
            if (k >= nv) continue;
            float s = 0.0;
            for (uint i = 0u; i < gl_NumSubgroups; i++) s += red[(jj * gl_NumSubgroups + i) * NV + k];
            tot[(first + jj) * NV + k] = s;
        }
    }
    barrier();
}

// One token's reduction (j: its place in tot[]).
void reduce_rows(float acc[NUM_ROWS], float ss, uint j, bool withSS)
{
    reduce_subgroup(acc, ss, j, withSS);
    reduce_finish(j, 1u, withSS);
}
#else
// Reduce NUM_ROWS row sums and ss over the workgroup into tot[j·NV ..] (shared-memory tree; devices without subgroups;
// the tree carries ss whatever withSS says).
void reduce_rows(float acc[NUM_ROWS], float ss, uint j, bool withSS)
{
    const uint WG = gl_WorkGroupSize.x;
    uint tid = gl_LocalInvocationID.x;
    [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) red[r * WG + tid] = acc[r];
    red[NUM_ROWS * WG + tid] = ss;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1u)
    {
        if (tid < s)
            [[unroll]] for (uint r = 0u; r < NV; r++) red[r * WG + tid] += red[r * WG + tid + s];
        barrier();
    }
    if (tid < NV) tot[j * NV + tid] = red[tid * WG];
    barrier();
}
#endif

// The fused RmsNorm's scale for a row whose Σx² is ss (1 without M_NORM).
float norm_inv(float ss) { return (MODE & M_NORM) != 0u ? 1.0 / sqrt(ss / float(pc.cols) + pc.eps) : 1.0; }

// The M_AUX rows (F32 weight) of workgroup awg (AUXR of them: few rows per workgroup spread the small weight over
// several workgroups, which all finish with the main rows): same input, same norm.
void aux_rows(uint awg, uint xOff, uint t)
{
    const uint WG = gl_WorkGroupSize.x;
    uint tid = gl_LocalInvocationID.x;
    uint ng = (pc.cols + 7u) >> 3;
    uint aStride4 = 2u * ng;   // vec4 units per aux row
    float acc[NUM_ROWS];
    [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) acc[r] = 0.0;
    float ss = 0.0;
    for (uint g = tid; g < ng; g += WG)
    {
        vec4 x0, x1;
        load_x8(xOff, g, x0, x1, ss);
        [[unroll]] for (uint r = 0u; r < AUXR; r++)
        {
            uint row = min(awg * AUXR + r, pc.auxRows - 1u);
            acc[r] += dot(AW4[row * aStride4 + 2u * g], x0) + dot(AW4[row * aStride4 + 2u * g + 1u], x1);
        }
    }
    reduce_rows(acc, ss, 0u, true);
    float inv = norm_inv(tot[NUM_ROWS]);
    uint row = awg * AUXR + tid;
    if (tid < AUXR && row < pc.auxRows) AD[pc.auxOff + t * pc.auxStride + row] = tot[tid] * inv + ((pc.flags & 16u) != 0u ? AB[row] : 0.0);
}

#if INT_DOT
// This invocation's share of the n partials at XSS[base ..].
float parts_own(uint base, uint n)
{
    float s = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < n; i += gl_WorkGroupSize.x) s += XSS[base + i];
    return s;
}

// Σ of the n per-block Σx² partials at XSS[base ..] (a fused norm over pre-quantized input), in the same order in every
// workgroup and whoever wrote them (quantize_x or an M_QOUT producer). Every invocation gets the sum. (reduce.glsl's
// wg_sum computes the same: with it the q|k|v|o + gates matvec took 3 µs more per block on the H200, the same binary
// otherwise, alternating runs: 364-372 vs 378-383 tok/s. Cause not found; kept as it is. Loading the partials with the
// weights, early, instead of after the row sums also cost Q4_0 decode 2.6 %: 2026-11-30, session 7.)
float parts_sum(uint base, uint n)
{
    const uint WG = gl_WorkGroupSize.x;
    uint tid = gl_LocalInvocationID.x;
    float s = parts_own(base, n);
    barrier();   // red[] may still be read by a previous reduction
#if USE_SUBGROUPS
    s = subgroupAdd(s);
    if (gl_NumSubgroups == 1u) return s;
    if (subgroupElect()) red[gl_SubgroupID] = s;
    barrier();
    float total = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; i++) total += red[i];
#else
    red[tid] = s;
    barrier();
    for (uint h = WG / 2u; h > 0u; h >>= 1u)
    {
        if (tid < h) red[tid] += red[tid + h];
        barrier();
    }
    float total = red[0];
#endif
    barrier();
    return total;
}

// parts_sum for tokens t0 .. t0 + ntok − 1 at once (the same sums: each token's partials added by the same
// invocations, subgroups and order), with two barriers in all; every invocation gets every sum. Needs red[] free.
void parts_sums(uint t0, uint ntok, out float sums[NTOK])
{
#if USE_SUBGROUPS
    uint nsg = gl_NumSubgroups;
    if (NTOK * nsg <= RED_N)
    {
        [[unroll]] for (uint j = 0u; j < NTOK; j++)
            if (NTOK == 1u || j < ntok)
            {
                float s = subgroupAdd(parts_own(pc.xsOff + (t0 + j) * pc.xqStride, pc.xqStride));
                if (subgroupElect()) red[j * nsg + gl_SubgroupID] = s;
            }
        barrier();
        [[unroll]] for (uint j = 0u; j < NTOK; j++)
        {
            float total = 0.0;
            if (NTOK == 1u || j < ntok)
                for (uint i = 0u; i < nsg; i++) total += red[j * nsg + i];
            sums[j] = total;
        }
        barrier();
        return;
    }
#endif
    [[unroll]] for (uint j = 0u; j < NTOK; j++)
    {
        sums[j] = 0.0;
        if (NTOK == 1u || j < ntok) sums[j] = parts_sum(pc.xsOff + (t0 + j) * pc.xqStride, pc.xqStride);
    }
}

shared bool qLast;

// M_QOUT: this row group's rows of D are written; the last row group of their 32-row block quantizes the block for
// the next matvec (see the header). One token (the host checks), NUM_ROWS divides 32.
void quantize_out(uint wgi, uint t0)
{
    uint tid = gl_LocalInvocationID.x;
    uint blk = wgi * NUM_ROWS / 32u;
    memoryBarrierBuffer();
    barrier();
    if (tid == 0u)
    {
        uint done = atomicAdd(QC[t0 * pc.xqStride + blk], 1u);
        qLast = done == 32u / NUM_ROWS - 1u;
    }
    barrier();
    if (!qLast || tid != 0u) return;   // the caller has no barrier after this
    memoryBarrierBuffer();
    uint o = pc.dOff + t0 * pc.dStride + 32u * blk;
    vec4 x[8], nw[8];
    [[unroll]] for (uint i = 0u; i < 8u; i++)
    {
        x[i] = vec4(D[o + 4u * i], D[o + 4u * i + 1u], D[o + 4u * i + 2u], D[o + 4u * i + 3u]);
        nw[i] = NW4[8u * blk + i];
    }
    uvec4 qa, qb;
    vec2 dd;
    float ssb;
    quant8_block(x, true, nw, qa, qb, dd, ssb);
    uint q = t0 * pc.xqStride + blk;
    XQ4[2u * q] = qa;
    XQ4[2u * q + 1u] = qb;
    XD[pc.xdOff + q] = dd;
    XSS[pc.xsOff + q] = ssb;
    atomicExchange(QC[t0 * pc.xqStride + blk], 0u);
}
#endif

// Token t's result for weight row `row` (its sum a, inv the fused norm's scale): bias, accumulation, soft cap. Rows past
// the weight are not written.
void emit_row(uint t, uint row, float inv, float a)
{
    if (row >= pc.rows) return;
    float v = a * inv;
    if ((pc.flags & 2u) != 0u) v += B[pc.bOff + row];
    uint o = pc.dOff + t * pc.dStride + row;
    if ((pc.flags & 1u) != 0u) v += D[o];
    if ((MODE & M_SOFTCAP) != 0u) v = soft_cap(v, pc.cap);
    D[o] = v;
}

// M_SWIGLU: token t's gate row jr (sum a) and up row half + jr (sum b): silu(gate)·up to S (flags bit 8: both rows to D).
void emit_pair(uint t, uint jr, float inv, float a, float b)
{
    if (jr >= pc.half_) return;
    float g = a * inv, u = b * inv;
    if ((pc.flags & 8u) != 0u)
    {
        uint dOff = pc.dOff + t * pc.dStride;
        D[dOff + jr] = g;
        D[dOff + pc.half_ + jr] = u;
    }
    S[pc.sOff + t * pc.sStride + jr] = g / (1.0 + exp(-g)) * u;
}

// flags bit 4: token t's normalized input row to A (elements first, first + stride, ...).
void write_norm_row(uint t, float inv, uint first, uint stride)
{
    uint xOff = pc.xOff + t * pc.xStride;
    uint ao = pc.aOff + t * pc.aStride;
    for (uint k = first; k < pc.cols; k += stride)
    {
        uint e = xOff + k;
        A[ao + k] = X4[e >> 2][e & 3u] * inv * NW4[k >> 2][k & 3u];
    }
}

// Whether row_group's Σx² is summed in its weight loop (a fused norm reading raw activations); otherwise it is not
// reduced at all (pre-quantized input brings its per-block partials, and a plain product needs none).
#if INT_DOT
#define SS_USED ((MODE & M_NORM) != 0u && PREQ == 0u)
#else
#define SS_USED ((MODE & M_NORM) != 0u)
#endif

// Row group wgi (NUM_ROWS rows) for tokens t0 .. t0 + ntok − 1.
void row_group(uint wgi, uint t0, uint ntok)
{
    const uint WG = gl_WorkGroupSize.x;
    const bool NORM = (MODE & M_NORM) != 0u;
    uint tid = gl_LocalInvocationID.x;
    float acc[NTOK][NUM_ROWS];
    float ss[NTOK];
    [[unroll]] for (uint j = 0u; j < NTOK; j++)
    {
        [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) acc[j][r] = 0.0;
        ss[j] = 0.0;
    }
    uint rowBase[NUM_ROWS];
    [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) rowBase[r] = row_of(wgi, r);

    if (wt_is_quant())
    {
        uint nb = pc.wStride;
        for (uint c0 = tid; c0 < nb; c0 += WG * UNROLL)
        {
            // every weight load of this iteration first
            uvec4 wu[UNROLL][NUM_ROWS], wv[UNROLL][NUM_ROWS];
            float wd[UNROLL][NUM_ROWS];
            [[unroll]] for (uint u = 0u; u < UNROLL; u++)
            {
                uint c = min(c0 + u * WG, nb - 1u);
                [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++)
                {
                    uint blk = rowBase[r] * nb + c;
                    if (WTYPE == WT_Q8_0) { wu[u][r] = W4[2u * blk]; wv[u][r] = W4[2u * blk + 1u]; }
                    else wu[u][r] = W4[blk];
                    wd[u][r] = w_scale(pc.scaleBase + blk);
                }
            }
            [[unroll]] for (uint u = 0u; u < UNROLL; u++)
            {
                uint c = c0 + u * WG;
                if (c >= nb) break;
                [[unroll]] for (uint j = 0u; j < NTOK; j++)
                {
                    // j is a constant after unrolling: acc[j] stays in registers (a runtime index would put the
                    // accumulators in local memory: 28x slower, measured on the H200)
                    if (NTOK > 1u && j >= ntok) continue;   // folds away for one token
                    uint xb = ((pc.xOff + (t0 + j) * pc.xStride) >> 2) + 8u * c;
                    vec4 x[8];
                    if (PREQ == 0u) [[unroll]] for (uint i = 0u; i < 8u; i++) x[i] = X4[xb + i];
                    if (NORM && PREQ == 0u)
                        [[unroll]] for (uint i = 0u; i < 8u; i++)
                        {
                            ss[j] += dot(x[i], x[i]);
                            x[i] *= NW4[8u * c + i];
                        }
#if INT_DOT
                    {
                        // the token's quants: pre-quantized (PREQ), or quantized here for all NUM_ROWS rows
                        uvec4 qa, qc;
                        vec2 dd;
                        if (PREQ != 0u)
                        {
                            uint qb = (t0 + j) * pc.xqStride + c;
                            qa = XQ4[2u * qb];
                            qc = XQ4[2u * qb + 1u];
                            dd = XD[pc.xdOff + qb];
                        }
                        else
                        {
                            float unused;
                            quant8_block(x, false, x, qa, qc, dd, unused);
                        }
                        uint xq[8] = uint[8](qa.x, qa.y, qa.z, qa.w, qc.x, qc.y, qc.z, qc.w);
                        int s0 = WTYPE == WT_Q8_0 ? SUM_BIAS : SUM_BIAS - 8 * int(dd.y);
                        [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++)
                        {
                            int s = WTYPE == WT_Q8_0 ? q8_idot(wu[u][r], wv[u][r], xq, s0) : q4_idot(wu[u][r], xq, s0);
                            acc[j][r] += sum_of(s) * (wd[u][r] * dd.x);
                        }
                    }
#else
                    [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++)
                    {
                        float s = WTYPE == WT_Q8_0 ? q8_block(wu[u][r], wv[u][r], x) : q4_block(wu[u][r], x);
                        acc[j][r] += s * wd[u][r];
                    }
#endif
                }
            }
        }
    }
    else
    {
        uint ng = (pc.cols + 7u) >> 3;
        for (uint g0 = tid; g0 < ng; g0 += WG * UNROLL)
        {
            vec4 lo[UNROLL][NUM_ROWS], hi[UNROLL][NUM_ROWS];
            [[unroll]] for (uint u = 0u; u < UNROLL; u++)
            {
                uint g = min(g0 + u * WG, ng - 1u);
                [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) w_decode8(rowBase[r], g, pc.wStride, pc.scaleBase, lo[u][r], hi[u][r]);
            }
            [[unroll]] for (uint u = 0u; u < UNROLL; u++)
            {
                uint g = g0 + u * WG;
                if (g >= ng) break;
                [[unroll]] for (uint j = 0u; j < NTOK; j++)
                {
                    if (NTOK > 1u && j >= ntok) continue;   // folds away for one token
                    vec4 x0, x1;
                    load_x8(pc.xOff + (t0 + j) * pc.xStride, g, x0, x1, ss[j]);
                    [[unroll]] for (uint r = 0u; r < NUM_ROWS; r++) acc[j][r] += dot(lo[u][r], x0) + dot(hi[u][r], x1);
                }
            }
        }
    }

    // ntok is uniform: the barriers inside are reached by all
#if USE_SUBGROUPS
    uint per = red_tokens();
    [[unroll]] for (uint j = 0u; j < NTOK; j++)
        if (NTOK == 1u || j < ntok)
        {
            reduce_subgroup(acc[j], ss[j], j, SS_USED);
            if (j + 1u == ntok || (j + 1u) % per == 0u) reduce_finish(j - j % per, j % per + 1u, SS_USED);
        }
#else
    [[unroll]] for (uint j = 0u; j < NTOK; j++)
        if (NTOK == 1u || j < ntok) reduce_rows(acc[j], ss[j], j, SS_USED);
#endif

#if INT_DOT
    // a fused norm over pre-quantized input: each token's Σx² from its per-block partials
    float ssParts[NTOK];
    if (PREQ != 0u && NORM)
    {
        // flags bit 32: quantize_x wrote each token's whole Σx² (the same bits as parts_sum) after the partials
        if ((pc.flags & 32u) != 0u)
            [[unroll]] for (uint j = 0u; j < NTOK; j++) ssParts[j] = NTOK == 1u || j < ntok ? XSS[pc.xsOff + pc.nTok * pc.xqStride + t0 + j] : 0.0;
        else parts_sums(t0, ntok, ssParts);   // uniform (flags): barriers inside
    }
#endif
    [[unroll]] for (uint j = 0u; j < NTOK; j++)
    {
        if (NTOK > 1u && j >= ntok) continue;   // uniform
        uint t = t0 + j;
        float ssj = tot[j * NV + NUM_ROWS];
#if INT_DOT
        if (PREQ != 0u && NORM) ssj = ssParts[j];
#endif
        float inv = norm_inv(ssj);
        if ((MODE & M_SWIGLU) != 0u)
        {
            if (tid < NUM_ROWS / 2u) emit_pair(t, wgi * (NUM_ROWS / 2u) + tid, inv, tot[j * NV + tid], tot[j * NV + tid + NUM_ROWS / 2u]);
        }
        else if (tid < NUM_ROWS) emit_row(t, wgi * NUM_ROWS + tid, inv, tot[j * NV + tid]);
        if (NORM && (pc.flags & 4u) != 0u && wgi == 0u) write_norm_row(t, inv, tid, WG);
    }
#if INT_DOT
    if ((MODE & M_QOUT) != 0u) quantize_out(wgi, t0);
#endif
}

#if TC_LAYOUT
// ---- several tokens on tensor cores, with the one-token matvec's bits (matvec_tc.comp; TC_EMULATE: matvec_tc_emu.comp) ----
// A block's integer dot product Σ q_w·q_x (Q4_0: (n − 8)·q) is exact in f16 × f16 → f32 products: every operand is an
// integer of at most 8 bits and every partial sum an integer under 2^24. So a workgroup puts TC_M weight rows × TC_N
// tokens of one 32-block through two 16 × 16 × 16 products per subgroup, gets the same integers the packed int8 dot
// products give, and forms each row sum as the one-token matvec (row_group, WG = 128 invocations, reduce-scatter)
// does: leaf l (its invocation) adds its blocks l, l + 128, ... in order (acc += s·(wd·d)); the leaves of a subgroup of
// TSG are added in the butterfly's tree (pairs of lanes differing in the top bit first), which is an in-order binary
// tree over the leaves taken in bit-reversed lane order; then the subgroups' sums one after the other from 0. Within a
// block the 32 products are taken in a fixed permuted order (pairs of bytes 0/2, 1/3 of each word) on both operands:
// an integer sum does not depend on the order. M_AUX rows, norms and epilogues are the one-token matvec's own code.
#define TC_M 64u
#define TC_N 16u
const uint TC_CELLS = 8u;   // cells (row, token) per invocation: its subgroup's 16 × 16 tile over 32 lanes
const uint LOG_TSG = TSG >= 128u ? 7u : TSG >= 64u ? 6u : TSG >= 32u ? 5u : TSG >= 16u ? 4u : TSG >= 8u ? 3u : TSG >= 4u ? 2u : 1u;
shared uvec4 tcA[TC_KB * TC_M * 4u];   // slot j, row r: 32 halves (permuted order) at 4(j·TC_M + r)
shared uvec4 tcB[TC_KB * TC_N * 4u];   // slot j, token t: 32 halves at 4(j·TC_N + t)
shared float tcC[4u * 256u];           // each (virtual) subgroup's 16 × 16 integer sums; at the end the row sums
shared float tcWd[TC_KB * TC_M], tcDd[TC_KB * TC_N], tcInv[TC_N];

// Bytes 0 and 2 (k = 0) or 1 and 3 (k = 1) of w, each an int8 (q8) or a nibble minus 8 (nibble shift 0 or 4), as two halves.
uint tc_pair(uint w, uint k, bool q8, uint shift)
{
    if (q8) return packHalf2x16(vec2(float(bitfieldExtract(int(w), int(8u * k), 8)), float(bitfieldExtract(int(w), int(8u * k + 16u), 8))));
    return packHalf2x16(vec2(float(int((w >> (8u * k + shift)) & 0xFu) - 8), float(int((w >> (8u * k + 16u + shift)) & 0xFu) - 8)));
}

// Word m of a block's low half (elements 4m..4m+3) and high half (16+4m..): 8 halves in the order both operands use.
uvec4 tc_word(uint lo, uint hi, bool q8, uint shiftHi)
{
    return uvec4(tc_pair(lo, 0u, q8, 0u), tc_pair(lo, 1u, q8, 0u), tc_pair(hi, 0u, q8, shiftHi), tc_pair(hi, 1u, q8, shiftHi));
}

uint tc_row(uint wg, uint r)   // weight row of tile row r (M_SWIGLU: gate rows, then the matching up rows)
{
    if ((MODE & M_SWIGLU) != 0u)
    {
        uint j = min(wg * (TC_M / 2u) + (r % (TC_M / 2u)), pc.half_ - 1u);
        return r < TC_M / 2u ? j : pc.half_ + j;
    }
    return min(wg * TC_M + r, pc.rows - 1u);
}

// The blocks are taken leaf by leaf in the one-token order: leaf index li (0..127) is leaf
// (li / TSG)·TSG + bitreverse(li % TSG), and each leaf has mmax slots m (block leaf + 128m, if it exists).
uint tc_block(uint p, uint mmax)
{
    uint li = p / mmax, m = p % mmax;
    uint l = (li / TSG) * TSG + (bitfieldReverse(li % TSG) >> (32u - LOG_TSG));
    return l + 128u * m;
}

// Slots p0 .. p0 + TC_KB − 1 of the tile into tcA/tcB/tcWd/tcDd (blocks past the row: left as they are, not used).
void tc_fill(uint wg, uint t0, uint ntok, uint p0, uint mmax)
{
    uint tid = gl_LocalInvocationID.x;
    uint nb = pc.wStride;
    bool q8 = WTYPE == WT_Q8_0;
    uint r = tid >> 1, m0 = 2u * (tid & 1u);
    uint rowBase = tc_row(wg, r) * nb;
    for (uint j = 0u; j < TC_KB; j++)
    {
        uint b = tc_block(p0 + j, mmax);
        if (p0 + j >= 128u * mmax || b >= nb) continue;
        uint blk = rowBase + b;
        uvec4 u = q8 ? W4[2u * blk] : W4[blk];
        uvec4 v = q8 ? W4[2u * blk + 1u] : u;
        tcA[4u * (j * TC_M + r) + m0] = tc_word(u[m0], v[m0], q8, 4u);
        tcA[4u * (j * TC_M + r) + m0 + 1u] = tc_word(u[m0 + 1u], v[m0 + 1u], q8, 4u);
        if ((tid & 1u) == 0u) tcWd[j * TC_M + r] = w_scale(pc.scaleBase + blk);
    }
    // the tokens' quants: one word of one token of one slot per item
    for (uint i = tid; i < TC_KB * TC_N * 4u; i += 128u)
    {
        uint j = i / (TC_N * 4u), t = (i / 4u) % TC_N, m = i % 4u;
        uint b = tc_block(p0 + j, mmax);
        if (p0 + j >= 128u * mmax || b >= nb) continue;
        uvec4 w = uvec4(0u);
        float d = 0.0;
        if (t < ntok)
        {
            uint qb = (t0 + t) * pc.xqStride + b;
            w = tc_word(XQ4[2u * qb][m], XQ4[2u * qb + 1u][m], true, 0u);
            d = XD[pc.xdOff + qb].x;
        }
        tcB[4u * (j * TC_N + t) + m] = w;
        if (m == 0u) tcDd[j * TC_N + t] = d;
    }
}

#if !TC_EMULATE
#define TC_AB fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define TC_ACC fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define TC_SYNC() { subgroupMemoryBarrierShared(); subgroupBarrier(); }
#else
#define TC_SYNC() barrier()
#endif

// Slot j's integer sums of (virtual) subgroup vs's 16 rows into tcC[256·vs ..] (row-major, 16 tokens a row). The
// emulated build: every invocation its own cells, in float (exact as well). Subgroups of 32 (the host checks).
void tc_products(uint j, uint vs, uint vl)
{
#if TC_EMULATE
    for (uint q = 0u; q < TC_CELLS; q++)
    {
        uint c = vl + 32u * q, r = 16u * vs + c / TC_N, t = c % TC_N;
        float sum = 0.0;
        for (uint m = 0u; m < 4u; m++)
            for (uint e = 0u; e < 4u; e++)
            {
                vec2 a = unpackHalf2x16(tcA[4u * (j * TC_M + r) + m][e]), x = unpackHalf2x16(tcB[4u * (j * TC_N + t) + m][e]);
                sum += a.x * x.x + a.y * x.y;
            }
        tcC[256u * vs + c] = sum;
    }
#else
    TC_ACC acc = TC_ACC(0.0);
    TC_AB a, x;
    [[unroll]] for (uint h = 0u; h < 2u; h++)
    {
        coopMatLoadNV(a, tcA, 4u * (j * TC_M + 16u * vs) + 2u * h, 4u, false);   // 16 rows × 16 k, 4 uvec4 per row
        coopMatLoadNV(x, tcB, 4u * (j * TC_N) + 2u * h, 4u, true);              // 16 k × 16 tokens, token by token
        acc = coopMatMulAddNV(a, x, acc);
    }
    coopMatStoreNV(acc, tcC, 256u * vs, TC_N, false);
#endif
}

// Row tile wg (TC_M rows) × tokens t0 .. t0 + ntok − 1. (Virtual) subgroup vs = tid / 32 owns rows 16vs .. 16vs + 15;
// lane vl their cells vl + 32q (row 16vs + vl / 16 + 2q, token vl % 16).
void tc_group(uint wg, uint t0, uint ntok)
{
    const bool NORM = (MODE & M_NORM) != 0u;
    uint tid = gl_LocalInvocationID.x, vs = tid >> 5, vl = tid & 31u;
    uint nb = pc.wStride;
    uint mmax = (nb + 127u) / 128u;   // slots per leaf
    float total[TC_CELLS], leaf[TC_CELLS], stk[TC_CELLS][7];
    [[unroll]] for (uint q = 0u; q < TC_CELLS; q++) { total[q] = 0.0; leaf[q] = 0.0; }
    for (uint p0 = 0u; p0 < 128u * mmax; p0 += TC_KB)
    {
        barrier();   // the previous slots' tiles are read
        tc_fill(wg, t0, ntok, p0, mmax);
        barrier();
        for (uint j = 0u; j < TC_KB; j++)
        {
            uint p = p0 + j;
            if (p >= 128u * mmax) break;
            uint li = p / mmax, m = p % mmax;
            if (tc_block(p, mmax) < nb)
            {
                tc_products(j, vs, vl);
                TC_SYNC();
                float dd = tcDd[j * TC_N + (vl % TC_N)];
                [[unroll]] for (uint q = 0u; q < TC_CELLS; q++)
                {
                    uint c = vl + 32u * q;
                    leaf[q] += tcC[256u * vs + c] * (tcWd[j * TC_M + 16u * vs + c / TC_N] * dd);
                }
                TC_SYNC();   // tcC is read before the next slot's products
            }
            if (m == mmax - 1u)
            {
                // leaf i of its subgroup's in-order tree merges with the pending subtrees its trailing ones name
                uint i = li % TSG;
                [[unroll]] for (uint q = 0u; q < TC_CELLS; q++)
                {
                    float v = leaf[q];
                    bool open = true;
                    [[unroll]] for (uint k = 0u; k < 7u; k++)
                        if (open && k < LOG_TSG)
                        {
                            if (((i >> k) & 1u) == 0u) { stk[q][k] = v; open = false; }
                            else v = stk[q][k] + v;
                        }
                    if (i == TSG - 1u) total[q] += v;   // the subgroup's sum, after the earlier subgroups'
                    leaf[q] = 0.0;
                }
            }
        }
    }
    barrier();
    [[unroll]] for (uint q = 0u; q < TC_CELLS; q++) tcC[256u * vs + vl + 32u * q] = total[q];   // row 16vs + c/16, token c%16
    // each token's norm scale, as the one-token matvec forms it (the same workgroup size, the same reduction)
    for (uint t = 0u; t < ntok; t++)
    {
        float ssj = NORM ? parts_sum(pc.xsOff + (t0 + t) * pc.xqStride, pc.xqStride) : 0.0;
        if (tid == 0u) tcInv[t] = norm_inv(ssj);
    }
    barrier();
    if ((MODE & M_SWIGLU) != 0u)
    {
        for (uint c = tid; c < (TC_M / 2u) * ntok; c += 128u)
        {
            uint r = c % (TC_M / 2u), t = c / (TC_M / 2u);
            emit_pair(t0 + t, wg * (TC_M / 2u) + r, tcInv[t], tcC[TC_N * r + t], tcC[TC_N * (r + TC_M / 2u) + t]);
        }
    }
    else
        for (uint c = tid; c < TC_M * ntok; c += 128u)
        {
            uint r = c % TC_M, t = c / TC_M;
            emit_row(t0 + t, wg * TC_M + r, tcInv[t], tcC[TC_N * r + t]);
        }
    if (NORM && (pc.flags & 4u) != 0u && wg == 0u)
        for (uint t = 0u; t < ntok; t++) write_norm_row(t0 + t, tcInv[t], tid, 128u);
}
#endif

void main()
{
    uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint t0 = gl_WorkGroupID.z * NTOK;
    uint ntok = min(NTOK, pc.nTok - t0);   // tokens of this workgroup (uniform)
    if ((MODE & M_AUX) != 0u && wg >= pc.mainGroups)
    {
        for (uint j = 0u; j < ntok; j++)
        {
            barrier();   // the previous token's results are read from tot[] before it is reused
            aux_rows(wg - pc.mainGroups, pc.xOff + (t0 + j) * pc.xStride, t0 + j);
        }
        return;
    }
#if TC_LAYOUT
    if (wg < pc.mainGroups) tc_group(wg, t0, ntok);   // TC_N tokens per workgroup: NTOK = TC_N
    return;
#endif
    for (uint rl = 0u; rl < RLOOP; rl++)
    {
        uint wgi = wg * RLOOP + rl;
        if (wgi >= pc.rowGroups) break;   // uniform
        if (rl > 0u) barrier();           // the previous group's results are read from tot[] before it is reused
        row_group(wgi, t0, ntok);
    }
}
