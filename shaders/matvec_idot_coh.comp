#version 450
// Matrix × vector, Q8_0/Q4_0 with int8 activations, x read around L1 (see matvec.glsl, chain.glsl).
#define INT_DOT 1
#define X_COHERENT 1
#include "matvec.glsl"
