#version 450
// Test build of matmul_coopmat.comp for devices without cooperative matrices (see EMULATE_COOPMAT in
// matmul_coopmat.glsl): the same tiles, loaders, shared-memory layout and epilogue, so lavapipe checks everything but
// the matrix instructions themselves.
#extension GL_EXT_control_flow_attributes : enable
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define EMULATE_COOPMAT 1
#include "matmul_coopmat.glsl"
