// The body of matmul_coopmat.comp (tensor cores, GL_NV_cooperative_matrix) and of its test build
// matmul_coopmat_emu.comp (the same kernel with each 16×16 matrix operation done by plain arithmetic, so that its
// tiling, staging and epilogue are checked on devices without cooperative matrices, lavapipe in CI).
//
// dst[t, row] (+)= Σ_k x[t, k] · W[row, k] (+ bias[row]): x is [tokens, K] float32, W is [rows, K] of any weight type.
// Workgroup: WARPS_M × WARPS_N subgroups of 32 invocations; a tile of BM = 16·TM·WARPS_M tokens × BN = 16·TN·WARPS_N
// weight rows, K in steps of BK = 8·BKV. Subgroup (wm, wn) owns TM × TN accumulator tiles of 16 × 16 (f32).
// Operands are f16 in shared memory (x converted, F16 weights copied as they are, other types dequantized once per
// tile), double-buffered: the global loads of step s+1 are issued before the products of step s and stored into the
// other buffer after them, so one barrier per step suffices. Rows of the shared tiles are BKV + 1 uvec4 long (16 bytes
// of padding) so that the 16-byte fragment loads of 8 consecutive rows hit distinct banks.
// Precision: operands rounded to f16 (the host selects this kernel only where docs/precision.md allows it: weights other
// than F32 whose values fit f16, --precision auto), f32 accumulation.
// Variants (H200 measurements decide the defaults, docs/NOTES.md): RSTAGES 2 keeps two steps of operands in registers
// (the loads of step s+2 are issued before the products of step s, stored after those of step s+1; quantized weights
// decoded when stored), for f16 x; XF16 reads x already converted to f16 (binding 5, [tokens, xStride] halves, written by convert_f16.comp)
// instead of converting f32 per tile; the host may likewise hand in quantized weights dequantized to F16 (WTYPE 1).
// TOKEN_MAJOR puts the token tiles on grid x, so that the workgroups running at once share weight tiles in L2.
// SPLITK (prompts of a few tokens, where one workgroup walking all of K is a chain of latencies): workgroup z sums only
// K range [z·kSeg, (z+1)·kSeg) and stores its plain partial tile at D + z·partStride (no bias, no accumulation: the host
// passes flags 0); splitk_sum.comp adds the partials in order of z. A token's result then depends only on K and kSeg,
// not on how many tokens share the product or where its tile lies.
// (float16_t shared tiles instead of uvec4 were measured slower on the H200; glslang rejects f16vec4 ones.)
layout(local_size_x_id = 0) in;                     // 32 · WARPS_M · WARPS_N
layout(constant_id = 1) const uint WARPS_M = 2u;
layout(constant_id = 2) const uint WTYPE = 1u;
layout(constant_id = 3) const uint WARPS_N = 2u;
layout(constant_id = 4) const uint TM = 4u;
layout(constant_id = 5) const uint TN = 4u;
layout(constant_id = 6) const uint BKV = 4u;        // uvec4 (8 halves) per shared row: BK = 8 · BKV
layout(constant_id = 7) const uint XF16 = 0u;       // 1: x is f16 in XH (binding 5)
layout(constant_id = 8) const uint RSTAGES = 1u;    // 2 (f16 x only): loads run two K steps ahead
layout(constant_id = 9) const uint TOKEN_MAJOR = 0u;  // 1: grid x = token tiles, y = weight-row tiles
layout(constant_id = 10) const uint SPLITK = 0u;    // 1: grid z = K segments of kSeg, partial tiles (see above)
// Diagnosis only (XLSTM_VK_GEMM_DIAG; wrong results, timing of the parts of the two-register-stage loop): bit 1 no
// global loads after the first step, 2 no products, 4 no shared stores after the first step, 8 no barriers in the loop
layout(constant_id = 11) const uint DIAG = 0u;

layout(std430, binding = 0) readonly buffer W4b { uvec4 W4[]; };
layout(std430, binding = 1) readonly buffer W1b { uint W1[]; };
layout(std430, binding = 2) readonly buffer Xb { vec4 X4[]; };
layout(std430, binding = 3) buffer Db { float D[]; };
layout(std430, binding = 4) readonly buffer Bb { float B[]; };
layout(std430, binding = 5) readonly buffer XHb { uvec4 XH[]; };

