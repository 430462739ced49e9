#version 450
// A product of a few tokens on tensor cores, shaped like a matvec (see matvec_tcg.glsl): VK_NV_cooperative_matrix,
// 16×16×16 f16 products into f32.
#extension GL_EXT_control_flow_attributes : enable
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_shader_subgroup_basic : require

#define EMULATE_COOPMAT 0
#include "matvec_tcg.glsl"
