#version 450
// D = S, 16 bytes per load and store, grid-stride: the bandwidth probe's shader copy (what a compute kernel streams).
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Sb { uvec4 S[]; };
layout(std430, binding = 1) writeonly buffer Db { uvec4 D[]; };
layout(push_constant) uniform PC { uint n, stride; } pc;

void main()
{
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += pc.stride) D[i] = S[i];
}
