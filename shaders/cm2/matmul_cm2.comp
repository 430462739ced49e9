#version 450
// dst[t, row] (+)= Σ_k x[t, k] · W[row, k] (+ bias[row]) for many tokens (prefill) with workgroup-scope cooperative
// matrices (VK_NV_cooperative_matrix2): the driver tiles each BM × BN × BK product over the workgroup's subgroups and
// stages the operands itself, straight from the tensors (tensor addressing, no shared-memory code here).
// Operands are f16 prepared by the host (convert_f16.comp): x [nTok, xStride] and the weight [rows, wStride] (F16 as
// stored, other types dequantized), both with rows zero-padded to 8 halves; f32 accumulation. Loads outside the tensors
// read zero (clamp mode constant), stores outside them are dropped.
// Not compiled by the build (Debian's glslang has no GL_NV_cooperative_matrix2): scripts/build-cm2-spirv.sh writes
// shaders/prebuilt/matmul_cm2.spv with a newer glslang, and a test checks that the SPIR-V was made from this file.
#pragma use_vulkan_memory_model
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_EXT_shader_explicit_arithmetic_types : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint BM = 128u;   // tokens per workgroup
layout(constant_id = 2) const uint BN = 128u;   // weight rows per workgroup
layout(constant_id = 3) const uint BK = 32u;    // K per product

layout(std430, binding = 0) readonly buffer Wb { float16_t W[]; };
layout(std430, binding = 1) readonly buffer Xb { float16_t X[]; };
layout(std430, binding = 2) buffer Db { float D[]; };
layout(std430, binding = 3) readonly buffer Bb { float B[]; };

layout(push_constant) uniform PC
{
    uint rows, cols, wStride, xStride, dOff, dStride, bOff, flags, nTok;   // strides in elements; flags: 1 accumulate, 2 bias
} pc;

uint g_n0;

float add_bias(const in uint32_t r, const in uint32_t c, const in float v)
{
    return v + B[pc.bOff + min(g_n0 + c, pc.rows - 1u)];   // columns past the last row are dropped at the store
}

void main()
{
    uint n0 = gl_WorkGroupID.x * BN, t0 = gl_WorkGroupID.y * BM;
    g_n0 = n0;

    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> lx = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    lx = setTensorLayoutDimensionNV(lx, pc.nTok, pc.cols);
    lx = setTensorLayoutStrideNV(lx, pc.xStride, 1);
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> lw = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    lw = setTensorLayoutDimensionNV(lw, pc.rows, pc.cols);
    lw = setTensorLayoutStrideNV(lw, pc.wStride, 1);
    tensorViewNV<2, false, 1, 0> transposed = createTensorViewNV(2, false, 1, 0);

    coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator> acc = coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator>(0.0);
    for (uint k = 0u; k < pc.cols; k += BK)
    {
        coopmat<float16_t, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseA> a;
        coopMatLoadTensorNV(a, X, 0, sliceTensorLayoutNV(lx, t0, BM, k, BK));
        coopmat<float16_t, gl_ScopeWorkgroup, BK, BN, gl_MatrixUseB> b;
        coopMatLoadTensorNV(b, W, 0, sliceTensorLayoutNV(lw, n0, BN, k, BK), transposed);
        acc = coopMatMulAdd(a, b, acc);
    }

    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> ld = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    ld = setTensorLayoutDimensionNV(ld, pc.nTok, pc.rows);
    ld = setTensorLayoutStrideNV(ld, pc.dStride, 1);
    if ((pc.flags & 1u) != 0u)
    {
        coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator> old;
        coopMatLoadTensorNV(old, D, pc.dOff, sliceTensorLayoutNV(ld, t0, BM, n0, BN));
        acc = acc + old;
    }
    if ((pc.flags & 2u) != 0u) coopMatPerElementNV(acc, acc, add_bias);
    coopMatStoreTensorNV(acc, D, pc.dOff, sliceTensorLayoutNV(ld, t0, BM, n0, BN));
}
