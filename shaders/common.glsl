// Shared definitions for every xlstm-run compute shader. Each .comp is compiled twice (see the Vulkan csproj):
// USE_SUBGROUPS=1 (reductions through subgroupAdd & co.) and USE_SUBGROUPS=0 (shared-memory trees only), for
// devices without subgroup arithmetic. Shaders only use 32-bit storage types: 16-bit and 8-bit weights are loaded as
// uvec4 (16 bytes per load) and unpacked in registers, so no 8/16-bit storage feature is needed.
#extension GL_EXT_control_flow_attributes : enable
#if USE_SUBGROUPS
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

// x · tanh-style soft cap, safe for large |x| (tanh saturates to ±1 far before |x| = 10 in float32).
float soft_cap(float x, float cap)
{
    float y = x / cap;
    return cap * (abs(y) < 10.0 ? tanh(y) : sign(y));
}

// log(sigmoid(x)) = min(x, 0) - log(1 + exp(-|x|)), as the CPU engine computes it.
float log_sigmoid(float x)
{
    return min(x, 0.0) - log(1.0 + exp(-abs(x)));
}

float sigmoid(float x)
{
    return 1.0 / (1.0 + exp(-x));
}
