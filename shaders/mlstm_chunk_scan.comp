#version 450
// Chunk kernel 3 of 4 (see mlstm_chunk.glsl): the inter-chunk recurrence for 1024 elements of one head's state per
// workgroup, four consecutive elements per invocation (16-byte loads and stores when the head's state size is a
// multiple of 4; the head's first workgroup also carries n and records m). Sequential over the chunks: every ΔC_c slot
// becomes the state entering chunk c, the final state is written back. The next chunk's ΔC is loaded before the current
// one is stored, so one memory latency per chunk is hidden.
#include "common.glsl"
#include "mlstm_chunk.glsl"
layout(local_size_x = 256) in;

layout(std430, binding = 0) buffer Sb { float S[]; };      // the block's state: C [NH, dqk, dv], n [NH, dqk], m [NH]
layout(std430, binding = 0) buffer S4b { vec4 S4[]; };
layout(std430, binding = 1) buffer Xb { float SCR[]; };
layout(std430, binding = 1) buffer X4b { vec4 SCR4[]; };

layout(push_constant) uniform PC
{
    uint nc, NH, dqk, dv, nOffS, mOffS, recOff, nOff, cOff;
} pc;

vec4 load4(bool v4, uint o, uint e, uint per)    // SCR[o .. o+3], elements e.. of the head (zeros past per)
{
    if (v4) return SCR4[o >> 2];
    vec4 r;
    [[unroll]] for (uint k = 0u; k < 4u; k++) r[k] = e + k < per ? SCR[o + k] : 0.0;
    return r;
}

void store4(bool v4, uint o, uint e, uint per, vec4 x)
{
    if (v4) { SCR4[o >> 2] = x; return; }
    [[unroll]] for (uint k = 0u; k < 4u; k++) if (e + k < per) SCR[o + k] = x[k];
}

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint h = gl_WorkGroupID.y;
    uint per = pc.dqk * pc.dv;
    bool v4 = (per & 3u) == 0u;
    uint e = (gl_WorkGroupID.x * 256u + tid) * 4u;
    bool isC = e < per;
    bool isN = gl_WorkGroupID.x == 0u && tid < pc.dqk;   // dqk <= 256 (checked by the host)
    float m = S[pc.mOffS + h];
    vec4 C = vec4(0.0);
    if (isC)
    {
        uint so = h * per + e;
        if (v4) C = S4[so >> 2];
        else [[unroll]] for (uint k = 0u; k < 4u; k++) C[k] = e + k < per ? S[so + k] : 0.0;
    }
    float n = isN ? S[pc.nOffS + h * pc.dqk + tid] : 0.0;
    vec4 dNext = isC ? load4(v4, pc.cOff + h * per + e, e, per) : vec4(0.0);
    float nNext = isN ? SCR[pc.nOff + h * pc.dqk + tid] : 0.0;
    for (uint c = 0u; c < pc.nc; c++)
    {
        uint ch = c * pc.NH + h;
        uint rec = pc.recOff + ch * REC_SIZE;
        float g = SCR[rec + REC_G], mloc = SCR[rec + REC_MLOC];
        vec4 d = dNext;
        float dn = nNext;
        if (c + 1u < pc.nc)
        {
            uint chn = ch + pc.NH;
            if (isC) dNext = load4(v4, pc.cOff + chn * per + e, e, per);
            if (isN) nNext = SCR[pc.nOff + chn * pc.dqk + tid];
        }
        float mNew = max(g + m, mloc);
        float decay = exp(g + m - mNew), wf = exp(mloc - mNew);
        if (isC)
        {
            store4(v4, pc.cOff + ch * per + e, e, per, C);
            C = decay * C + wf * d;
        }
        if (isN)
        {
            SCR[pc.nOff + ch * pc.dqk + tid] = n;
            n = decay * n + wf * dn;
        }
        if (gl_WorkGroupID.x == 0u && tid == 0u) SCR[rec + REC_MENTER] = m;
        m = mNew;
    }
    if (isC)
    {
        uint so = h * per + e;
        if (v4) S4[so >> 2] = C;
        else [[unroll]] for (uint k = 0u; k < 4u; k++) if (e + k < per) S[so + k] = C[k];
    }
    if (isN) S[pc.nOffS + h * pc.dqk + tid] = n;
    // the final m is read by every workgroup of this dispatch: it goes to the state in the out kernel
    if (gl_WorkGroupID.x == 0u && tid == 0u) SCR[pc.recOff + (pc.nc * pc.NH + h) * REC_SIZE + REC_MENTER] = m;
}
