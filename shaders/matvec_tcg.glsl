// The body of matvec_tcg.comp (tensor cores, GL_NV_cooperative_matrix) and of its test build matvec_tcg_emu.comp (each
// 16×16 matrix operation by plain arithmetic, for devices without cooperative matrices: lavapipe in CI).
//
// A product of a few tokens (a decode step of up to 64 sequences, a short prompt feed) on tensor cores, shaped like a
// matvec rather than a GEMM: dst[t, row] (+)= Σ_k x[t, k] · W[row, k] (+ bias[row]).
// - A workgroup is KSPLIT subgroups of 32 for one tile of 16 weight rows; subgroup w walks its own K range (a fixed
//   share of the 32-wide K steps) in rounds of STEPS = 2·UNROLL steps, with no workgroup barrier: each lane loads its
//   share of the round's weights into registers one round ahead (row lane % 16, steps 2u + lane / 16; quantized blocks
//   are dequantized to f16 by weights.glsl's w_q_finish, the values of the dequantized F16 copy), stores them into the
//   subgroup's own shared tile with the round's x (f16 in XH, [tokens, xStride] halves, zero past `cols` up to a
//   multiple of 32; token rows past nTok are stored as zeros), and the subgroup multiplies from there.
// - NT16 accumulators of 16 tokens × 16 rows per subgroup (workgroup z: tokens [z·16·NT16, (z+1)·16·NT16)); at the end
//   the subgroups' tiles are added in order of w, then the bias, then the old value.
// A token's result depends only on the weight, K and KSPLIT: not on how many tokens share the product or on which tile
// they sit (the tensor cores' rows are independent), so a multi-sequence step gives every sequence the bits of its
// one-sequence step, and a packed prompt feed the bits of each prompt's own.
// Precision: x and the weights as f16 (the host selects this kernel only where docs/precision.md allows f16 operands),
// f32 accumulation.
layout(local_size_x_id = 0) in;                     // 32 · KSPLIT
layout(constant_id = 1) const uint WTYPE = 4u;
layout(constant_id = 2) const uint KSPLIT = 4u;
layout(constant_id = 3) const uint NT16 = 1u;       // 16-token tiles per subgroup
layout(constant_id = 4) const uint UNROLL = 2u;     // quantized weights: rounds of 2·UNROLL K steps of 32

layout(std430, binding = 0) readonly buffer W4b { uvec4 W4[]; };
layout(std430, binding = 1) readonly buffer W1b { uint W1[]; };
layout(std430, binding = 2) readonly buffer XHb { uvec4 XH[]; };
layout(std430, binding = 3) buffer Db { float D[]; };
layout(std430, binding = 4) readonly buffer Bb { float B[]; };

layout(push_constant) uniform PC
{
    uint rows, cols, wStride, scaleBase, xStride, dOff, dStride, bOff, flags, nTok;
} pc;

#include "weights.glsl"

const uint STEPS = 2u * UNROLL;          // K steps of 32 per round
const uint LDV = 4u * STEPS + 1u;        // uvec4 per shared row: 32 halves per step, 16 bytes of padding
// Each subgroup's region of Ws: its 16 weight rows, then its 16·NT16 token rows of x; after its last products, its
// accumulators (NT16 token-major 16 × 16 tiles of f32, 64 uvec4 each: they fit)
const uint WS_SG = (16u + 16u * NT16) * LDV;
shared uvec4 Ws[KSPLIT * WS_SG];
uint g_lane;
float cs_at(uint i) { return uintBitsToFloat(Ws[i >> 2][i & 3u]); }   // i in floats

