#version 450
// The mLSTM cell for one token (recurrent step form, xlstm7b-spec.md §2.2 step 6), fused: gate soft-cap, stabilizer,
// state update and output in one dispatch per block.
// Grid (column tiles of 256, row splits, heads). Invocation (lx, ly) owns columns tile·256 + lx + 64c (c < 4) for the
// rows split·R + ly + 4i of C, so one head's C is streamed by ctiles·splits workgroups with 4 independent loads per row.
// Every workgroup recomputes the gates and q̂·n_new (cheap). With one split the workgroup writes h itself; otherwise it
// writes its partial q̂ᵀC to PART and the last workgroup of the head to finish (atomic counter, reset by it) sums the
// partials, writes h, and updates n and m (after every other workgroup of the head has read the old ones).
// With pc.fuse = 1 the last workgroup also applies the head's LayerNorm and output gate (HeadNormGate) to the h it has
// just summed and writes the result to GD: h always goes through PART then, even with one split. h itself is written
// only with pc.writeH (a later op reads it).
#include "common.glsl"
layout(local_size_x = 64, local_size_y = 4) in;
#include "reduce.glsl"

layout(std430, binding = 0) readonly buffer Qb { float QKV[]; };
layout(std430, binding = 1) readonly buffer Gb { float G[]; };
layout(std430, binding = 2) buffer Sb { float S[]; };
layout(std430, binding = 3) writeonly buffer Hb { float H[]; };
layout(std430, binding = 4) buffer Cb { uint CNT[]; };
layout(std430, binding = 5) coherent buffer Pb { float PART[]; };
layout(std430, binding = 6) readonly buffer NWb { float NW[]; };   // fuse: the head-norm weight
layout(std430, binding = 7) writeonly buffer GDb { float GD[]; };  // fuse: LayerNorm(h) · w · sigmoid(o)

layout(push_constant) uniform PC
{
    uint qOff, kOff, vOff, gOff, hOff, NH, dqk, dv, nOff, mOff, cntOff, splits, rowsPerSplit;
    float cap, eps;
    uint fuse, oOff, gdOff;
    float normEps;
    uint writeH;   // h itself is written (a later op reads it)
    // several sequences (the multi-sequence decode step): workgroup z = row · NH + head, row r reading and writing its
    // own rows of q/k/v/o, gates, h, GD and slot r of the state (slotStride floats apart); 0 for one sequence
    uint qStride, gStride, hStride, gdStride, slotStride;
} pc;

shared float part[4][256];
shared float hsh[1024];   // fuse: h of the head (dv <= 1024, checked by the host)
shared bool isLast;

