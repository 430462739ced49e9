// The body of matvec_tcg.comp (tensor cores, GL_NV_cooperative_matrix) and of its test build matvec_tcg_emu.comp (each
// 16×16 matrix operation by plain arithmetic, for devices without cooperative matrices: lavapipe in CI).
//
// A product of a few tokens (a decode step of up to 64 sequences, a short prompt feed) on tensor cores, shaped like a
// matvec rather than a GEMM: dst[t, row] (+)= Σ_k x[t, k] · W[row, k] (+ bias[row]).
// - x is f16 in XH ([tokens, xStride] halves, zero past `cols` up to a multiple of 32 and in the padding rows of the last
//   16-token tile: convert_f16.comp writes it), read straight from memory as the A operand (16 tokens × 16 k).
// - A workgroup is KSPLIT subgroups of 32 for one tile of 16 weight rows; subgroup w walks its own K range (a fixed
//   share of the 32-wide K steps) with no workgroup barrier: F16 weights are read straight from memory as the B operand,
//   quantized ones are loaded 2·UNROLL steps at a time into registers (the next round's loads issued before this round's
//   products), dequantized to f16 (weights.glsl's w_q_finish, the same values as the dequantized F16 copy) into the
//   subgroup's own shared tile, and multiplied from there.
// - NT16 accumulators of 16 tokens × 16 rows per subgroup (workgroup z: tokens [z·16·NT16, (z+1)·16·NT16)); at the end
//   the subgroups' tiles are added in order of w, then the bias, then the old value.
// A token's result depends only on the weight, K and KSPLIT: not on how many tokens share the product or on which tile
// they sit (the tensor cores' columns are independent), so a multi-sequence step gives every sequence the bits of its
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

const uint STEPS = 2u * UNROLL;          // K steps of 32 per round (quantized weights)
const uint LDV = 4u * STEPS + 1u;        // uvec4 per shared row: 32 halves per step, 16 bytes of padding
// Each subgroup's region of Ws: its dequantized rows (quantized weights), then, after its last products, its
// accumulators (NT16 token-major 16 × 16 tiles of f32, 64 uvec4 each)
const uint WS_ROWS = WTYPE == WT_Q8_0 || WTYPE == WT_Q4_0 ? 16u * LDV : 0u;
const uint WS_SG = WS_ROWS > 64u * NT16 ? WS_ROWS : 64u * NT16;
shared uvec4 Ws[KSPLIT * WS_SG];
uint g_lane;
float cs_at(uint i) { return uintBitsToFloat(Ws[i >> 2][i & 3u]); }   // i in floats

#if EMULATE_COOPMAT
// Operand "matrices" are views read at multiply time; accumulator: 8 floats per lane, element e = lane + 32·i at
// (token e / 16, row e % 16). Lanes are groups of 32 invocations synchronised with workgroup barriers.
struct CmView { uint arr; uint off; uint stride; };   // arr 0: XH (row-major), 1: Ws, 2: W4 (both column-major)
struct CmAcc { float v[8]; };
#define CM_AB CmView
#define CM_ACC CmAcc
#define CM_ZERO CmAcc(float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
#define CM_LOAD_X(m, off_, stride_) m = CmView(0u, off_, stride_)
#define CM_LOAD_WS(m, off_, stride_) m = CmView(1u, off_, stride_)
#define CM_LOAD_WG(m, off_, stride_) m = CmView(2u, off_, stride_)
float half_of(uint arr, uint i)   // i in halves
{
    uvec4 u = arr == 0u ? XH[i >> 3] : arr == 1u ? Ws[i >> 3] : W4[i >> 3];
    return unpackHalf2x16(u[(i >> 1) & 3u])[i & 1u];
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
#define CM_LOAD_X(m, off, stride) coopMatLoadNV(m, XH, off, stride, false)
#define CM_LOAD_WS(m, off, stride) coopMatLoadNV(m, Ws, off, stride, true)
#define CM_LOAD_WG(m, off, stride) coopMatLoadNV(m, W4, off, stride, true)
#define CM_MULADD(a, b, c) coopMatMulAddNV(a, b, c)
#define CM_STORE_C(m, off) coopMatStoreNV(m, Ws, (off) / 4u, 4u, false)
#define SG_SYNC() { subgroupMemoryBarrierShared(); subgroupBarrier(); }
#define PRODUCT_LOOP [[unroll]]
#endif

uvec4 pack8(vec4 a, vec4 b) { return uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw)); }

