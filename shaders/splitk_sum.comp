#version 450
// The sum of a split-K product (matmul_coopmat.comp with SPLITK): D[t, r] (+)= Σ_z P[z, t, r] (+ bias[r]), the partials
// added in order of z, then the bias, then (accumulating) the old value: the same order for every token count.
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Pb { float P[]; };
layout(std430, binding = 1) buffer Db { float D[]; };
layout(std430, binding = 2) readonly buffer Bb { float B[]; };

layout(push_constant) uniform PC { uint rows, nTok, segs, partStride, pStride, dOff, dStride, bOff, flags; } pc;

void main()
{
    uint r = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (r >= pc.rows) return;
    uint p = t * pc.pStride + r;
    float v = P[p];
    for (uint z = 1u; z < pc.segs; z++) v += P[p + z * pc.partStride];
    if ((pc.flags & 2u) != 0u) v += B[pc.bOff + r];
    uint o = pc.dOff + t * pc.dStride + r;
    if ((pc.flags & 1u) != 0u) v += D[o];
    D[o] = v;
}
