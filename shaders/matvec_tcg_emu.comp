#version 450
// Test build of matvec_tcg.comp for devices without cooperative matrices (see EMULATE_COOPMAT in matvec_tcg.glsl): the
// same rounds, loads, dequantization, shared layout and epilogue, so lavapipe checks everything but the matrix
// instructions themselves.
#extension GL_EXT_control_flow_attributes : enable
#define EMULATE_COOPMAT 1
#include "matvec_tcg.glsl"