#if EMULATE_COOPMAT
// Operand "matrices" are views read at multiply time; accumulator: 8 floats per lane, element e = lane + 32·i at
// (token e / 16, row e % 16). Lanes are groups of 32 invocations synchronised with workgroup barriers.
struct CmView { uint arr; uint off; uint stride; };   // arr 0: x rows of Ws (row-major), 1: weight rows of Ws (column-major)
struct CmAcc { float v[8]; };
#define CM_AB CmView
#define CM_ACC CmAcc
#define CM_ZERO CmAcc(float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
#define CM_LOAD_X(m, off_, stride_) m = CmView(0u, off_, stride_)
#define CM_LOAD_W(m, off_, stride_) m = CmView(1u, off_, stride_)
float half_of(uint arr, uint i)   // i in halves
{
    return unpackHalf2x16(Ws[i >> 3][(i >> 1) & 3u])[i & 1u];
}
// element (r, c) of a view: row-major (x: token r, k c) or column-major (weights: k r, row c)
float cm_elem(CmView m, uint r, uint c)
{
    return m.arr == 0u ? half_of(0u, 8u * m.off + r * 8u * m.stride + c) : half_of(m.arr, 8u * m.off + c * 8u * m.stride + r);
}
CmAcc cm_muladd(CmView a, CmView b, CmAcc acc)
{
    for (uint i = 0u; i < 8u; i++)
    {
        uint e = g_lane + 32u * i, r = e >> 4, c = e & 15u;
        float s = acc.v[i];
        for (uint k = 0u; k < 16u; k++) s += cm_elem(a, r, k) * cm_elem(b, k, c);
        acc.v[i] = s;
    }
    return acc;
}
#define CM_MULADD(a, b, c) cm_muladd(a, b, c)
void cm_store_c(CmAcc m, uint off)   // off in floats
{
    for (uint i = 0u; i < 8u; i++)
    {
        uint e = off + g_lane + 32u * i;
        Ws[e >> 2][e & 3u] = floatBitsToUint(m.v[i]);
    }
}
#define CM_STORE_C(m, off) cm_store_c(m, off)
#define SG_SYNC() barrier()
// loops around emulated products stay loops: unrolled, llvmpipe takes minutes to compile them
#define PRODUCT_LOOP [[dont_unroll]]
#else
#define CM_AB fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define CM_ACC fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define CM_ZERO fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0)
#define CM_LOAD_X(m, off, stride) coopMatLoadNV(m, Ws, off, stride, false)
#define CM_LOAD_W(m, off, stride) coopMatLoadNV(m, Ws, off, stride, true)
#define CM_MULADD(a, b, c) coopMatMulAddNV(a, b, c)
#define CM_STORE_C(m, off) coopMatStoreNV(m, Ws, (off) / 4u, 4u, false)
#define SG_SYNC() { subgroupMemoryBarrierShared(); subgroupBarrier(); }
#define PRODUCT_LOOP [[unroll]]
#endif

uvec4 pack8(vec4 a, vec4 b) { return uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw)); }

// One lane's share of a round's weights: row `row` (clamped into the matrix), K step s, raw (Q4_0: the block's 16 bytes
// in u; Q8_0: 32 in u, v; F16: 64 in u, v, f, g).
struct WRaw { uvec4 u; uvec4 v; uvec4 f; uvec4 g; uint s; uint meta; };   // + the scale's word, (scale half) | (inside) << 1
WRaw load_w(uint row, uint s, uint sEnd)
{
    WRaw q;
    bool ok = s < sEnd;
    uint rc = min(row, pc.rows - 1u), sc = ok ? s : 0u;
    q.s = 0u;
    q.meta = ok ? 2u : 0u;
    if (!wt_is_quant())
    {
        uint o = rc * pc.wStride + 4u * sc;
        q.u = W4[o];
        q.v = W4[o + 1u];
        q.f = W4[o + 2u];
        q.g = W4[o + 3u];
        return q;
    }
    uint blk = rc * pc.wStride + sc;
    q.u = W4[WTYPE == WT_Q8_0 ? 2u * blk : blk];
    q.v = WTYPE == WT_Q8_0 ? W4[2u * blk + 1u] : q.u;
    q.f = q.g = q.u;
    uint e = pc.scaleBase + blk;
    q.s = W1[e >> 1];
    q.meta |= e & 1u;
    return q;
}
// the step's 32 halves (4 uvec4, elements in order) into the subgroup's shared row at uvec4 offset o
void store_w(WRaw q, uint o)
{
    bool ok = (q.meta & 2u) != 0u;
    if (!wt_is_quant())
    {
        Ws[o] = ok ? q.u : uvec4(0u);
        Ws[o + 1u] = ok ? q.v : uvec4(0u);
        Ws[o + 2u] = ok ? q.f : uvec4(0u);
        Ws[o + 3u] = ok ? q.g : uvec4(0u);
        return;
    }
    [[unroll]] for (uint g = 0u; g < 4u; g++)
    {
        uvec4 h = uvec4(0u);
        if (ok)
        {
            vec4 lo, hi;
            w_q_finish(WTYPE == WT_Q8_0 && g >= 2u ? q.v : q.u, q.s, q.meta & 1u, WTYPE == WT_Q8_0 ? g & 1u : g, lo, hi);
            h = pack8(lo, hi);
        }
        Ws[o + g] = h;
    }
}

