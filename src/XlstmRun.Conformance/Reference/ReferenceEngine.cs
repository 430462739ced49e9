using System.Numerics;
using XlstmRun.Backends.Cpu;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;

namespace XlstmRun.Conformance.Reference;

/// <summary>How the reference engine feeds several tokens through the mLSTM cell (mathematically the same; rounding differs).</summary>
public enum CellForm
{
    /// <summary>As the runner: chunks of the model's chunk size in the chunkwise form (the remainder too); one token: the step form.</summary>
    Chunkwise,
    /// <summary>Every token through the recurrent step form.</summary>
    Step,
}

/// <summary>
/// A plain scalar implementation of the whole xLSTM forward pass (xlstm7b-spec.md §2-3), generic over the element type.
/// With T = double it is the float64 reference: any model of any shape (read from a GGUF file, weights decoded exactly to
/// float then widened) and any prompt can be checked without PyTorch. CPU only, slow, for tests and `check`.
/// Logits are after the output soft-cap; the state has the runner's flat layout (per block C [NH,dqk,dv], n [NH,dqk], m [NH]).
/// </summary>
public sealed class ReferenceEngine<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private sealed class Block
    {
        public required T[] AttnNorm, Qkvo, Gates, GatesBias, HeadNorm, Out, FfnNorm, GateUp, Down;
    }

    private readonly Block[] _blocks;
    private readonly T[] _embd, _out;
    private readonly T[]? _outNorm;
    private readonly T[] _state;

    public ModelConfig Config { get; }
    public CellForm Form { get; set; } = CellForm.Chunkwise;
    /// <summary>Tokens fed since the last reset.</summary>
    public long Position { get; private set; }

    public ReferenceEngine(GgufFile file, ModelConfig? config = null)
    {
        var c = Config = config ?? ModelConfig.FromGguf(file);
        var shapes = TensorNames.All(c).ToDictionary(t => t.Name, t => t.Shape);
        T[] W(string name)
        {
            var view = file.Tensor(name, shapes[name]);
            var f = view.ToFloatArray();
            var r = new T[f.Length];
            for (int i = 0; i < f.Length; i++) r[i] = T.CreateChecked(f[i]);
            return r;
        }
        _embd = W(TensorNames.TokenEmbd);
        _blocks = new Block[c.Blocks];
        for (int b = 0; b < c.Blocks; b++)
            _blocks[b] = new Block
            {
                AttnNorm = W(TensorNames.AttnNorm(b)), Qkvo = W(TensorNames.Qkvo(b)), Gates = W(TensorNames.Gates(b)),
                GatesBias = W(TensorNames.GatesBias(b)), HeadNorm = W(TensorNames.HeadNorm(b)), Out = W(TensorNames.Out(b)),
                FfnNorm = W(TensorNames.FfnNorm(b)), GateUp = W(TensorNames.FfnGateUp(b)), Down = W(TensorNames.FfnDown(b)),
            };
        _outNorm = c.AddOutNorm ? W(TensorNames.OutputNorm) : null;
        _out = W(TensorNames.Output);
        _state = new T[c.StateFloats];
    }

    public void Reset()
    {
        Array.Clear(_state);
        Position = 0;
    }

    /// <summary>The recurrent state (flat layout).</summary>
    public T[] State => _state;

    public void LoadState(ReadOnlySpan<T> s, long position)
    {
        s.CopyTo(_state);
        Position = position;
    }

    /// <summary>Feed <paramref name="ids"/>, carrying the state; logits of every position to <paramref name="logits"/> [n, V] (empty: none).</summary>
    public void Forward(ReadOnlySpan<int> ids, Span<T> logits)
    {
        var c = Config;
        int n = ids.Length, D = c.Hidden, V = c.Vocab;
        if (!logits.IsEmpty && logits.Length < (long)n * V) throw new ArgumentException("logits buffer too small");
        var x = new T[n * D];
        for (int t = 0; t < n; t++)
        {
            int id = ids[t];
            if ((uint)id >= (uint)V) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} out of range");
            _embd.AsSpan(id * D, D).CopyTo(x.AsSpan(t * D, D));
        }
        var a = new T[n * D];
        var qkvo = new T[n * c.QkvoDim];
        var gates = new T[n * 2 * c.Heads];
        var h = new T[n * c.VDim];
        var g = new T[n * c.VDim];
        var gu = new T[n * 2 * c.FfnDim];
        var s = new T[n * c.FfnDim];
        for (int b = 0; b < c.Blocks; b++)
        {
            var w = _blocks[b];
            RmsNorm(x, w.AttnNorm, a, n, D, c.NormEps);
            MatMul(w.Qkvo, a, qkvo, n, c.QkvoDim, D, null, false);
            MatMul(w.Gates, a, gates, n, 2 * c.Heads, D, w.GatesBias, false);
            Cell(b, qkvo, gates, h, n);
            HeadNormGate(h, qkvo, w.HeadNorm, g, n);
            MatMul(w.Out, g, x, n, D, c.VDim, null, true);
            RmsNorm(x, w.FfnNorm, a, n, D, c.NormEps);
            MatMul(w.GateUp, a, gu, n, 2 * c.FfnDim, D, null, false);
            int F = c.FfnDim;
            for (int t = 0; t < n; t++)
                for (int j = 0; j < F; j++)
                {
                    T z = gu[t * 2 * F + j];
                    s[t * F + j] = z / (T.One + T.Exp(-z)) * gu[t * 2 * F + F + j];
                }
            MatMul(w.Down, s, x, n, D, F, null, true);
        }
        Position += n;
        if (logits.IsEmpty) return;
        if (_outNorm != null) RmsNorm(x, _outNorm, a, n, D, c.NormEps);
        else x.CopyTo(a, 0);
        var l = new T[n * V];
        MatMul(_out, a, l, n, V, D, null, false);
        T cap = T.CreateChecked(c.LogitSoftCap);
        for (int i = 0; i < l.Length; i++) logits[i] = cap * T.Tanh(l[i] / cap);
    }

    /// <summary>Convenience: float64 logits of every position as a new array.</summary>
    public T[] Logits(ReadOnlySpan<int> ids)
    {
        var l = new T[(long)ids.Length * Config.Vocab];
        Forward(ids, l);
        return l;
    }

    // ---- ops ---------------------------------------------------------------------------------------------------------

    private static T Dot(ReadOnlySpan<T> a, ReadOnlySpan<T> b)
    {
        T s = T.Zero;
        int i = 0;
        if (Vector.IsHardwareAccelerated && Vector<T>.IsSupported && a.Length >= Vector<T>.Count)
        {
            var acc = Vector<T>.Zero;
            int w = Vector<T>.Count;
            for (; i + w <= a.Length; i += w) acc += new Vector<T>(a.Slice(i, w)) * new Vector<T>(b.Slice(i, w));
            s = Vector.Sum(acc);
        }
        for (; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }

    private static void RmsNorm(T[] x, T[] w, T[] d, int n, int D, float eps)
    {
        T e = T.CreateChecked(eps);
        for (int t = 0; t < n; t++)
        {
            var xr = x.AsSpan(t * D, D);
            T ss = Dot(xr, xr);
            T inv = T.One / T.Sqrt(ss / T.CreateChecked(D) + e);
            for (int i = 0; i < D; i++) d[t * D + i] = xr[i] * inv * w[i];
        }
    }

    /// <summary>dst[t] (+)= W · x[t] (+ bias); W is [rows, cols] row-major.</summary>
    private static void MatMul(T[] W, T[] x, T[] dst, int n, int rows, int cols, T[]? bias, bool accumulate)
    {
        for (int t = 0; t < n; t++)
        {
            var xr = x.AsSpan(t * cols, cols);
            for (int r = 0; r < rows; r++)
            {
                T v = Dot(W.AsSpan(r * cols, cols), xr);
                if (bias != null) v += bias[r];
                if (accumulate) dst[t * rows + r] += v;
                else dst[t * rows + r] = v;
            }
        }
    }

    private void Cell(int block, T[] qkvo, T[] gates, T[] h, int n) =>
        RunCell(Config, _state.AsSpan((int)(block * Config.StateFloatsPerBlock), (int)Config.StateFloatsPerBlock), qkvo, gates, h, n, Form);

    /// <summary>
    /// The mLSTM cell op on its own (IBackend.MlstmCell in <typeparamref name="T"/>): <paramref name="n"/> tokens of qkvo
    /// [n, QkvoDim] and raw gate pre-activations [n, 2·Heads] (soft-capped here), one block's state (C, n, m of every head),
    /// h [n, VDim]. The chunkwise form in chunks of ChunkSize (or the step form), as the forward pass uses it.
    /// </summary>
    public static void RunCell(ModelConfig c, Span<T> blockState, ReadOnlySpan<T> qkvo, ReadOnlySpan<T> gates, Span<T> h, int n,
        CellForm form = CellForm.Chunkwise)
    {
        int NH = c.Heads, dqk = c.DQk, dv = c.DV, L = c.ChunkSize, ld = c.QkvoDim;
        T cap = T.CreateChecked(c.GateSoftCap), eps = T.CreateChecked(c.CellEps);
        var Q = new T[Math.Min(n, L) * dqk];
        var K = new T[Q.Length];
        var Vv = new T[Math.Min(n, L) * dv];
        var H = new T[Vv.Length];
        var ig = new T[Math.Min(n, L)];
        var fg = new T[ig.Length];
        var scratch = new T[MlstmCpu<T>.ChunkScratch(Math.Min(n, L))];
        for (int hd = 0; hd < NH; hd++)
        {
            var C = blockState.Slice(hd * dqk * dv, dqk * dv);
            var nv = blockState.Slice(NH * dqk * dv + hd * dqk, dqk);
            ref T m = ref blockState[NH * dqk * dv + NH * dqk + hd];
            int step = n == 1 || form == CellForm.Step ? 1 : L;
            for (int t0 = 0; t0 < n; t0 += step)
            {
                int len = Math.Min(step, n - t0);
                for (int j = 0; j < len; j++)
                {
                    int t = t0 + j;
                    qkvo.Slice(t * ld + hd * dqk, dqk).CopyTo(Q.AsSpan(j * dqk));
                    qkvo.Slice(t * ld + c.QkDim + hd * dqk, dqk).CopyTo(K.AsSpan(j * dqk));
                    qkvo.Slice(t * ld + 2 * c.QkDim + hd * dv, dv).CopyTo(Vv.AsSpan(j * dv));
                    ig[j] = cap * T.Tanh(gates[t * 2 * NH + hd] / cap);
                    fg[j] = cap * T.Tanh(gates[t * 2 * NH + NH + hd] / cap);
                }
                if (len == 1 && step == 1)
                    MlstmCpu<T>.Step(C, nv, ref m, Q.AsSpan(0, dqk), K.AsSpan(0, dqk), Vv.AsSpan(0, dv), ig[0], fg[0], eps, H.AsSpan(0, dv));
                else
                    MlstmCpu<T>.Chunk(C, nv, ref m, len, dqk, dv, Q, K, Vv, ig.AsSpan(0, len), fg.AsSpan(0, len), eps, H, scratch);
                for (int j = 0; j < len; j++) H.AsSpan(j * dv, dv).CopyTo(h.Slice((t0 + j) * c.VDim + hd * dv));
            }
        }
    }

    private void HeadNormGate(T[] h, T[] qkvo, T[] w, T[] d, int n)
    {
        var c = Config;
        int NH = c.Heads, dv = c.DV, VD = c.VDim;
        T eps = T.CreateChecked(c.NormEps), ndv = T.CreateChecked(dv);
        for (int t = 0; t < n; t++)
            for (int hd = 0; hd < NH; hd++)
            {
                var seg = h.AsSpan(t * VD + hd * dv, dv);
                T mean = T.Zero;
                foreach (var v in seg) mean += v;
                mean /= ndv;
                T var = T.Zero;
                foreach (var v in seg) var += (v - mean) * (v - mean);
                var /= ndv;
                T inv = T.One / T.Sqrt(var + eps);
                for (int j = 0; j < dv; j++)
                {
                    int k = hd * dv + j;
                    T o = qkvo[t * c.QkvoDim + c.OOffset + k];
                    d[t * VD + k] = (seg[j] - mean) * inv * w[k] * (T.One / (T.One + T.Exp(-o)));
                }
            }
    }
}
