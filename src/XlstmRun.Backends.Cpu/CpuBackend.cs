using System.Numerics;
using System.Runtime.Intrinsics;
using System.Runtime.InteropServices;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Formats.Quant;
using XlstmRun.Model;

namespace XlstmRun.Backends.Cpu;

/// <summary>
/// The CPU backend: float32 activations and state, weights read in place from the mapped file and dequantized on the fly.
/// Ops run eagerly on the calling thread plus a worker pool.
/// </summary>
public sealed class CpuBackend : IBackend
{
    private readonly ParallelOptions _par;

    public CpuBackend(int threads = 0)
    {
        Threads = threads > 0 ? threads : Environment.ProcessorCount;
        _par = new ParallelOptions { MaxDegreeOfParallelism = Threads };
    }

    public int Threads { get; }
    public string Name => "cpu";
    public string Device => $"CPU ({Environment.ProcessorCount} logical cores, {Threads} threads, {(Vector256.IsHardwareAccelerated ? "AVX2" : "128-bit SIMD")})";

    public IWeight LoadWeight(TensorView t) => new CpuWeight(t);
    public ITensor Alloc(int rows, int cols) => new CpuTensor(new float[(long)rows * cols], 0, rows, cols);

    public ITensor Rows(ITensor t, int row0, int rows)
    {
        var c = (CpuTensor)t;
        if (row0 < 0 || rows < 0 || row0 + rows > c.Rows) throw new ArgumentOutOfRangeException(nameof(rows));
        return new CpuTensor(c.Data, c.Offset + row0 * c.Cols, rows, c.Cols);
    }

    public ITokenBuffer AllocTokens(int capacity) => new CpuTokens(capacity);
    public IIndexBuffer AllocIndices(int capacity) => new CpuIndices(capacity);
    public IStateBuffer AllocState(ModelConfig config) => new CpuState(config);

    public void WriteTokens(ITokenBuffer dst, ReadOnlySpan<int> ids)
    {
        var t = (CpuTokens)dst;
        ids.CopyTo(t.Ids);
        t.Count = ids.Length;
    }

    public void Read(ITensor src, Span<float> dst) => ((CpuTensor)src).Span.CopyTo(dst);
    public void ReadIndices(IIndexBuffer src, Span<int> dst) => ((CpuIndices)src).Values.AsSpan(0, dst.Length).CopyTo(dst);
    public void ReadState(IStateBuffer src, Span<float> dst) => ((CpuState)src).Data.CopyTo(dst);
    public void WriteState(IStateBuffer dst, ReadOnlySpan<float> src) => src.CopyTo(((CpuState)dst).Data);
    public void ResetState(IStateBuffer dst) => Array.Clear(((CpuState)dst).Data);
    public void Replay(string key, Action record) => record();

    public void Embed(IWeight table, ITokenBuffer ids, ITensor dst)
    {
        var w = (CpuWeight)table;
        var t = (CpuTokens)ids;
        var d = (CpuTensor)dst;
        for (int r = 0; r < d.Rows; r++) Quantizer.DecodeRow(w.Type, w.RowSpan(t.Ids[r]), d.Row(r));
    }

    public void RmsNorm(ITensor x, IWeight w, ITensor dst, float eps)
    {
        var xs = (CpuTensor)x;
        var ds = (CpuTensor)dst;
        var wf = ((CpuWeight)w).Floats!;
        for (int r = 0; r < xs.Rows; r++)
        {
            var xr = xs.Row(r);
            var dr = ds.Row(r);
            double ss = 0;
            foreach (var v in xr) ss += (double)v * v;
            float inv = (float)(1.0 / Math.Sqrt(ss / xr.Length + eps));
            for (int i = 0; i < xr.Length; i++) dr[i] = xr[i] * inv * wf[i];
        }
    }

    public void MatMul(IWeight w, ITensor x, ITensor dst, IWeight? bias = null, bool accumulate = false)
    {
        var W = (CpuWeight)w;
        var X = (CpuTensor)x;
        var D = (CpuTensor)dst;
        if (W.Cols != X.Cols || W.Rows != D.Cols || X.Rows != D.Rows)
            throw new ArgumentException($"matmul shape mismatch: {W.Name} [{W.Rows}, {W.Cols}] · x [{X.Rows}, {X.Cols}] → [{D.Rows}, {D.Cols}]");
        var b = bias == null ? null : ((CpuWeight)bias).Floats;
        int rowsPerTask = Math.Max(16, W.Rows / (Threads * 8));
        int tasks = (W.Rows + rowsPerTask - 1) / rowsPerTask;
        Parallel.For(0, tasks, _par, () => new float[W.Cols], (task, _, rowBuf) =>
        {
            int r0 = task * rowsPerTask, r1 = Math.Min(W.Rows, r0 + rowsPerTask);
            for (int r = r0; r < r1; r++)
            {
                ReadOnlySpan<float> wr;
                if (W.Type == GgmlType.F32) wr = W.Floats.AsSpan(r * W.Cols, W.Cols);
                else { Quantizer.DecodeRow(W.Type, W.RowSpan(r), rowBuf); wr = rowBuf; }
                float bv = b != null ? b[r] : 0f;
                for (int t = 0; t < X.Rows; t++)
                {
                    float v = Dot(wr, X.Row(t)) + bv;
                    ref float o = ref D.Data[D.Offset + t * D.Cols + r];
                    o = accumulate ? o + v : v;
                }
            }
            return rowBuf;
        }, _ => { });
    }