layout(push_constant) uniform PC
{
    uint rows, cols, wStride, scaleBase, xOff, xStride, dOff, dStride, bOff, flags, nTok;
    uint kSeg, partStride;   // SPLITK: K per workgroup z (a multiple of BK), floats between partial tiles
} pc;

#include "weights.glsl"

const uint NT = 32u * WARPS_M * WARPS_N;
const uint BM = 16u * TM * WARPS_M;
const uint BN = 16u * TN * WARPS_N;
const uint BK = 8u * BKV;
const uint LDV = BKV + 1u;                          // uvec4 per shared row
const uint A_ITEMS = (BM * BKV + NT - 1u) / NT;     // (token, 8-element group) items per invocation and step
const uint B_ITEMS = (BN * BKV + NT - 1u) / NT;     // (row, 8-element group) items
// Shared memory: the two buffers of the x tile (As: 2 · BM rows of LDV uvec4 from 0), then those of the weight tile
// (Bs: 2 · BN rows from B_OFF). The epilogue's staging (one 16 × 16 f32 tile per subgroup, 64 uvec4 each, from 0) reuses
// the same memory: the main loop's last barrier comes after its last products.
const uint B_OFF = 2u * BM * LDV;
const uint SH_OPS = 2u * (BM + BN) * LDV;
const uint SH_STAGE = WARPS_M * WARPS_N * 64u;
shared uvec4 Sh[SH_OPS > SH_STAGE ? SH_OPS : SH_STAGE];
float staged(uint i) { return uintBitsToFloat(Sh[i >> 2][i & 3u]); }   // staging element i (floats from 0)
uint g_lane;

#if EMULATE_COOPMAT
// A/B "matrix": a view of a shared tile, read at multiply time (nothing writes the tile between load and product);
// accumulator: 8 floats per lane, element e = lane + 32·i at (row e / 16, column e % 16). Lanes are groups of 32
// invocations (lavapipe's subgroups are 8 wide), synchronised with workgroup barriers.
struct CmAB { uint off; uint stride; bool colMajor; };
struct CmAcc { float v[8]; };
#define CM_AB CmAB
#define CM_ACC CmAcc
#define CM_ZERO CmAcc(float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
#define CM_LOAD_S(m, off_, stride_, colMajor_) m = CmAB(off_, stride_, colMajor_)
float half_at(uint i)   // i in halves of Sh
{
    uvec4 u = Sh[i >> 3];
    uint w = u[(i >> 1) & 3u];
    return unpackHalf2x16(w)[i & 1u];
}
float cm_elem(CmAB m, uint r, uint c)
{
    uint i = m.colMajor ? 8u * m.off + c * 8u * m.stride + r : 8u * m.off + r * 8u * m.stride + c;
    return half_at(i);
}
CmAcc cm_muladd(CmAB a, CmAB b, CmAcc acc)
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
void cm_store_s(CmAcc m, uint off, uint stride)
{
    for (uint i = 0u; i < 8u; i++) { uint e = g_lane + 32u * i, o = off + (e >> 4) * stride + (e & 15u); Sh[o >> 2][o & 3u] = floatBitsToUint(m.v[i]); }
}
#define CM_STORE_S(m, off, stride) cm_store_s(m, off, stride)
void cm_store_g(CmAcc m, uint off, uint stride)
{
    for (uint i = 0u; i < 8u; i++) { uint e = g_lane + 32u * i; D[off + (e >> 4) * stride + (e & 15u)] = m.v[i]; }
}
CmAcc cm_load_g(uint off, uint stride)
{
    CmAcc m;
    for (uint i = 0u; i < 8u; i++) { uint e = g_lane + 32u * i; m.v[i] = D[off + (e >> 4) * stride + (e & 15u)]; }
    return m;
}
#define CM_STORE_G(m, off, stride) cm_store_g(m, off, stride)
#define CM_LOAD_G(m, off, stride) m = cm_load_g(off, stride)
// each invocation reads back exactly the staging elements it stored: no synchronisation needed
#define SG_SYNC()
#else
#define CM_AB fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define CM_ACC fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define CM_ZERO fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0)
#define CM_LOAD_S(m, off, stride, colMajor) coopMatLoadNV(m, Sh, off, stride, colMajor)
#define CM_MULADD(a, b, c) coopMatMulAddNV(a, b, c)
#define CM_STORE_S(m, off, stride) coopMatStoreNV(m, Sh, (off) >> 2, (stride) >> 2, false)   // offsets in floats, multiples of 4
#define CM_STORE_G(m, off, stride) coopMatStoreNV(m, D, off, stride, false)
#define CM_LOAD_G(m, off, stride) coopMatLoadNV(m, D, off, stride, false)
#define SG_SYNC() { subgroupMemoryBarrierShared(); subgroupBarrier(); }
#endif