void main()
{
    uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
    uint tid = gl_LocalInvocationIndex;
    uint h = gl_WorkGroupID.z % pc.NH;
    uint row = gl_WorkGroupID.z / pc.NH;
    uint split = gl_WorkGroupID.y;
    uint col0 = gl_WorkGroupID.x * 256u;
    uint rq = row * pc.qStride, rs = row * pc.slotStride;
    uint qo = pc.qOff + rq + h * pc.dqk, ko = pc.kOff + rq + h * pc.dqk, vo = pc.vOff + rq + h * pc.dv;
    uint no = pc.nOff + rs + h * pc.dqk;
    uint hOff = pc.hOff + row * pc.hStride, gOff = pc.gOff + row * pc.gStride, gdOff = pc.gdOff + row * pc.gdStride;
    uint oOff = pc.oOff + rq;
    uint rh = row * pc.NH + h;   // counter and partials index

    // The first RB rows of this split's C tile, k and q are loaded before anything else: the loads are in flight while
    // the gates and q̂·n are computed (a workgroup reduction), which hides one memory round trip of this
    // latency-bound kernel. RB rows at a time: all 4·RB loads of C are issued before the first store (the compiler
    // cannot move loads of S across stores to S), which keeps enough bytes in flight to stream C.
    const uint RB = 8u;
    uint a0 = split * pc.rowsPerSplit;
    uint a1 = min(pc.dqk, a0 + pc.rowsPerSplit);
    uint cbase = rs + h * pc.dqk * pc.dv + col0 + lx;
    bool colOk[4];
    [[unroll]] for (uint c = 0u; c < 4u; c++) colOk[c] = col0 + lx + 64u * c < pc.dv;
    float cv[RB][4];
    float kr[RB], qr[RB];
    [[unroll]] for (uint r = 0u; r < RB; r++)
    {
        uint ar = a0 + ly + 4u * r;
        bool ok = ar < a1;
        kr[r] = ok ? QKV[ko + ar] : 0.0;
        qr[r] = ok ? QKV[qo + ar] : 0.0;
        [[unroll]] for (uint c = 0u; c < 4u; c++) cv[r][c] = ok && colOk[c] ? S[cbase + ar * pc.dv + 64u * c] : 0.0;
    }
    float vj[4];
    [[unroll]] for (uint c = 0u; c < 4u; c++)
    {
        uint j = col0 + lx + 64u * c;
        vj[c] = j < pc.dv ? QKV[vo + j] : 0.0;
    }
    // fused head norm: o and the norm weight of the columns this invocation finishes if it is in the last workgroup
    float ov[4], nwv[4];
    if (pc.fuse != 0u)
        [[unroll]] for (uint i = 0u; i < 4u; i++)
        {
            uint j = tid + 256u * i;
            ov[i] = j < pc.dv ? QKV[oOff + h * pc.dv + j] : 0.0;
            nwv[i] = j < pc.dv ? NW[h * pc.dv + j] : 0.0;
        }

    float ig = soft_cap(G[gOff + h], pc.cap);
    float fg = soft_cap(G[gOff + pc.NH + h], pc.cap);
    float mOld = S[pc.mOff + rs + h];
    float lf = log_sigmoid(fg);
    float mNew = max(lf + mOld, ig);
    float fa = exp(lf + mOld - mNew);
    float ia = exp(ig - mNew);
    float scale = 1.0 / sqrt(float(pc.dqk));

    // q̂ · n_new over all of dqk (n_new kept for the last workgroup when dqk <= 256: one value per invocation)
    float qn = 0.0, nNew = 0.0;
    for (uint a = tid; a < pc.dqk; a += 256u)
    {
        nNew = fa * S[no + a] + ia * QKV[ko + a];
        qn += (QKV[qo + a] * scale) * nNew;
    }
    qn = wg_sum(qn);
    float inv = 1.0 / (max(abs(qn), exp(-mNew)) + pc.eps);

    // C update and q̂ᵀC over this split's rows
    float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
    for (uint a = a0 + ly; a < a1; a += 4u * RB)
    {
        [[unroll]] for (uint r = 0u; r < RB; r++)
        {
            uint ar = a + 4u * r;
            if (ar >= a1) continue;
            float ka = ia * kr[r], qa = qr[r] * scale;
            [[unroll]] for (uint c = 0u; c < 4u; c++)
            {
                if (!colOk[c]) continue;
                float v = fa * cv[r][c] + ka * vj[c];
                S[cbase + ar * pc.dv + 64u * c] = v;
                acc[c] += qa * v;
            }
        }
        uint an = a + 4u * RB;
        if (an < a1)
            [[unroll]] for (uint r = 0u; r < RB; r++)
            {
                uint ar = an + 4u * r;
                bool ok = ar < a1;
                kr[r] = ok ? QKV[ko + ar] : 0.0;
                qr[r] = ok ? QKV[qo + ar] : 0.0;
                [[unroll]] for (uint c = 0u; c < 4u; c++) cv[r][c] = ok && colOk[c] ? S[cbase + ar * pc.dv + 64u * c] : 0.0;
            }
    }
    [[unroll]] for (uint c = 0u; c < 4u; c++) part[ly][lx + 64u * c] = acc[c];
    barrier();
    if (ly == 0u)
    {
        [[unroll]] for (uint c = 0u; c < 4u; c++)
        {
            uint col = lx + 64u * c;
            uint j = col0 + col;
            if (j >= pc.dv) continue;
            float s = part[0][col] + part[1][col] + part[2][col] + part[3][col];
            if (pc.splits == 1u && pc.fuse == 0u) { if (pc.writeH != 0u) H[hOff + h * pc.dv + j] = s * inv; }
            else PART[(rh * pc.splits + split) * pc.dv + j] = s;
        }
    }

    // the last workgroup of the head: h from the partials, n and m
    barrier();
    if (tid == 0u)
    {
        memoryBarrierBuffer();
        uint done = atomicAdd(CNT[pc.cntOff + rh], 1u);
        isLast = done == gl_NumWorkGroups.x * pc.splits - 1u;
    }
    barrier();
    if (isLast)
    {
        memoryBarrierBuffer();
        if (pc.splits > 1u || pc.fuse != 0u)
        {
            float hs = 0.0;
            for (uint j = tid; j < pc.dv; j += 256u)
            {
                float s = 0.0;
                for (uint p = 0u; p < pc.splits; p++) s += PART[(rh * pc.splits + p) * pc.dv + j];
                float hv = s * inv;
                if (pc.writeH != 0u) H[hOff + h * pc.dv + j] = hv;
                if (pc.fuse != 0u) { hsh[j] = hv; hs += hv; }
            }
            if (pc.fuse != 0u)
            {
                // as headnorm.comp: two-pass mean and variance over the head, then (h − mean)·rsqrt(var + eps)·w·σ(o)
                float mean = wg_sum(hs) / float(pc.dv);
                float q = 0.0;
                for (uint j = tid; j < pc.dv; j += 256u) { float d = hsh[j] - mean; q += d * d; }
                float var = wg_sum(q) / float(pc.dv);
                float rinv = 1.0 / sqrt(var + pc.normEps);
                uint base = h * pc.dv;
                [[unroll]] for (uint i = 0u; i < 4u; i++)
                {
                    uint j = tid + 256u * i;
                    if (j < pc.dv) GD[gdOff + base + j] = (hsh[j] - mean) * rinv * nwv[i] * sigmoid(ov[i]);
                }
            }
        }
        if (pc.dqk <= 256u) { if (tid < pc.dqk) S[no + tid] = nNew; }
        else for (uint a = tid; a < pc.dqk; a += 256u) S[no + a] = fa * S[no + a] + ia * QKV[ko + a];
        if (tid == 0u)
        {
            S[pc.mOff + rs + h] = mNew;
            atomicExchange(CNT[pc.cntOff + rh], 0u);
        }
    }
}
