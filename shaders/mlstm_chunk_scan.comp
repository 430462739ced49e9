#version 450
// Chunk kernel 3 of 4 (see mlstm_chunk.glsl): the inter-chunk recurrence for 256 elements of one head's state per
// workgroup (C elements; the head's first workgroup also carries n and records m). Sequential over the chunks, one
// element per invocation: every ΔC_c slot becomes the state entering chunk c, the final state is written back.
#include "common.glsl"
#include "mlstm_chunk.glsl"
layout(local_size_x = 256) in;

layout(std430, binding = 0) buffer Sb { float S[]; };      // the block's state: C [NH, dqk, dv], n [NH, dqk], m [NH]
layout(std430, binding = 1) buffer Xb { float SCR[]; };

layout(push_constant) uniform PC
{
    uint nc, NH, dqk, dv, nOffS, mOffS, recOff, nOff, cOff;
} pc;

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint h = gl_WorkGroupID.y;
    uint per = pc.dqk * pc.dv;
    uint e = gl_WorkGroupID.x * 256u + tid;
    bool isC = e < per;
    bool isN = gl_WorkGroupID.x == 0u && tid < pc.dqk;   // dqk <= 256 (checked by the host)
    float m = S[pc.mOffS + h];
    float C = isC ? S[h * per + e] : 0.0;
    float n = isN ? S[pc.nOffS + h * pc.dqk + tid] : 0.0;
    for (uint c = 0u; c < pc.nc; c++)
    {
        uint ch = c * pc.NH + h;
        uint rec = pc.recOff + ch * REC_SIZE;
        float g = SCR[rec + REC_G], mloc = SCR[rec + REC_MLOC];
        float mNew = max(g + m, mloc);
        float decay = exp(g + m - mNew), wf = exp(mloc - mNew);
        if (isC)
        {
            uint o = pc.cOff + ch * per + e;
            float d = SCR[o];
            SCR[o] = C;
            C = decay * C + wf * d;
        }
        if (isN)
        {
            uint o = pc.nOff + ch * pc.dqk + tid;
            float d = SCR[o];
            SCR[o] = n;
            n = decay * n + wf * d;
        }
        if (gl_WorkGroupID.x == 0u && tid == 0u) SCR[rec + REC_MENTER] = m;
        m = mNew;
    }
    if (isC) S[h * per + e] = C;
    if (isN) S[pc.nOffS + h * pc.dqk + tid] = n;
    // the final m is read by every workgroup of this dispatch: it goes to the state in the out kernel
    if (gl_WorkGroupID.x == 0u && tid == 0u) SCR[pc.recOff + (pc.nc * pc.NH + h) * REC_SIZE + REC_MENTER] = m;
}