// x[t, k..k+7] as f16 (XF16: xOff, xStride and every row's padding to 8 halves are the host's, zeros in the padding):
// loaded from a clamped address with no use of the value (so that a step's loads are all in flight at once), and zeroed
// outside the matrix by xh_keep where it is stored
bool xh_in(uint t, uint k) { return t < pc.nTok && k < pc.cols; }
uvec4 load_xh(uint t, uint k) { return XH[xh_in(t, k) ? (pc.xOff + t * pc.xStride + k) >> 3 : pc.xOff >> 3]; }
uvec4 xh_keep(uvec4 v, uint t, uint k) { return xh_in(t, k) ? v : uvec4(0u); }

// x[t, k..k+7] (zeros outside the matrix)
void load_x8(uint t, uint k, out vec4 a, out vec4 b)
{
    a = vec4(0.0);
    b = vec4(0.0);
    if (t >= pc.nTok || k >= pc.cols) return;
    uint e = pc.xOff + t * pc.xStride + k;
    if (k + 8u <= pc.cols)
    {
        a = X4[e >> 2];
        b = X4[(e >> 2) + 1u];
        return;
    }
    float v[8];
    for (uint i = 0u; i < 8u; i++) v[i] = k + i < pc.cols ? X4[(e + i) >> 2][(e + i) & 3u] : 0.0;
    a = vec4(v[0], v[1], v[2], v[3]);
    b = vec4(v[4], v[5], v[6], v[7]);
}

// A 16 × 16 output tile inside the matrix, without bias, 16-byte aligned: stored (and, accumulating, loaded) whole.
bool direct_tile(uint t0, uint r0)
{
    return t0 + 16u <= pc.nTok && r0 + 16u <= pc.rows && (pc.flags & 2u) == 0u &&
           ((pc.dOff + t0 * pc.dStride + r0) & 3u) == 0u && (pc.dStride & 3u) == 0u;
}

uvec4 pack8(vec4 a, vec4 b) { return uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw)); }

// W[row, k..k+7] as eight f16: F16 weights as stored, every other type dequantized then packed
uvec4 load_w8(uint row, uint k, uint padCols)
{
    if (row >= pc.rows || k >= padCols) return uvec4(0u);
    if (WTYPE == WT_F16) return W4[row * pc.wStride + (k >> 3)];
    vec4 lo, hi;
    w_decode8(row, k >> 3, pc.wStride, pc.scaleBase, lo, hi);
    return pack8(lo, hi);
}

