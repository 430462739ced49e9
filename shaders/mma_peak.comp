#version 450
// Diagnosis (`bench --op mma`): the tensor cores' rate through GL_NV_cooperative_matrix with nothing else in the way.
// Every subgroup runs `iters` rounds of 8 independent 16×16×16 f16 products into f32 accumulators held in registers
// (no memory traffic in the loop), then stores them so that nothing is optimised away. (glslang 11.13 crashes on the
// addition of two cooperative matrices.)
#extension GL_EXT_control_flow_attributes : enable
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_shader_subgroup_basic : require
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer Db { float D[]; };
layout(push_constant) uniform PC { uint iters; float seed; } pc;

void main()
{
    fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> a = fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>(float16_t(pc.seed));
    fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> b = fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>(float16_t(0.5 * pc.seed));
    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> acc[8];
    [[unroll]] for (uint j = 0u; j < 8u; j++) acc[j] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);
    for (uint i = 0u; i < pc.iters; i++)
        [[unroll]] for (uint j = 0u; j < 8u; j++) acc[j] = coopMatMulAddNV(a, b, acc[j]);
    uint base = (gl_WorkGroupID.x * 8u + gl_LocalInvocationID.x / 32u) * 2048u;
    [[unroll]] for (uint j = 0u; j < 8u; j++) coopMatStoreNV(acc[j], D, base + 256u * j, 16u, false);
}