// One lane's share of a round: row `row` (clamped into the matrix), K step s (a Q4_0 block: 16 bytes; Q8_0: 32), raw.
struct QRaw { uvec4 u; uvec4 v; uint s; uint meta; };   // quants, the scale's word, (scale half) | (inside) << 1
QRaw load_q(uint row, uint s, uint sEnd)
{
    QRaw q;
    bool ok = s < sEnd;
    uint blk = min(row, pc.rows - 1u) * pc.wStride + (ok ? s : 0u);
    q.u = W4[WTYPE == WT_Q8_0 ? 2u * blk : blk];
    q.v = WTYPE == WT_Q8_0 ? W4[2u * blk + 1u] : q.u;
    uint e = pc.scaleBase + blk;
    q.s = W1[e >> 1];
    q.meta = (e & 1u) | (ok ? 2u : 0u);
    return q;
}
// the block's 32 halves (4 uvec4, elements in order) into the subgroup's shared row at uvec4 offset o
void store_q(QRaw q, uint o)
{
    [[unroll]] for (uint g = 0u; g < 4u; g++)
    {
        uvec4 h = uvec4(0u);
        if ((q.meta & 2u) != 0u)
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

    CM_ACC acc[NT16];
    [[unroll]] for (uint j = 0u; j < NT16; j++) acc[j] = CM_ZERO;

    if (wt_is_quant())
    {
        // lane: row r0 + (lane & 15), steps 2u' + (lane >> 4) of each round
        uint myRow = r0 + (lane & 15u), half_ = lane >> 4;
        uint wsBase = w * WS_SG;
        QRaw q[UNROLL];
        [[unroll]] for (uint u = 0u; u < UNROLL; u++) q[u] = load_q(myRow, sBeg + 2u * u + half_, sEnd);
        for (uint s0 = sBeg; s0 < sBeg + per; s0 += STEPS)
        {
            [[unroll]] for (uint u = 0u; u < UNROLL; u++) store_q(q[u], wsBase + (lane & 15u) * LDV + 4u * (2u * u + half_));
            SG_SYNC();
            // the next round's loads before this round's products
            if (s0 + STEPS < sBeg + per)
                [[unroll]] for (uint u = 0u; u < UNROLL; u++) q[u] = load_q(myRow, s0 + STEPS + 2u * u + half_, sEnd);
            PRODUCT_LOOP for (uint st = 0u; st < STEPS; st++)
            {
                if (s0 + st >= sEnd) break;   // uniform within the subgroup
                PRODUCT_LOOP for (uint h = 0u; h < 2u; h++)
                {
                    CM_AB b;
                    CM_LOAD_WS(b, wsBase + 4u * st + 2u * h, LDV);
                    PRODUCT_LOOP for (uint j = 0u; j < NT16; j++)
                    {
                        CM_AB a;
                        CM_LOAD_X(a, (t0 + 16u * j) * xs + 4u * (s0 + st) + 2u * h, xs);
                        acc[j] = CM_MULADD(a, b, acc[j]);
                    }
                }
            }
            SG_SYNC();   // the tile is read before the next round overwrites it
        }
    }
    else
    {
        // F16 weights straight from memory: rows are wStride uvec4 long (the host checks that the 32-wide steps stay
        // inside them); UNROLL steps of B operands loaded before their products
        uint rowOff = min(r0, pc.rows - 16u) * pc.wStride;
        for (uint s0 = sBeg; s0 < sEnd; s0 += UNROLL)
        {
            CM_AB b[UNROLL][2];
            [[unroll]] for (uint u = 0u; u < UNROLL; u++)
                [[unroll]] for (uint h = 0u; h < 2u; h++)
                    CM_LOAD_WG(b[u][h], rowOff + 4u * min(s0 + u, sEnd - 1u) + 2u * h, pc.wStride);
            PRODUCT_LOOP for (uint u = 0u; u < UNROLL; u++)
            {
                if (s0 + u >= sEnd) break;
                PRODUCT_LOOP for (uint h = 0u; h < 2u; h++)
                    PRODUCT_LOOP for (uint j = 0u; j < NT16; j++)
                    {
                        CM_AB a;
                        CM_LOAD_X(a, (t0 + 16u * j) * xs + 4u * (s0 + u) + 2u * h, xs);
                        acc[j] = CM_MULADD(a, b[u][h], acc[j]);
                    }
            }
        }
    }

    // (the subgroup's last products have read its rows: SG_SYNC above)
    [[unroll]] for (uint j = 0u; j < NT16; j++) CM_STORE_C(acc[j], 4u * w * WS_SG + 256u * j);
    barrier();
    // the subgroups' partial sums in order of w, then the bias, then the old value
    uint fRow = pc.rows >= 16u ? min(r0, pc.rows - 16u) : 0u;   // the F16 path's tile (clamped: rows past the end repeat)
    for (uint c = tid; c < NT16 * 256u; c += 32u * KSPLIT)
    {
        uint j = c >> 8, e = c & 255u, t = t0 + 16u * j + (e >> 4);
        uint row = (wt_is_quant() ? r0 : fRow) + (e & 15u);
        if (t >= pc.nTok || row >= pc.rows || (!wt_is_quant() && row < r0)) continue;
        float v = 0.0;
        for (uint i = 0u; i < KSPLIT; i++) v += cs_at(4u * i * WS_SG + 256u * j + e);
        if ((pc.flags & 2u) != 0u) v += B[pc.bOff + row];
        uint o = pc.dOff + t * pc.dStride + row;
        if ((pc.flags & 1u) != 0u) v += D[o];
        D[o] = v;
    }
}
