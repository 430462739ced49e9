// Norms, gates, soft-cap and argmax.

// One work-group (RED_LS items) per row: y = x · rsqrt(mean(x²) + eps) · w.  y may alias x.
__kernel void rmsnorm(__global const float* x, int xoff, __global const float* w, __global float* y, int yoff, int n, float eps)
{
    __local float red[RED_LS];
    int t = get_group_id(0), lid = get_local_id(0);
    __global const float* xr = x + xoff + (long)t * n;
    __global float* yr = y + yoff + (long)t * n;
    float s = 0.0f;
    for (int i = lid; i < n; i += RED_LS) { float v = xr[i]; s += v * v; }
    float ss = wg_sum(red, s);
    float inv = 1.0f / sqrt(ss / (float)n + eps);
    for (int i = lid; i < n; i += RED_LS) yr[i] = xr[i] * inv * w[i];
}

// One work-group per (token, head): per-head LayerNorm (biased variance, no bias), times w, times sigmoid(o).
__kernel void headnorm_gate(__global const float* h, int hoff, __global const float* qkvo, int qoff, int qcols, int ooff,
                            __global const float* w, __global float* y, int yoff, int NH, int dv, float eps)
{
    __local float red[RED_LS];
    int g = get_group_id(0), lid = get_local_id(0);
    int t = g / NH, hd = g % NH;
    int vd = NH * dv;
    __global const float* seg = h + hoff + (long)t * vd + hd * dv;
    float s = 0.0f;
    for (int j = lid; j < dv; j += RED_LS) s += seg[j];
    float mean = wg_sum(red, s) / (float)dv;
    float s2 = 0.0f;
    for (int j = lid; j < dv; j += RED_LS) { float d = seg[j] - mean; s2 += d * d; }
    float var = wg_sum(red, s2) / (float)dv;
    float inv = 1.0f / sqrt(var + eps);
    __global const float* o = qkvo + qoff + (long)t * qcols + ooff;
    for (int j = lid; j < dv; j += RED_LS)
    {
        int k = hd * dv + j;
        float gate = 1.0f / (1.0f + exp(-o[k]));
        y[yoff + (long)t * vd + k] = (seg[j] - mean) * inv * w[k] * gate;
    }
}

// dst[t, j] = silu(gu[t, j]) · gu[t, F + j]; global = (F, T).
__kernel void swiglu(__global const float* gu, int guoff, __global float* y, int yoff, int F, int T)
{
    int j = get_global_id(0), t = get_global_id(1);
    if (j >= F || t >= T) return;
    float a = gu[guoff + (long)t * 2 * F + j];
    y[yoff + (long)t * F + j] = a / (1.0f + exp(-a)) * gu[guoff + (long)t * 2 * F + F + j];
}

__kernel void softcap(__global float* x, int xoff, int n, float cap)
{
    int i = get_global_id(0);
    if (i < n) x[xoff + i] = soft_cap(x[xoff + i], cap);
}

// One work-group per row: index of the largest of the first `valid` columns (lowest index on ties, like the CPU).
__kernel void argmax_rows(__global const float* x, int xoff, int cols, int valid, __global int* dst)
{
    __local float bv[RED_LS];
    __local int bi[RED_LS];
    int t = get_group_id(0), lid = get_local_id(0);
    __global const float* r = x + xoff + (long)t * cols;
    float best = -INFINITY;
    int idx = 0x7fffffff;
    for (int j = lid; j < valid; j += RED_LS)
    {
        float v = r[j];
        if (v > best || idx == 0x7fffffff) { best = v; idx = j; }
    }
    bv[lid] = best;
    bi[lid] = idx;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = RED_LS / 2; s > 0; s >>= 1)
    {
        if (lid < s)
        {
            float ov = bv[lid + s];
            int oi = bi[lid + s];
            if (oi != 0x7fffffff && (bi[lid] == 0x7fffffff || ov > bv[lid] || (ov == bv[lid] && oi < bi[lid]))) { bv[lid] = ov; bi[lid] = oi; }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) dst[t] = bi[0] == 0x7fffffff ? 0 : bi[0];
}
