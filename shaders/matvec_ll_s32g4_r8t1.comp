#version 450
// Q8_0/Q4_0 matvec with int8 activations in the lane-leaves layout (matvec.glsl, leaf_group): subgroups of 32, 4 leaves
// per lane (a one-token workgroup of 128), 8 rows × 1 tokens per subgroup.
#define INT_DOT 1
#define LL_SG 32
#define LL_G 4
#define LL_R 8
#define LL_T 1
#include "matvec.glsl"
