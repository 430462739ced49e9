// Embedding, matrix-vector and tiled matrix-matrix products for every weight type.
// A weight part is `nrows` rows of `rowBytes` bytes (a big weight is split by rows into parts, each its own buffer);
// its first row is row `row0` of the whole weight. Activations are float32 row-major with row stride = columns.

// dst[t, k] = table[ids[t], k] for the tokens whose id falls in this part.
#define EMBED(T) \
__kernel void embed_##T(__global const uchar* W, int rowBytes, int row0, int nrows, int K, \
                        __global const int* ids, __global float* y, int yoff, int ntok) \
{ \
    int k = get_global_id(0), t = get_global_id(1); \
    if (k >= K || t >= ntok) return; \
    int id = ids[t] - row0; \
    if (id < 0 || id >= nrows) return; \
    y[yoff + t * K + k] = ld_##T(W + (long)id * rowBytes, k); \
}

// One token: one work-group of RED_LS items per output row (global = nrows·RED_LS), strided partial dots + tree sum.
#define MATVEC(T) \
__kernel void matvec_##T(__global const uchar* W, int rowBytes, int K, int nrows, \
                         __global const float* x, int xoff, __global float* y, int yoff, int ycol0, \
                         __global const float* bias, int hasBias, int accumulate) \
{ \
    __local float red[RED_LS]; \
    int r = get_group_id(0), lid = get_local_id(0); \
    __global const uchar* row = W + (long)r * rowBytes; \
    __global const float* xr = x + xoff; \
    float acc = 0.0f; \
    int nc = K / QK_##T; \
    for (int c = lid; c < nc; c += RED_LS) acc += dot_##T(row, c, xr); \
    float v = wg_sum(red, acc); \
    if (lid == 0 && r < nrows) \
    { \
        if (hasBias) v += bias[ycol0 + r]; \
        __global float* o = y + yoff + ycol0 + r; \
        *o = accumulate ? *o + v : v; \
    } \
}

// Many tokens: TILE×TILE tiles of (output row, token), K walked in steps of TILE_K through local memory.
// global = (roundup(nrows, TILE), roundup(ntok, TILE)), local = (TILE, TILE). y row stride = ystride.
#define MATMUL(T) \
__kernel void matmul_##T(__global const uchar* W, int rowBytes, int K, int nrows, \
                         __global const float* x, int xoff, int ntok, __global float* y, int yoff, int ystride, int ycol0, \
                         __global const float* bias, int hasBias, int accumulate) \
{ \
    __local float Ws[TILE][TILE_K + 1]; \
    __local float Xs[TILE][TILE_K + 1]; \
    int lr = get_local_id(0), lt = get_local_id(1); \
    int gr0 = get_group_id(0) * TILE, gt0 = get_group_id(1) * TILE; \
    int lin = lt * TILE + lr; \
    float acc = 0.0f; \
    for (int k0 = 0; k0 < K; k0 += TILE_K) \
    { \
        for (int e = lin; e < TILE * TILE_K; e += TILE * TILE) \
        { \
            int rr = e / TILE_K, kk = e % TILE_K, gk = k0 + kk; \
            int gr = gr0 + rr, gt = gt0 + rr; \
            Ws[rr][kk] = (gr < nrows && gk < K) ? ld_##T(W + (long)gr * rowBytes, gk) : 0.0f; \
            Xs[rr][kk] = (gt < ntok && gk < K) ? x[xoff + gt * K + gk] : 0.0f; \
        } \
        barrier(CLK_LOCAL_MEM_FENCE); \
        /* blocked summation: each tile of TILE_K products in its own partial, then added (a single running sum over \
           K let float32 rounding grow with K; docs/NOTES.md "Conformance") */ \
        float part = 0.0f; \
        for (int kk = 0; kk < TILE_K; kk++) part += Ws[lr][kk] * Xs[lt][kk]; \
        acc += part; \
        barrier(CLK_LOCAL_MEM_FENCE); \
    } \
    int r = gr0 + lr, t = gt0 + lt; \
    if (r < nrows && t < ntok) \
    { \
        float v = acc; \
        if (hasBias) v += bias[ycol0 + r]; \
        __global float* o = y + yoff + t * ystride + ycol0 + r; \
        *o = accumulate ? *o + v : v; \
    } \
}

// Register-blocked variant without local memory or barriers (the default on CPU devices such as PoCL, where work-items
// run as loops and barriers are expensive): each work-item computes RB = 4 output rows × TB tokens with float4 partial
// sums over K (plus a scalar tail when K is not a multiple of 4). global = (ceil(nrows/4), ceil(ntok/TB)), any local size.
#define MATMUL_RB(T, NAME, TB) \
__kernel void NAME##_##T(__global const uchar* W, int rowBytes, int K, int nrows, \
                         __global const float* x, int xoff, int ntok, __global float* y, int yoff, int ystride, int ycol0, \
                         __global const float* bias, int hasBias, int accumulate) \
{ \
    int r0 = get_global_id(0) * 4, t0 = get_global_id(1) * TB; \
    if (r0 >= nrows || t0 >= ntok) return; \
    __global const uchar* rp[4]; \
    __global const float* xp[TB]; \
    for (int i = 0; i < 4; i++) rp[i] = W + (long)min(r0 + i, nrows - 1) * rowBytes; \
    for (int j = 0; j < TB; j++) xp[j] = x + xoff + (long)min(t0 + j, ntok - 1) * K; \
    float4 acc[4][TB]; \
    for (int i = 0; i < 4; i++) for (int j = 0; j < TB; j++) acc[i][j] = (float4)(0.0f); \
    int K4 = K & ~3; \
    for (int k = 0; k < K4; k += 4) \
    { \
        float4 w[4], xv[TB]; \
        for (int i = 0; i < 4; i++) w[i] = ld4_##T(rp[i], k); \
        for (int j = 0; j < TB; j++) xv[j] = vload4(0, xp[j] + k); \
        for (int i = 0; i < 4; i++) for (int j = 0; j < TB; j++) acc[i][j] += w[i] * xv[j]; \
    } \
    for (int i = 0; i < 4; i++) \
    { \
        int r = r0 + i; \
        if (r >= nrows) break; \
        for (int j = 0; j < TB; j++) \
        { \
            int t = t0 + j; \
            if (t >= ntok) break; \
            float4 a = acc[i][j]; \
            float v = (a.x + a.y) + (a.z + a.w); \
            for (int k = K4; k < K; k++) v += ld_##T(rp[i], k) * xp[j][k]; \
            if (hasBias) v += bias[ycol0 + r]; \
            __global float* o = y + yoff + (long)t * ystride + ycol0 + r; \
            *o = accumulate ? *o + v : v; \
        } \
    } \
}
#define MATVEC_R(T) MATMUL_RB(T, matvecr, 1)
#define MATMUL_R(T) MATMUL_RB(T, matmulr, 4)

// ALL_TYPES(M) is defined by the host from the weight-type table (GgmlTypes.All): M(f32) M(f16) ...
ALL_TYPES(EMBED)
ALL_TYPES(MATVEC)
ALL_TYPES(MATMUL)
ALL_TYPES(MATVEC_R)
ALL_TYPES(MATMUL_R)
