#version 450
// Test build of matvec_tc.comp for devices without cooperative matrices: the same tiles, order and epilogue, the block's
// integer sums formed in float by each invocation (exact, as the tensor cores' are).
#define INT_DOT 1
#define TC_LAYOUT 1
#define TC_EMULATE 1
#include "matvec.glsl"
