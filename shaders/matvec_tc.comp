#version 450
// Q8_0/Q4_0 matvec over several tokens on tensor cores (GL_NV_cooperative_matrix), giving every token the one-token int8
// matvec's bits (matvec.glsl, TC_LAYOUT).
#extension GL_KHR_memory_scope_semantics : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define INT_DOT 1
#define TC_LAYOUT 1
#define TC_EMULATE 0
#include "matvec.glsl"