    internal static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int n = a.Length, i = 0;
        var acc = Vector<float>.Zero;
        var va = MemoryMarshal.Cast<float, Vector<float>>(a);
        var vb = MemoryMarshal.Cast<float, Vector<float>>(b);
        for (int k = 0; k < va.Length; k++) acc += va[k] * vb[k];
        i = va.Length * Vector<float>.Count;
        float s = Vector.Sum(acc);
        for (; i < n; i++) s += a[i] * b[i];
        return s;
    }

    public void MlstmCell(ModelConfig c, ITensor qkvo, ITensor gates, IStateBuffer state, int block, ITensor h)
    {
        var Xq = (CpuTensor)qkvo;
        var G = (CpuTensor)gates;
        var H = (CpuTensor)h;
        var S = ((CpuState)state).Data;
        int T = Xq.Rows, NH = c.Heads, dqk = c.DQk, dv = c.DV, L = c.ChunkSize;
        long baseOff = block * c.StateFloatsPerBlock;
        float cap = c.GateSoftCap;
        Parallel.For(0, NH, _par, hd =>
        {
            var C = S.AsSpan((int)(baseOff + (long)hd * dqk * dv), dqk * dv);
            var n = S.AsSpan((int)(baseOff + (long)NH * dqk * dv + hd * dqk), dqk);
            ref float m = ref S[baseOff + (long)NH * dqk * dv + NH * dqk + hd];
            if (T == 1)
            {
                var row = Xq.Row(0);
                float ig = cap * MathF.Tanh(G.Row(0)[hd] / cap), fg = cap * MathF.Tanh(G.Row(0)[NH + hd] / cap);
                MlstmCpu.Step(C, n, ref m, row.Slice(hd * dqk, dqk), row.Slice(c.QkDim + hd * dqk, dqk),
                    row.Slice(2 * c.QkDim + hd * dv, dv), ig, fg, c.CellEps, H.Row(0).Slice(hd * dv, dv));
                return;
            }
            int Lmax = Math.Min(L, T);
            var Q = new float[Lmax * dqk];
            var K = new float[Lmax * dqk];
            var V = new float[Lmax * dv];
            var Hc = new float[Lmax * dv];
            var ig2 = new float[Lmax];
            var fg2 = new float[Lmax];
            var scratch = new float[2 * Lmax + Lmax * Lmax];
            for (int t0 = 0; t0 < T; t0 += L)
            {
                int len = Math.Min(L, T - t0);
                for (int j = 0; j < len; j++)
                {
                    var row = Xq.Row(t0 + j);
                    row.Slice(hd * dqk, dqk).CopyTo(Q.AsSpan(j * dqk));
                    row.Slice(c.QkDim + hd * dqk, dqk).CopyTo(K.AsSpan(j * dqk));
                    row.Slice(2 * c.QkDim + hd * dv, dv).CopyTo(V.AsSpan(j * dv));
                    ig2[j] = cap * MathF.Tanh(G.Row(t0 + j)[hd] / cap);
                    fg2[j] = cap * MathF.Tanh(G.Row(t0 + j)[NH + hd] / cap);
                }
                MlstmCpu.Chunk(C, n, ref m, len, dqk, dv, Q.AsSpan(0, len * dqk), K.AsSpan(0, len * dqk), V.AsSpan(0, len * dv),
                    ig2.AsSpan(0, len), fg2.AsSpan(0, len), c.CellEps, Hc.AsSpan(0, len * dv), scratch);
                for (int j = 0; j < len; j++) Hc.AsSpan(j * dv, dv).CopyTo(H.Row(t0 + j).Slice(hd * dv, dv));
            }
        });
    }

    public void HeadNormGate(ModelConfig c, ITensor h, ITensor qkvo, IWeight w, ITensor dst)
    {
        var H = (CpuTensor)h;
        var X = (CpuTensor)qkvo;
        var D = (CpuTensor)dst;
        var wf = ((CpuWeight)w).Floats!;
        int dv = c.DV;
        for (int t = 0; t < H.Rows; t++)
        {
            var hr = H.Row(t);
            var o = X.Row(t).Slice(c.OOffset, c.VDim);
            var dr = D.Row(t);
            for (int hd = 0; hd < c.Heads; hd++)
            {
                var seg = hr.Slice(hd * dv, dv);
                double mean = 0;
                foreach (var v in seg) mean += v;
                mean /= dv;
                double var = 0;
                foreach (var v in seg) { double d = v - mean; var += d * d; }
                var /= dv;
                float inv = (float)(1.0 / Math.Sqrt(var + c.NormEps));
                float mu = (float)mean;
                for (int j = 0; j < dv; j++)
                {
                    int k = hd * dv + j;
                    float gate = 1f / (1f + MathF.Exp(-o[k]));
                    dr[k] = (seg[j] - mu) * inv * wf[k] * gate;
                }
            }
        }
    }

    public void SwiGlu(ITensor gateUp, ITensor dst)
    {
        var G = (CpuTensor)gateUp;
        var D = (CpuTensor)dst;
        int F = D.Cols;
        for (int t = 0; t < D.Rows; t++)
        {
            var g = G.Row(t);
            var d = D.Row(t);
            for (int j = 0; j < F; j++)
            {
                float a = g[j];
                d[j] = a / (1f + MathF.Exp(-a)) * g[F + j];
            }
        }
    }

    public void SoftCap(ITensor x, float cap)
    {
        var s = ((CpuTensor)x).Span;
        for (int i = 0; i < s.Length; i++) s[i] = cap * MathF.Tanh(s[i] / cap);
    }

    public void Argmax(ITensor x, int validCols, IIndexBuffer dst)
    {
        var X = (CpuTensor)x;
        var D = (CpuIndices)dst;
        for (int t = 0; t < X.Rows; t++)
        {
            var r = X.Row(t);
            int best = 0;
            for (int j = 1; j < validCols; j++) if (r[j] > r[best]) best = j;
            D.Values[t] = best;
        }
    }

    public void Dispose() { }
}