// The same in two halves, so that all of a step's loads are in flight before the first is waited for: load_w8_raw only
// loads (unconditionally: an address inside the matrix even for a group outside it, so that no branch and no use of a
// loaded value sits between two loads), decode_w8 finishes as load_w8 does (weights.glsl's w_q_load / w_q_finish are
// the halves of w_decode8). Decoding each group right after its load made every group a memory round trip of its own.
struct WRaw { uvec4 u; uint s; uint meta; };   // the block's 16 bytes, the scale's word, q | (scale half) << 2 | inside << 3
WRaw load_w8_raw(uint row, uint k, uint padCols)
{
    WRaw r;
    if (!wt_is_quant())
    {
        r.u = load_w8(row, k, padCols);
        r.s = 0u;
        r.meta = 0u;
        return r;
    }
    bool ok = row < pc.rows && k < padCols;
    uint g = k >> 3, q = g & 3u, blk = ok ? row * pc.wStride + (g >> 2) : 0u;
    r.u = w_q_load(blk, q);
    uint e = pc.scaleBase + blk;
    r.s = W1[e >> 1];
    r.meta = q | ((e & 1u) << 2) | (ok ? 8u : 0u);
    return r;
}
uvec4 decode_w8(WRaw r)
{
    if (!wt_is_quant()) return r.u;
    if ((r.meta & 8u) == 0u) return uvec4(0u);
    vec4 lo, hi;
    w_q_finish(r.u, r.s, (r.meta >> 2) & 1u, r.meta & 3u, lo, hi);
    return pack8(lo, hi);
}

// products of the shared tiles of buffer `cur` into the accumulators (BK = 2 · 16 · (BKV / 2) per step)
#define PRODUCTS(cur) \
    { \
        uint aBase_ = (cur) * BM * LDV + (wm * TM * 16u) * LDV; \
        uint bBase_ = B_OFF + (cur) * BN * LDV + (wn * TN * 16u) * LDV; \
        [[unroll]] for (uint kk = 0u; kk < BKV; kk += 2u) \
        { \
            CM_AB b_[TN]; \
            [[unroll]] for (uint j = 0u; j < TN; j++) CM_LOAD_S(b_[j], bBase_ + j * 16u * LDV + kk, LDV, true); \
            [[unroll]] for (uint i = 0u; i < TM; i++) \
            { \
                CM_AB a_; \
                CM_LOAD_S(a_, aBase_ + i * 16u * LDV + kk, LDV, false); \
                [[unroll]] for (uint j = 0u; j < TN; j++) acc[i][j] = CM_MULADD(a_, b_[j], acc[i][j]); \
            } \
        } \
    }

// Item idx of a step's tile (row, 16-byte column) for loads and shared stores. With BKV = 4 the eight invocations of a
// quarter subgroup (one 128-byte shared-store phase) take rows r and r + 4 of an 8-row band, whose padded rows (80 bytes
// apart) fall on disjoint banks; rows r and r + 1 would share four. A subgroup still reads whole 64-byte row pieces.
uint it_row(uint idx) { return BKV == 4u ? 8u * (idx >> 5) + ((idx >> 3) & 3u) + 4u * ((idx >> 2) & 1u) : idx / BKV; }
uint it_col(uint idx) { return BKV == 4u ? idx & 3u : idx % BKV; }

uint g_tid, g_tokBase, g_rowBase, g_padCols;

// one K step of operands (x from XH; weights as loaded, decoded when stored) into registers
void load_step(uint k0, out uvec4 a[A_ITEMS], out WRaw b[B_ITEMS])
{
    if ((DIAG & 1u) != 0u)
    {
        [[unroll]] for (uint i = 0u; i < A_ITEMS; i++) a[i] = uvec4(k0 + i);
        [[unroll]] for (uint i = 0u; i < B_ITEMS; i++) { b[i].u = uvec4(k0 + i); b[i].s = 0u; b[i].meta = 0u; }
        return;
    }
    [[unroll]] for (uint i = 0u; i < A_ITEMS; i++)
    {
        uint idx = g_tid + NT * i;
        a[i] = load_xh(g_tokBase + it_row(idx), k0 + 8u * it_col(idx));
    }
    [[unroll]] for (uint i = 0u; i < B_ITEMS; i++)
    {
        uint idx = g_tid + NT * i;
        b[i] = load_w8_raw(g_rowBase + it_row(idx), k0 + 8u * it_col(idx), g_padCols);
    }
}

