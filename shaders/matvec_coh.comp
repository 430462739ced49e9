#version 450
// Matrix × vector with float activations, x read around L1 (see matvec.glsl, chain.glsl).
#define INT_DOT 0
#define X_COHERENT 1
#include "matvec.glsl"
