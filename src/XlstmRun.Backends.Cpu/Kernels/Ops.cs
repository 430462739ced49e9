namespace XlstmRun.Backends.Cpu.Kernels;

/// <summary>Row-wise element operations (norms, gates), vectorized, at any width.</summary>
public static unsafe class Ops
{
    public static void RmsNorm(SimdLevel l, float* x, float* w, float* d, int n, float eps)
    {
        switch (l)
        {
            case SimdLevel.V512: RmsNorm<V512>(x, w, d, n, eps); break;
            case SimdLevel.V256: RmsNorm<V256>(x, w, d, n, eps); break;
            case SimdLevel.V128: RmsNorm<V128>(x, w, d, n, eps); break;
            default: RmsNorm<V1>(x, w, d, n, eps); break;
        }
    }

    private static void RmsNorm<TV>(float* x, float* w, float* d, int n, float eps) where TV : struct, IVec<TV>
    {
        int V = TV.Count, i = 0;
        TV s0 = TV.Zero, s1 = TV.Zero;
        for (; i + 2 * V <= n; i += 2 * V)
        {
            var a = TV.Load(x + i); var b = TV.Load(x + i + V);
            s0 = TV.Fma(a, a, s0); s1 = TV.Fma(b, b, s1);
        }
        for (; i + V <= n; i += V) { var a = TV.Load(x + i); s0 = TV.Fma(a, a, s0); }
        double ss = TV.Sum(TV.Add(s0, s1));
        for (; i < n; i++) ss += (double)x[i] * x[i];
        float inv = (float)(1.0 / Math.Sqrt(ss / n + eps));
        var vi = TV.Bcast(inv);
        for (i = 0; i + V <= n; i += V) TV.Store(d + i, TV.Mul(TV.Mul(TV.Load(x + i), vi), TV.Load(w + i)));
        for (; i < n; i++) d[i] = x[i] * inv * w[i];
    }

    /// <summary>dst = LayerNorm per head (dv values, no bias) · w · sigmoid(o), one token.</summary>
    public static void HeadNormGate(SimdLevel l, float* h, float* o, float* w, float* d, int heads, int dv, float eps)
    {
        switch (l)
        {
            case SimdLevel.V512: HeadNormGate<V512>(h, o, w, d, heads, dv, eps); break;
            case SimdLevel.V256: HeadNormGate<V256>(h, o, w, d, heads, dv, eps); break;
            case SimdLevel.V128: HeadNormGate<V128>(h, o, w, d, heads, dv, eps); break;
            default: HeadNormGate<V1>(h, o, w, d, heads, dv, eps); break;
        }
    }

    private static void HeadNormGate<TV>(float* h, float* o, float* w, float* d, int heads, int dv, float eps) where TV : struct, IVec<TV>
    {
        int V = TV.Count;
        var one = TV.Bcast(1f);
        for (int hd = 0; hd < heads; hd++)
        {
            float* seg = h + hd * dv;
            int j = 0;
            TV s = TV.Zero;
            for (; j + V <= dv; j += V) s = TV.Add(s, TV.Load(seg + j));
            double mean = TV.Sum(s);
            for (; j < dv; j++) mean += seg[j];
            mean /= dv;
            float mu = (float)mean;
            var vmu = TV.Bcast(mu);
            s = TV.Zero;
            for (j = 0; j + V <= dv; j += V) { var c = TV.Sub(TV.Load(seg + j), vmu); s = TV.Fma(c, c, s); }
            double var = TV.Sum(s);
            for (; j < dv; j++) { double c = seg[j] - mean; var += c * c; }
            var /= dv;
            float inv = (float)(1.0 / Math.Sqrt(var + eps));
            var vinv = TV.Bcast(inv);
            int k0 = hd * dv;
            for (j = 0; j + V <= dv; j += V)
            {
                int k = k0 + j;
                var gate = TV.Div1(one, TV.Add(one, TV.Exp(TV.Sub(TV.Zero, TV.Load(o + k)))));
                TV.Store(d + k, TV.Mul(TV.Mul(TV.Mul(TV.Sub(TV.Load(seg + j), vmu), vinv), TV.Load(w + k)), gate));
            }
            for (; j < dv; j++)
            {
                int k = k0 + j;
                float gate = 1f / (1f + MathF.Exp(-o[k]));
                d[k] = (seg[j] - mu) * inv * w[k] * gate;
            }
        }
    }

    /// <summary>d[j] = silu(g[j]) · u[j] for j in [j0, j1).</summary>
    public static void SwiGlu(SimdLevel l, float* g, float* u, float* d, int j0, int j1)
    {
        switch (l)
        {
            case SimdLevel.V512: SwiGlu<V512>(g, u, d, j0, j1); break;
            case SimdLevel.V256: SwiGlu<V256>(g, u, d, j0, j1); break;
            case SimdLevel.V128: SwiGlu<V128>(g, u, d, j0, j1); break;
            default: SwiGlu<V1>(g, u, d, j0, j1); break;
        }
    }

    private static void SwiGlu<TV>(float* g, float* u, float* d, int j0, int j1) where TV : struct, IVec<TV>
    {
        int V = TV.Count, j = j0;
        var one = TV.Bcast(1f);
        for (; j + V <= j1; j += V)
        {
            var a = TV.Load(g + j);
            TV.Store(d + j, TV.Mul(TV.Div1(a, TV.Add(one, TV.Exp(TV.Sub(TV.Zero, a)))), TV.Load(u + j)));
        }
        for (; j < j1; j++)
        {
            float a = g[j];
            d[j] = a / (1f + MathF.Exp(-a)) * u[j];
        }
    }

    /// <summary>x = cap · tanh(x / cap) for [j0, j1).</summary>
    public static void SoftCap(float* x, int j0, int j1, float cap)
    {
        for (int j = j0; j < j1; j++) x[j] = cap * MathF.Tanh(x[j] / cap);
    }

    public static void Scale(SimdLevel l, float* x, long n, float s)
    {
        if (l >= SimdLevel.V256) Scale<V256>(x, n, s);
        else Scale<V1>(x, n, s);
    }

    private static void Scale<TV>(float* x, long n, float s) where TV : struct, IVec<TV>
    {
        int V = TV.Count;
        long j = 0;
        var vs = TV.Bcast(s);
        for (; j + V <= n; j += V) TV.Store(x + j, TV.Mul(TV.Load(x + j), vs));
        for (; j < n; j++) x[j] *= s;
    }
}
