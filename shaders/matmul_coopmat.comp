#version 450
// dst[t, row] (+)= Σ_k x[t, k] · W[row, k] (+ bias[row]) for many tokens (prefill) on tensor cores:
// VK_NV_cooperative_matrix, 16×16×16 tiles, f16 operands, f32 accumulation. Selected by the host only where the
// device lists that shape (GemmSelection); elsewhere matmul.comp (fp32 SIMT) runs.
// Workgroup: 256 invocations = 8 subgroups of 32, a tile of 64 tokens × 128 weight rows, K in steps of 32. Subgroup
// (wm, wn) = (id / 4, id % 4) owns 32 tokens × 32 rows = 2 × 2 accumulator tiles. Every step, x (f32) and the weights
// (any type, dequantized in registers as in matmul.comp) are converted to f16 and stored in shared memory; the next
// step's global loads are issued before this step's matrix products. The result goes through a per-subgroup 16 × 16
// staging tile in shared memory for the bounds checks, bias and accumulation.
#extension GL_EXT_control_flow_attributes : enable
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_shader_subgroup_basic : require

#define EMULATE_COOPMAT 0
#include "matmul_coopmat.glsl"
