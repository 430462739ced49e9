#version 450
// Matrix × vector, Q8_0/Q4_0 with int8 activations and integer dot products (see matvec.glsl).
#define INT_DOT 1
#include "matvec.glsl"