void main()
{
    uint tid = gl_LocalInvocationID.x, w = tid >> 5, lane = tid & 31u;
    g_lane = lane;
    uint r0 = gl_WorkGroupID.x * 16u;
    uint t0 = gl_WorkGroupID.z * 16u * NT16;
    uint nSteps = (pc.cols + 31u) / 32u;
    uint per = (nSteps + KSPLIT - 1u) / KSPLIT;      // steps per subgroup (the same trip count for all of them)
    uint sBeg = w * per, sEnd = min(nSteps, sBeg + per);
    uint xs = pc.xStride / 8u;                       // uvec4 per token row of XH
    uint wBase = w * WS_SG, xBase = wBase + 16u * LDV;

    CM_ACC acc[NT16];
    [[unroll]] for (uint j = 0u; j < NT16; j++) acc[j] = CM_ZERO;

    uint myRow = r0 + (lane & 15u), half_ = lane >> 4;
    WRaw q[UNROLL];
    [[unroll]] for (uint u = 0u; u < UNROLL; u++) q[u] = load_w(myRow, sBeg + 2u * u + half_, sEnd);
    for (uint s0 = sBeg; s0 < sBeg + per; s0 += STEPS)
    {
        [[unroll]] for (uint u = 0u; u < UNROLL; u++) store_w(q[u], wBase + (lane & 15u) * LDV + 4u * (2u * u + half_));
        // the round's x: 16·NT16 token rows × 4·STEPS uvec4 (zeros past nTok and past the subgroup's K range)
        [[unroll]] for (uint m = 0u; m < 2u * NT16 * STEPS; m++)
        {
            uint i = lane + 32u * m, tr = i / (4u * STEPS), c = i % (4u * STEPS), t = t0 + tr;
            bool ok = t < pc.nTok && s0 + c / 4u < sEnd;
            uvec4 v = XH[ok ? t * xs + 4u * s0 + c : 0u];
            Ws[xBase + tr * LDV + c] = ok ? v : uvec4(0u);
        }
        SG_SYNC();
        // the next round's weight loads before this round's products
        if (s0 + STEPS < sBeg + per)
            [[unroll]] for (uint u = 0u; u < UNROLL; u++) q[u] = load_w(myRow, s0 + STEPS + 2u * u + half_, sEnd);
        PRODUCT_LOOP for (uint st = 0u; st < STEPS; st++)
        {
            if (s0 + st >= sEnd) break;   // uniform within the subgroup
            PRODUCT_LOOP for (uint h = 0u; h < 2u; h++)
            {
                CM_AB b;
                CM_LOAD_W(b, wBase + 4u * st + 2u * h, LDV);
                PRODUCT_LOOP for (uint j = 0u; j < NT16; j++)
                {
                    CM_AB a;
                    CM_LOAD_X(a, xBase + 16u * j * LDV + 4u * st + 2u * h, LDV);
                    acc[j] = CM_MULADD(a, b, acc[j]);
                }
            }
        }
        SG_SYNC();   // the tiles are read before the next round overwrites them
    }

    // (the subgroup's last products have read its rows: SG_SYNC above)
    [[unroll]] for (uint j = 0u; j < NT16; j++) CM_STORE_C(acc[j], 4u * w * WS_SG + 256u * j);
    barrier();
    // the subgroups' partial sums in order of w, then the bias, then the old value
    for (uint c = tid; c < NT16 * 256u; c += 32u * KSPLIT)
    {
        uint j = c >> 8, e = c & 255u, t = t0 + 16u * j + (e >> 4);
        uint row = r0 + (e & 15u);
        if (t >= pc.nTok || row >= pc.rows) continue;
        float v = 0.0;
        for (uint i = 0u; i < KSPLIT; i++) v += cs_at(4u * i * WS_SG + 256u * j + e);
        if ((pc.flags & 2u) != 0u) v += B[pc.bOff + row];
        uint o = pc.dOff + t * pc.dStride + row;
        if ((pc.flags & 1u) != 0u) v += D[o];
        D[o] = v;
    }
}
