// Workgroup-wide reductions. Every invocation of the workgroup must call them (uniform control flow), and the
// workgroup must be at most 1024 invocations (a power of two for the shared-memory variant); the host ensures both.
#define WG_INVOCATIONS (gl_WorkGroupSize.x * gl_WorkGroupSize.y * gl_WorkGroupSize.z)
#if USE_SUBGROUPS
shared float red_buf[128];   // one slot per subgroup (subgroups of >= 8 invocations)

float wg_sum(float v)
{
    float s = subgroupAdd(v);
    if (subgroupElect()) red_buf[gl_SubgroupID] = s;
    barrier();
    float t = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; i++) t += red_buf[i];
    barrier();
    return t;
}
#else
shared float red_buf[1024];

float wg_sum(float v)
{
    uint i = gl_LocalInvocationIndex;
    red_buf[i] = v;
    barrier();
    for (uint s = WG_INVOCATIONS / 2u; s > 0u; s >>= 1u)
    {
        if (i < s) red_buf[i] += red_buf[i + s];
        barrier();
    }
    float t = red_buf[0];
    barrier();
    return t;
}
#endif