// registers of the K step at k0 into shared buffer `buf`
void store_step(uint buf, uvec4 a[A_ITEMS], WRaw b[B_ITEMS], uint k0)
{
    if ((DIAG & 4u) != 0u) return;
    [[unroll]] for (uint i = 0u; i < A_ITEMS; i++)
    {
        uint idx = g_tid + NT * i;
        if (idx < BM * BKV) Sh[buf * BM * LDV + it_row(idx) * LDV + it_col(idx)] = xh_keep(a[i], g_tokBase + it_row(idx), k0 + 8u * it_col(idx));
    }
    [[unroll]] for (uint i = 0u; i < B_ITEMS; i++)
    {
        uint idx = g_tid + NT * i;
        if (idx < BN * BKV) Sh[B_OFF + buf * BN * LDV + it_row(idx) * LDV + it_col(idx)] = decode_w8(b[i]);
    }
}

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint sg = tid >> 5, lane = tid & 31u;   // groups of 32 (subgroups of 32 checked by the host)
    g_lane = lane;
    uint wm = sg / WARPS_N, wn = sg % WARPS_N;
    uint rowBase = (TOKEN_MAJOR != 0u ? gl_WorkGroupID.y : gl_WorkGroupID.x) * BN;
    uint tokBase = (TOKEN_MAJOR != 0u ? gl_WorkGroupID.x : gl_WorkGroupID.y) * BM;
    uint padCols = wt_is_quant() ? pc.cols : ((pc.cols + 7u) & ~7u);
    uint kStart = SPLITK != 0u ? gl_WorkGroupID.z * pc.kSeg : 0u;
    uint kEnd = SPLITK != 0u ? min(pc.cols, kStart + pc.kSeg) : pc.cols;
    uint nSteps = (kEnd - kStart + BK - 1u) / BK;
    uint dBase = pc.dOff + (SPLITK != 0u ? gl_WorkGroupID.z * pc.partStride : 0u);
    g_tid = tid;
    g_tokBase = tokBase;
    g_rowBase = rowBase;
    g_padCols = padCols;

    // registers holding the next step's operands
    vec4 xa[A_ITEMS], xb[A_ITEMS];
    uvec4 xh[A_ITEMS];
    WRaw wq[B_ITEMS];    // the next step's weight loads, decoded when stored
    [[unroll]] for (uint i = 0u; i < A_ITEMS; i++)
    {
        uint idx = tid + NT * i;
        if (XF16 != 0u) xh[i] = load_xh(tokBase + it_row(idx), kStart + 8u * it_col(idx));
        else load_x8(tokBase + it_row(idx), kStart + 8u * it_col(idx), xa[i], xb[i]);
    }
    [[unroll]] for (uint i = 0u; i < B_ITEMS; i++)
    {
        uint idx = tid + NT * i;
        wq[i] = load_w8_raw(rowBase + it_row(idx), kStart + 8u * it_col(idx), padCols);
    }
    [[unroll]] for (uint i = 0u; i < A_ITEMS; i++)
    {
        uint idx = tid + NT * i;
        if (idx < BM * BKV)
            Sh[it_row(idx) * LDV + it_col(idx)] = XF16 != 0u ? xh_keep(xh[i], tokBase + it_row(idx), kStart + 8u * it_col(idx)) : pack8(xa[i], xb[i]);
    }
    [[unroll]] for (uint i = 0u; i < B_ITEMS; i++)
    {
        uint idx = tid + NT * i;
        if (idx < BN * BKV) Sh[B_OFF + it_row(idx) * LDV + it_col(idx)] = decode_w8(wq[i]);
    }
    barrier();

    // accumulators: zero, or (accumulating into a whole tile that goes straight back to memory) the old values
    CM_ACC acc[TM][TN];
    [[unroll]] for (uint i = 0u; i < TM; i++)
        [[unroll]] for (uint j = 0u; j < TN; j++)
        {
            uint t0 = tokBase + (wm * TM + i) * 16u, r0 = rowBase + (wn * TN + j) * 16u;
            if ((pc.flags & 1u) != 0u && direct_tile(t0, r0)) CM_LOAD_G(acc[i][j], dBase + t0 * pc.dStride + r0, pc.dStride);
            else acc[i][j] = CM_ZERO;
        }

    if (RSTAGES == 2u && XF16 != 0u)
    {
        // two register stages: set 1 holds step s+1 while the products of step s run and set 0 receives step s+2
        uvec4 a1[A_ITEMS];
        WRaw b1[B_ITEMS];
        if (nSteps > 1u) load_step(kStart + BK, a1, b1);
        for (uint s = 0u; s < nSteps; s += 2u)
        {
            if (s + 2u < nSteps) load_step(kStart + (s + 2u) * BK, xh, wq);
            if ((DIAG & 2u) == 0u) PRODUCTS(0u);
            if (s + 1u < nSteps) store_step(1u, a1, b1, kStart + (s + 1u) * BK);
            if ((DIAG & 8u) == 0u) barrier();
            if (s + 1u >= nSteps) break;
            if (s + 3u < nSteps) load_step(kStart + (s + 3u) * BK, a1, b1);
            if ((DIAG & 2u) == 0u) PRODUCTS(1u);
            if (s + 2u < nSteps) store_step(0u, xh, wq, kStart + (s + 2u) * BK);
            if ((DIAG & 8u) == 0u) barrier();
        }
    }
    else
    {
        for (uint s = 0u; s < nSteps; s++)
        {
            uint cur = s & 1u;
            bool more = s + 1u < nSteps;
            if (more)
            {
                uint k0 = kStart + (s + 1u) * BK;
                [[unroll]] for (uint i = 0u; i < A_ITEMS; i++)
                {
                    uint idx = tid + NT * i;
                    if (XF16 != 0u) xh[i] = load_xh(tokBase + it_row(idx), k0 + 8u * it_col(idx));
                    else load_x8(tokBase + it_row(idx), k0 + 8u * it_col(idx), xa[i], xb[i]);
                }
                [[unroll]] for (uint i = 0u; i < B_ITEMS; i++)
                {
                    uint idx = tid + NT * i;
                    wq[i] = load_w8_raw(rowBase + it_row(idx), k0 + 8u * it_col(idx), padCols);
                }
            }
            PRODUCTS(cur);
            if (more)
            {
                uint nxt = cur ^ 1u;
                [[unroll]] for (uint i = 0u; i < A_ITEMS; i++)
                {
                    uint idx = tid + NT * i;
                    if (idx < BM * BKV)
                        Sh[nxt * BM * LDV + it_row(idx) * LDV + it_col(idx)] =
                            XF16 != 0u ? xh_keep(xh[i], tokBase + it_row(idx), kStart + (s + 1u) * BK + 8u * it_col(idx)) : pack8(xa[i], xb[i]);
                }
                [[unroll]] for (uint i = 0u; i < B_ITEMS; i++)
                {
                    uint idx = tid + NT * i;
                    if (idx < BN * BKV) Sh[B_OFF + nxt * BN * LDV + it_row(idx) * LDV + it_col(idx)] = decode_w8(wq[i]);
                }
            }
            barrier();
        }
    }

    // epilogue: whole tiles go straight to memory (accumulation was folded into the initial values); edge tiles and
    // biased ones go through the subgroup's staging tile with per-element checks
    [[unroll]] for (uint i = 0u; i < TM; i++)
        [[unroll]] for (uint j = 0u; j < TN; j++)
        {
            uint t0 = tokBase + (wm * TM + i) * 16u;
            uint r0 = rowBase + (wn * TN + j) * 16u;
            if (direct_tile(t0, r0))
                CM_STORE_G(acc[i][j], dBase + t0 * pc.dStride + r0, pc.dStride);
            else
            {
                CM_STORE_S(acc[i][j], sg * 256u, 16u);
                SG_SYNC();
                [[unroll]] for (uint e = 0u; e < 8u; e++)
                {
                    uint el = lane + 32u * e;
                    uint t = t0 + (el >> 4), row = r0 + (el & 15u);
                    if (t < pc.nTok && row < pc.rows)
                    {
                        float v = staged(sg * 256u + el);
                        if ((pc.flags & 2u) != 0u) v += B[pc.bOff + row];
                        uint o = dBase + t * pc.dStride + row;
                        if ((pc.flags & 1u) != 0u) v += D[o];
                        D[o] = v;
                    }
                }
                SG_SYNC();
            }
        }
}
