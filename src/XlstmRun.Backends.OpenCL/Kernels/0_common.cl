// Shared helpers of the xlstm-run OpenCL kernels (OpenCL C 1.2, no half arithmetic: halves are only loaded with vload_half).
// Built with -D RED_LS=<power of two work-group size of the reductions> -D TILE=<tile edge> -D TILE_K=32.
// Weights arrive as raw GGUF row bytes; the element loaders below decode one element, the block-dot helpers one "chunk"
// (1 element for float types, one 32-element block for Q8_0/Q4_0) dotted with float activations.

#ifndef RED_LS
#define RED_LS 64
#endif
#ifndef TILE
#define TILE 16
#endif
#ifndef TILE_K
#define TILE_K 32
#endif

// ---- element loaders: element k of a row starting at byte pointer `row` -------------------------------------------
inline float ld_f32(__global const uchar* row, int k) { return ((__global const float*)row)[k]; }
inline float ld_f16(__global const uchar* row, int k) { return vload_half(k, (__global const half*)row); }
inline float ld_bf16(__global const uchar* row, int k) { return as_float(((uint)((__global const ushort*)row)[k]) << 16); }
inline float ld_q8_0(__global const uchar* row, int k)
{
    __global const uchar* b = row + (k >> 5) * 34;
    float d = vload_half(0, (__global const half*)b);
    return (float)((__global const char*)b)[2 + (k & 31)] * d;
}
inline float ld_q4_0(__global const uchar* row, int k)
{
    __global const uchar* b = row + (k >> 5) * 18;
    float d = vload_half(0, (__global const half*)b);
    int j = k & 31;
    uint q = b[2 + (j & 15)];
    int nib = j < 16 ? (int)(q & 15u) : (int)(q >> 4);
    return (float)(nib - 8) * d;
}

// ---- 4-element loaders: elements k..k+3 of a row, k a multiple of 4 (a 4-group never crosses a 32-element block) ----
inline float4 ld4_f32(__global const uchar* row, int k) { return vload4(0, (__global const float*)row + k); }
inline float4 ld4_f16(__global const uchar* row, int k) { return vload_half4(0, (__global const half*)row + k); }
inline float4 ld4_bf16(__global const uchar* row, int k)
{
    ushort4 u = vload4(0, (__global const ushort*)row + k);
    return as_float4(convert_uint4(u) << 16);
}
inline float4 ld4_q8_0(__global const uchar* row, int k)
{
    __global const uchar* b = row + (k >> 5) * 34;
    float d = vload_half(0, (__global const half*)b);
    char4 q = vload4(0, (__global const char*)b + 2 + (k & 31));
    return convert_float4(q) * d;
}
inline float4 ld4_q4_0(__global const uchar* row, int k)
{
    __global const uchar* b = row + (k >> 5) * 18;
    float d = vload_half(0, (__global const half*)b);
    int j = k & 31;
    uint4 q = convert_uint4(vload4(0, b + 2 + (j & 15)));
    int4 n = j < 16 ? convert_int4(q & (uint4)(15u)) : convert_int4(q >> (uint4)(4u));
    return convert_float4(n - 8) * d;
}

// ---- chunk dots: QK_<type> elements per chunk; dot_<type>(row, c, x) = Σ_{k in chunk c} w[k]·x[k] --------------------
#define QK_f32 1
#define QK_f16 1
#define QK_bf16 1
#define QK_q8_0 32
#define QK_q4_0 32
inline float dot_f32(__global const uchar* row, int c, __global const float* x) { return ld_f32(row, c) * x[c]; }
inline float dot_f16(__global const uchar* row, int c, __global const float* x) { return ld_f16(row, c) * x[c]; }
inline float dot_bf16(__global const uchar* row, int c, __global const float* x) { return ld_bf16(row, c) * x[c]; }
inline float dot_q8_0(__global const uchar* row, int c, __global const float* x)
{
    __global const uchar* b = row + c * 34;
    float d = vload_half(0, (__global const half*)b);
    __global const char* q = (__global const char*)(b + 2);
    x += c * 32;
    float s = 0.0f;
    for (int j = 0; j < 32; j++) s += (float)q[j] * x[j];
    return s * d;
}
inline float dot_q4_0(__global const uchar* row, int c, __global const float* x)
{
    __global const uchar* b = row + c * 18;
    float d = vload_half(0, (__global const half*)b);
    x += c * 32;
    float s = 0.0f;
    for (int j = 0; j < 16; j++)
    {
        uint q = b[2 + j];
        s += (float)((int)(q & 15u) - 8) * x[j] + (float)((int)(q >> 4) - 8) * x[j + 16];
    }
    return s * d;
}

// ---- work-group reductions over dimension 0 (local size RED_LS, a power of two). Every work-item must call them. ----
inline float wg_sum(__local float* red, float v)
{
    int lid = get_local_id(0);
    barrier(CLK_LOCAL_MEM_FENCE);
    red[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = RED_LS / 2; s > 0; s >>= 1)
    {
        if (lid < s) red[lid] += red[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return red[0];
}

inline float log_sigmoid(float x) { return fmin(x, 0.0f) - log(1.0f + exp(-fabs(x))); }
inline float soft_cap(float x, float cap) { return cap * tanh(x / cap); }
