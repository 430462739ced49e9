#version 450
// matmul_coopmat.comp with float16_t shared tiles instead of uvec4 (SH_KIND 1; XLSTM_VK_GEMM_SHARED=1 selects it):
// the cooperative-matrix loads from shared memory may take a different path per element type.
#extension GL_EXT_control_flow_attributes : enable
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_shader_subgroup_basic : require

#define EMULATE_COOPMAT 0
#define SH_KIND 1
#include "matmul_coopmat.glsl"
