// The body of matmul_coopmat.comp (and of its test build matmul_coopmat_emu.comp); see there.
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

const uint BM = 64u, BN = 128u, BK = 32u;
const uint LD = BK + 8u;   // f16 elements per shared row (80 bytes: 16-byte aligned rows, staggered banks)
shared float16_t Xs[BM * LD];
shared float16_t Ws[BN * LD];
shared float Cs[8u * 256u];
uint g_lane;   // invocation index within its 32-invocation group

#if EMULATE_COOPMAT
// Test build for devices without cooperative matrices (lavapipe): the same kernel with each 16×16 matrix operation
// done by plain arithmetic. An A/B "matrix" is a view of the shared tile (read at multiply time, which is equivalent:
// nothing writes the tiles between the loads and the products); an accumulator is 8 floats per invocation, element
// e = lane + 32·i at (row e / 16, column e % 16). Synchronisation uses workgroup barriers (every group of 32 takes the
// same path), since lavapipe's subgroups are 8 wide.
struct CmAB { uint arr; uint off; uint stride; bool colMajor; };
struct CmAcc { float v[8]; };
#define CM_AB CmAB
#define CM_ACC CmAcc
#define CM_ZERO CmAcc(float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
#define CM_LOAD(m, arr_, id, off_, stride_, colMajor_) m = CmAB(id, off_, stride_, colMajor_)
float cm_elem(CmAB m, uint r, uint c)
{
    uint i = m.colMajor ? m.off + c * m.stride + r : m.off + r * m.stride + c;
    return m.arr == 0u ? float(Xs[i]) : float(Ws[i]);
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
void cm_store(CmAcc m, uint off, uint stride)   // into Cs, the only place accumulators are stored
{
    for (uint i = 0u; i < 8u; i++) { uint e = g_lane + 32u * i; Cs[off + (e >> 4) * stride + (e & 15u)] = m.v[i]; }
}
#define CM_STORE(m, arr, off, stride) cm_store(m, off, stride)
#define SG_SYNC() barrier()
#else
#define CM_AB fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define CM_ACC fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define CM_ZERO fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0)
#define CM_LOAD(m, arr, id, off, stride, colMajor) coopMatLoadNV(m, arr, off, stride, colMajor)
#define CM_MULADD(a, b, c) coopMatMulAddNV(a, b, c)
#define CM_STORE(m, arr, off, stride) coopMatStoreNV(m, arr, off, stride, false)
#define SG_SYNC() { subgroupMemoryBarrierShared(); subgroupBarrier(); }
#endif

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

// x[t, k..k+3] as two packed f16 pairs (zeros outside the matrix)
uvec2 load_x(uint t, uint k)
{
    vec4 v = x4_at(t, k);
    return uvec2(packHalf2x16(v.xy), packHalf2x16(v.zw));
}

// W[row, k..k+7] as four packed f16 pairs: F16 weights as stored, every other type dequantized then packed
uvec4 load_w(uint row, uint k, uint padCols)
{
    if (row >= pc.rows || k >= padCols) return uvec4(0u);
    if (WTYPE == WT_F16) return W4[row * pc.wStride + (k >> 3)];
    vec4 lo, hi;
    w_decode8(row, k >> 3, pc.wStride, pc.scaleBase, lo, hi);
    return uvec4(packHalf2x16(lo.xy), packHalf2x16(lo.zw), packHalf2x16(hi.xy), packHalf2x16(hi.zw));
}

// two f16 from one packed uint into a shared f16 array
#define store2(arr, o, packed) { f16vec2 h_ = unpackFloat2x16(packed); arr[(o)] = h_.x; arr[(o) + 1u] = h_.y; }

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint sg = tid >> 5, lane = tid & 31u;   // subgroups of 32 (checked by the host)
    g_lane = lane;
    uint wm = sg >> 2, wn = sg & 3u;
    uint rowBase = gl_WorkGroupID.x * BN;
    uint tokBase = gl_WorkGroupID.y * BM;

    // loader roles: x: 2 × (token, 4 elements); weights: 2 × (row, 8-element group)
    uint xt[2], xk[2], wr[2], wq[2];
    [[unroll]] for (uint i = 0u; i < 2u; i++)
    {
        uint idx = tid + 256u * i;
        xt[i] = idx >> 3;  xk[i] = 4u * (idx & 7u);
        wr[i] = idx >> 2;  wq[i] = 8u * (idx & 3u);
    }
    uint padCols = wt_is_quant() ? pc.cols : ((pc.cols + 7u) & ~7u);
    // registers hold the next step's operands already packed as f16 pairs
    uvec2 xh[2];
    uvec4 wh[2];
    [[unroll]] for (uint i = 0u; i < 2u; i++)
    {
        xh[i] = load_x(tokBase + xt[i], xk[i]);
        wh[i] = load_w(rowBase + wr[i], wq[i], padCols);
    }

    CM_ACC c00 = CM_ZERO, c01 = CM_ZERO, c10 = CM_ZERO, c11 = CM_ZERO;

    for (uint k0 = 0u; k0 < pc.cols; k0 += BK)
    {
        barrier();   // the previous step's products have read the tiles
        [[unroll]] for (uint i = 0u; i < 2u; i++)
        {
            store2(Xs, xt[i] * LD + xk[i], xh[i].x);
            store2(Xs, xt[i] * LD + xk[i] + 2u, xh[i].y);
            uint wo = wr[i] * LD + wq[i];
            store2(Ws, wo, wh[i].x);
            store2(Ws, wo + 2u, wh[i].y);
            store2(Ws, wo + 4u, wh[i].z);
            store2(Ws, wo + 6u, wh[i].w);
        }
        barrier();
        // next step's global loads, in flight during the products
        uint kn = k0 + BK;
        if (kn < pc.cols)
            [[unroll]] for (uint i = 0u; i < 2u; i++)
            {
                xh[i] = load_x(tokBase + xt[i], kn + xk[i]);
                wh[i] = load_w(rowBase + wr[i], kn + wq[i], padCols);
            }
        [[unroll]] for (uint kk = 0u; kk < BK; kk += 16u)
        {
            CM_AB a0, a1, b0, b1;
            CM_LOAD(a0, Xs, 0u, (wm * 32u) * LD + kk, LD, false);
            CM_LOAD(a1, Xs, 0u, (wm * 32u + 16u) * LD + kk, LD, false);
            CM_LOAD(b0, Ws, 1u, (wn * 32u) * LD + kk, LD, true);
            CM_LOAD(b1, Ws, 1u, (wn * 32u + 16u) * LD + kk, LD, true);
            c00 = CM_MULADD(a0, b0, c00);
            c01 = CM_MULADD(a0, b1, c01);
            c10 = CM_MULADD(a1, b0, c10);
            c11 = CM_MULADD(a1, b1, c11);
        }
    }

    // epilogue: each accumulator tile through the subgroup's staging tile (row = token, column = weight row)
    [[unroll]] for (uint q = 0u; q < 4u; q++)
    {
        uint i = q >> 1, j = q & 1u;
        if (q == 0u) CM_STORE(c00, Cs, sg * 256u, 16u);
        else if (q == 1u) CM_STORE(c01, Cs, sg * 256u, 16u);
        else if (q == 2u) CM_STORE(c10, Cs, sg * 256u, 16u);
        else CM_STORE(c11, Cs, sg * 256u, 16u);
        SG_SYNC();
        [[unroll]] for (uint e = 0u; e < 8u; e++)
        {
            uint el = lane + 32u * e;
            uint t = tokBase + wm * 32u + i * 16u + (el >> 4);
            uint row = rowBase + wn * 32u + j * 16u + (el & 15u);
            if (t < pc.nTok && row < pc.rows)
            {
                float v = Cs[sg * 256u + el];
                if ((pc.flags & 2u) != 0u) v += B[pc.bOff + row];
                uint o = pc.dOff + t * pc.dStride + row;
                if ((pc.flags & 1u) != 0u) v += D[o];
                D[o] = v;
            }
        }
        SG_SYNC();
    }
}
