#version 450
// Diagnosis (`bench --op alu`): the rate of packed 4×8-bit integer dot products (OpSDotKHR, what the int8 matvecs run
// 8 of per block, row and token) or of float FMAs (FLOAT = 1) with nothing else in the way. Every invocation runs
// `iters` rounds of 8 independent accumulations in registers; one operand changes every round (one add per round) so
// that nothing is hoisted; the sums are stored so that nothing is optimised away.
#extension GL_EXT_control_flow_attributes : enable
#extension GL_EXT_spirv_intrinsics : require
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint FLOAT = 0u;
layout(std430, binding = 0) writeonly buffer Db { uint D[]; };
layout(push_constant) uniform PC { uint iters; uint seed; } pc;

spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4x8(uint a, uint b, spirv_literal int packedFormat);

void main()
{
    uint gid = gl_GlobalInvocationID.x;
    uint a = pc.seed ^ gid;
    uint sum = 0u;
    if (FLOAT != 0u)
    {
        float fa = float(a & 0xFFu) * 0.001, acc[8], fb[8];
        [[unroll]] for (uint j = 0u; j < 8u; j++) { acc[j] = 0.0; fb[j] = 0.5 + 0.01 * float(j); }
        for (uint i = 0u; i < pc.iters; i++)
        {
            [[unroll]] for (uint j = 0u; j < 8u; j++) acc[j] = fma(fa, fb[j], acc[j]);
            fa += 1e-7;
        }
        [[unroll]] for (uint j = 0u; j < 8u; j++) sum += floatBitsToUint(acc[j]);
    }
    else
    {
        int acc[8];
        uint b[8];
        [[unroll]] for (uint j = 0u; j < 8u; j++) { acc[j] = 0; b[j] = a * (2654435761u + 2u * j); }
        for (uint i = 0u; i < pc.iters; i++)
        {
            [[unroll]] for (uint j = 0u; j < 8u; j++) acc[j] += sdot4x8(a, b[j], 0);
            a += 0x01010101u;
        }
        [[unroll]] for (uint j = 0u; j < 8u; j++) sum += uint(acc[j]);
    }
    D[gid] = sum;
}
