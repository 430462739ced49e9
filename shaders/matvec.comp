#version 450
// Matrix × vector with float activations (see matvec.glsl).
#define INT_DOT 0
#include "matvec.glsl"
