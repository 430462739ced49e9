using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using XlstmRun.Backends.Cpu.Kernels;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;

namespace XlstmRun.Backends.Cpu;

/// <summary>
/// The CPU backend: float32 activations and state. Decode (one token) runs matrix-vector kernels (8-bit activations ×
/// Q8_0/Q4_0 with integer dot products; float kernels for F32/F16/BF16); prefill runs panel-blocked matrix products and
/// the chunkwise mLSTM form. Float weights are read in place from the mapped file (paged in at load where memory
/// allows); on AVX2 CPUs without AVX-VNNI, Q8_0/Q4_0 matrices are repacked at load into an 8-row interleaved copy
/// (<see cref="PackedRef"/>, 2 MB pages) that both the decode and the prefill integer kernels stream. Ops run on a
/// persistent worker pool (the calling thread plus Threads−1 dedicated threads), split by rows, heads or tokens;
/// nothing is allocated per token once the buffers are warm.
/// </summary>
public sealed unsafe class CpuBackend : IBackend
{
    private WorkerPool? _pool;
    private readonly QuantAct _qa = new();
    private readonly Scratch[] _scratch;
    private readonly MatVecJob _matvec;
    private readonly PackedMatVecJob _pmatvec;
    private readonly GemmJob _gemm;
    private readonly PackedGemmJob _pgemm;
    private readonly PackJob _pack;
    private readonly QuantizeJob _quant;
    private readonly CellJob _cell;
    private readonly RowsJob _rows;
    private readonly List<CpuWeight> _weights = new();
    private readonly List<CpuState> _states = new();
    private readonly CpuProfiler? _prof;
    private long _populated;

    /// <param name="threads">Worker threads including the caller (0 = all cores).</param>
    /// <param name="int8Activations">Quantize activations to 8 bits for Q8_0/Q4_0 weights (integer dot products); false = float activations.</param>
    /// <param name="level">Float vector width (default: the widest accelerated one); for tests.</param>
    /// <param name="int8Path">8-bit kernel path (default: the best supported); for tests.</param>
    /// <param name="profile">Time every op by class (<see cref="ProfileReport"/>).</param>
    public CpuBackend(int threads = 0, bool int8Activations = true, SimdLevel? level = null, Int8Path? int8Path = null, bool profile = false)
    {
        Threads = threads > 0 ? threads : Environment.ProcessorCount;
        Level = level ?? CpuCaps.Best;
        Int8 = int8Path ?? CpuCaps.BestInt8;
        if (!CpuCaps.Supports(Level)) throw new ArgumentException($"SIMD level {Level} is not supported here");
        if (!CpuCaps.Supports(Int8)) throw new ArgumentException($"8-bit path {Int8} is not supported here");
        Int8Activations = int8Activations;
        _scratch = new Scratch[Threads];
        for (int i = 0; i < Threads; i++) _scratch[i] = new Scratch();
        _matvec = new MatVecJob(this);
        _pmatvec = new PackedMatVecJob();
        _gemm = new GemmJob(this);
        _pgemm = new PackedGemmJob();
        _pack = new PackJob();
        _quant = new QuantizeJob();
        _cell = new CellJob(this);
        _rows = new RowsJob(this);
        if (profile) _prof = new CpuProfiler();
    }

    public int Threads { get; }
    public SimdLevel Level { get; }
    public Int8Path Int8 { get; }
    public bool Int8Activations { get; }
    /// <summary>Q8_0/Q4_0 matrices are repacked at load for the AVX2 integer kernels (8-bit activations, AVX2 path).</summary>
    public bool PacksWeights => Int8Activations && Int8 == Int8Path.Avx2;
    public string Name => "cpu";
    public ActivationPrecision MatMulActivations(GgmlType weightType, int tokens) =>
        Int8Activations && GgmlTypes.IsQuantized(weightType) ? ActivationPrecision.Int8 : ActivationPrecision.Float32;
    public string Device => $"CPU ({Environment.ProcessorCount} logical cores, {Threads} threads, {CpuCaps.Describe()})";

    /// <summary>Per-op-class timings so far (empty unless constructed with profile: true).</summary>
    public string ProfileReport() => _prof?.Report(Threads) ?? "";

    private WorkerPool Pool => _pool ??= new WorkerPool(Threads);

    private void Run(IParallelWork work, int items)
    {
        if (items <= 1 || Threads == 1) { for (int i = 0; i < items; i++) work.Execute(i, 0); return; }
        Pool.Run(work, items);
    }

    // ---- storage ---------------------------------------------------------------------------------------------------------

    public IWeight LoadWeight(TensorView t)
    {
        var w = new CpuWeight(t);
        _weights.Add(w);
        // The embedding table is only looked up row by row: it stays in the mapped file, untouched until used.
        bool matrix = w.Rows > 1 && t.Name != TensorNames.TokenEmbd;
        if (matrix && PacksWeights && w.Ref.IsQuant && w.Cols % 32 == 0) Pack(w);
        else if (matrix)
        {
            // Fault the mapped rows in now rather than during the first token, while memory allows (they are page cache:
            // the kernel may still evict them under pressure, and then they fault in again on use).
            long avail = NativePages.AvailableBytes();
            if (avail < 0 || _populated + w.Bytes < avail - (1L << 30))
            {
                NativePages.Populate(w.Data, w.Bytes);
                _populated += w.Bytes;
            }
        }
        return w;
    }

    private void Pack(CpuWeight w)
    {
        long bytes = PackedRef.SizeOf(w.Type, w.Rows, w.Cols);
        byte* mem = NativePages.AllocHuge(bytes);
        w.SetPacked(mem, bytes);
        _pack.Set(w.Ref, w.Packed);
        Run(_pack, _pack.Items);
        // The packed copy is what gets read from now on: unmap the file's pages from this process (the page cache keeps
        // them, reclaimable), so resident memory counts the weights once.
        NativePages.Drop(w.Data, w.Bytes);
    }

    public ITensor Alloc(int rows, int cols) => rows >= 0 && cols >= 0 && (long)rows * cols <= Array.MaxLength // 64-bit: rows*cols overflowed int once
        ? new CpuTensor(GC.AllocateArray<float>((int)Math.Max(1L, (long)rows * cols), pinned: true), 0, rows, cols) : throw new ArgumentOutOfRangeException(nameof(rows), $"a {rows} x {cols} buffer is too large");

    private readonly Dictionary<(float[], int, int, int), CpuTensor> _views = new();

    public ITensor Rows(ITensor t, int row0, int rows)
    {
        var c = (CpuTensor)t;
        if (row0 < 0 || rows < 0 || row0 + rows > c.Rows) throw new ArgumentOutOfRangeException(nameof(rows));
        int off = c.Offset + row0 * c.Cols;
        // Views are cached so that the per-token path allocates nothing.
        var key = (c.Data, off, rows, c.Cols);
        if (!_views.TryGetValue(key, out var v)) _views[key] = v = new CpuTensor(c.Data, off, rows, c.Cols);
        return v;
    }

    public ITokenBuffer AllocTokens(int capacity) => new CpuTokens(capacity);
    public IIndexBuffer AllocIndices(int capacity) => new CpuIndices(capacity);
    public IStateBuffer AllocState(ModelConfig config, int slots = 1)
    {
        var st = new CpuState(config, slots);
        _states.Add(st);
        return st;
    }

    public IStateBuffer StateSlot(IStateBuffer state, int slot) => ((CpuState)state).Slot(slot);

    public void WriteTokens(ITokenBuffer dst, ReadOnlySpan<int> ids)
    {
        var t = (CpuTokens)dst;
        ids.CopyTo(t.Ids);
        t.Count = ids.Length;
    }

    public void Read(ITensor src, Span<float> dst) => ((CpuTensor)src).Span.CopyTo(dst);
    public void ReadIndices(IIndexBuffer src, Span<int> dst) => ((CpuIndices)src).Values.AsSpan(0, dst.Length).CopyTo(dst);
    public void ReadState(IStateBuffer src, Span<float> dst) => ((CpuState)src).Span.CopyTo(dst);
    public void WriteState(IStateBuffer dst, ReadOnlySpan<float> src) => src[..((CpuState)dst).Length].CopyTo(((CpuState)dst).Span);
    public void ResetState(IStateBuffer dst) => ((CpuState)dst).Span.Clear();
    public void Replay(string key, Action record) => record();

    // ---- ops -------------------------------------------------------------------------------------------------------------

    public void Embed(IWeight table, ITokenBuffer ids, ITensor dst)
    {
        var w = (CpuWeight)table;
        var t = (CpuTokens)ids;
        var d = (CpuTensor)dst;
        long t0 = CpuProfiler.Now();
        _prof?.BeginPass(d.Rows, t0);
        for (int r = 0; r < d.Rows; r++)
        {
            int id = t.Ids[r];
            if ((uint)id >= (uint)w.Rows) throw new BadInputException($"token id {id} is out of range (vocabulary size {w.Rows})");
            Dequant.Row(w.Type, w.Ref.Row(id), 0, w.Cols, d.RowPtr(r));
        }
        _prof?.End("embed", t0);
    }

    public void RmsNorm(ITensor x, IWeight w, ITensor dst, float eps)
    {
        var xs = (CpuTensor)x;
        var ds = (CpuTensor)dst;
        long t0 = CpuProfiler.Now();
        _rows.Set(RowOp.RmsNorm, xs, null, ds, (CpuWeight)w, eps, 0);
        Run(_rows, _rows.Items);
        _prof?.End("rms_norm", t0);
    }

    public void MatMul(IWeight w, ITensor x, ITensor dst, IWeight? bias = null, bool accumulate = false)
    {
        var W = (CpuWeight)w;
        var X = (CpuTensor)x;
        var D = (CpuTensor)dst;
        if (W.Cols != X.Cols || W.Rows != D.Cols || X.Rows != D.Rows)
            throw new ArgumentException($"matmul shape mismatch: {W.Name} [{W.Rows}, {W.Cols}] · x [{X.Rows}, {X.Cols}] → [{D.Rows}, {D.Cols}]");
        float* b = bias == null ? null : ((CpuWeight)bias).FloatPtr;
        int T = X.Rows;
        if (T == 0) return;
        bool int8 = Int8Activations && W.Ref.IsQuant;
        bool int8Gemm = W.IsPacked || (int8 && Int8 == Int8Path.AvxVnni);
        long t0 = CpuProfiler.Now();
        if (T == 1 ? int8 : int8Gemm)
        {
            _qa.Ensure(T, X.Cols);
            if (T == 1) _qa.QuantizeRow(0, X.Ptr);
            else
            {
                _quant.Set(_qa, X);
                Run(_quant, T);
            }
            if (_prof != null) { _prof.End("quantize activations", t0); t0 = CpuProfiler.Now(); }
        }
        if (T == 1)
        {
            if (W.IsPacked)
            {
                _pmatvec.Set(W.Packed, _qa, new Epilogue(D.Ptr, b, accumulate), Threads);
                Run(_pmatvec, _pmatvec.Items);
            }
            else
            {
                if (!int8 && W.Ref.IsQuant) EnsureScratch(W.Cols * 4L);
                float* xs = W.Type == GgmlType.F16 ? ScaleForF16(X.Ptr, X.Cols) : null;
                _matvec.Set(W.Ref, X.Ptr, xs, int8 ? _qa : null, new Epilogue(D.Ptr, b, accumulate), Threads);
                Run(_matvec, _matvec.Items);
            }
            _prof?.End(W.ProfileMatVec, t0, W.Bytes);
            return;
        }
        if (W.IsPacked)
        {
            _pgemm.Set(W.Packed, _qa, T, new Epilogue2D(D.Ptr, D.Cols, b, accumulate));
            Run(_pgemm, _pgemm.Items);
        }
        else if (int8Gemm)
        {
            EnsureScratch(ProjGemm.Int8Scratch(W.Cols));
            _gemm.Set(W.Ref, X, _qa, new Epilogue2D(D.Ptr, D.Cols, b, accumulate), true, ProjGemm.ItemRowsInt8);
            Run(_gemm, _gemm.Items);
        }
        else
        {
            EnsureScratch(ProjGemm.FloatScratch(Level, T) * 4);
            _gemm.Set(W.Ref, X, null, new Epilogue2D(D.Ptr, D.Cols, b, accumulate), false, ProjGemm.ItemRowsFloat(Level));
            Run(_gemm, _gemm.Items);
        }
        _prof?.End(W.ProfileMatMul, t0, W.Bytes);
    }

    private float[] _xsBuf = [];
    private float* _xs;

    /// <summary>x · 2^112 for the F16 matrix-vector kernel, or null if some |x| is too large for that (then the plain kernel runs).</summary>
    private float* ScaleForF16(float* x, int n)
    {
        if (_xsBuf.Length < n)
        {
            _xsBuf = GC.AllocateArray<float>(n, pinned: true);
            _xs = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _xsBuf[0]);
        }
        var lim = Vector256.Create(MatVec.ScaledF16Limit);
        var sc = Vector256.Create(HalfBits.Scale);
        bool ok = true;
        int i = 0;
        for (; i + 8 <= n; i += 8)
        {
            var v = Vector256.Load(x + i);
            ok &= Vector256.LessThanOrEqualAll(Vector256.Abs(v), lim);   // false for NaN too
            (v * sc).Store(_xs + i);
        }
        for (; i < n; i++)
        {
            ok &= MathF.Abs(x[i]) <= MatVec.ScaledF16Limit;
            _xs[i] = x[i] * HalfBits.Scale;
        }
        return ok ? _xs : null;
    }

    public void MlstmCell(ModelConfig c, ITensor qkvo, ITensor gates, IStateBuffer state, int block, ITensor h)
    {
        var X = (CpuTensor)qkvo;
        if (X.Rows > 1) EnsureScratch(MlstmKernels.ChunkScratch(Math.Min(c.ChunkSize, X.Rows), c.DQk) * 4);
        long t0 = CpuProfiler.Now();
        _cell.Set(c, X, (CpuTensor)gates, (CpuState)state, block, (CpuTensor)h, rows: false);
        Run(_cell, c.Heads);
        _prof?.End("mlstm cell", t0);
    }

    /// <summary>
    /// One step of each of several sequences (row r steps slot r): one parallel region over every (row, head) pair
    /// instead of one region per row, so the B cells of a multi-sequence decode step run side by side.
    /// </summary>
    public void MlstmStepRows(ModelConfig c, ITensor qkvo, ITensor gates, IStateBuffer state, int block, ITensor h)
    {
        var X = (CpuTensor)qkvo;
        var S = (CpuState)state;
        if (X.Rows > S.Slots) throw new ArgumentException("more rows than state slots");
        if (X.Rows == 0) return;
        long t0 = CpuProfiler.Now();
        _cell.Set(c, X, (CpuTensor)gates, S, block, (CpuTensor)h, rows: true);
        Run(_cell, X.Rows * c.Heads);
        _prof?.End("mlstm cell (rows)", t0);
    }

    public void HeadNormGate(ModelConfig c, ITensor h, ITensor qkvo, IWeight w, ITensor dst)
    {
        long t0 = CpuProfiler.Now();
        _rows.Set(RowOp.HeadNormGate, (CpuTensor)h, (CpuTensor)qkvo, (CpuTensor)dst, (CpuWeight)w, c.NormEps, c.OOffset, c.Heads);
        Run(_rows, _rows.Items);
        _prof?.End("head norm · sigmoid(o)", t0);
    }

    public void SwiGlu(ITensor gateUp, ITensor dst)
    {
        long t0 = CpuProfiler.Now();
        _rows.Set(RowOp.SwiGlu, (CpuTensor)gateUp, null, (CpuTensor)dst, null, 0, 0);
        Run(_rows, _rows.Items);
        _prof?.End("swiglu", t0);
    }

    public void SoftCap(ITensor x, float cap)
    {
        var t = (CpuTensor)x;
        long t0 = CpuProfiler.Now();
        _rows.Set(RowOp.SoftCap, t, null, t, null, cap, 0);
        Run(_rows, _rows.Items);
        _prof?.End("logit soft-cap", t0);
    }

    public void Argmax(ITensor x, int validCols, IIndexBuffer dst)
    {
        var X = (CpuTensor)x;
        var D = (CpuIndices)dst;
        long t0 = CpuProfiler.Now();
        for (int t = 0; t < X.Rows; t++)
        {
            float* r = X.RowPtr(t);
            int best = 0;
            for (int j = 1; j < validCols; j++) if (r[j] > r[best]) best = j;
            D.Values[t] = best;
        }
        _prof?.End("argmax", t0);
    }

    public void Dispose()
    {
        _pool?.Dispose();
        _pool = null;
        _qa.Dispose();
        foreach (var s in _scratch) s.Dispose();
        foreach (var w in _weights) w.FreePacked();
        _weights.Clear();
        foreach (var st in _states) st.Dispose();
        _states.Clear();
    }

    // ---- per-worker scratch ------------------------------------------------------------------------------------------------

    private void EnsureScratch(long bytes)
    {
        foreach (var s in _scratch) s.Ensure(bytes);
    }

    private sealed class Scratch : IDisposable
    {
        public byte* Ptr;
        private long _cap;
        public void Ensure(long bytes)
        {
            if (bytes <= _cap) return;
            if (Ptr != null) NativeMemory.AlignedFree(Ptr);
            Ptr = (byte*)NativeMemory.AlignedAlloc((nuint)(bytes + 64), 64);
            _cap = bytes;
        }
        public void Dispose()
        {
            if (Ptr != null) NativeMemory.AlignedFree(Ptr);
            Ptr = null;
            _cap = 0;
        }
    }

    // ---- jobs (one instance each, re-armed per op: no per-op allocation) ----------------------------------------------------

    private sealed class MatVecJob(CpuBackend be) : IParallelWork
    {
        private WeightRef _w;
        private float* _x, _xs;
        private QuantAct? _qa;
        private Epilogue _epi;
        private int _rowsPer;
        public int Items;

        /// <param name="xs">x · 2^112 for F16 weights (null: the plain float kernel).</param>
        public void Set(in WeightRef w, float* x, float* xs, QuantAct? qa, in Epilogue epi, int threads)
        {
            _w = w; _x = x; _xs = xs; _qa = qa; _epi = epi;
            // Enough items for balance (a preempted thread leaves its share to the others), each a few hundred KB.
            long bytes = w.RowBytes * w.Rows;
            int items = bytes < (256 << 10) ? 1 : Math.Min(threads * 16, (w.Rows + 3) / 4);
            _rowsPer = (w.Rows + items - 1) / items;
            _rowsPer = (_rowsPer + 3) & ~3;
            Items = (w.Rows + _rowsPer - 1) / _rowsPer;
        }

        public void Execute(int item, int worker)
        {
            int r0 = item * _rowsPer, r1 = Math.Min(_w.Rows, r0 + _rowsPer);
            if (_qa != null) MatVec.Int8(be.Int8, _w, _qa, 0, r0, r1, _epi);
            else if (_xs != null) MatVec.F16Scaled(be.Level, _w, _xs, r0, r1, _epi);
            else MatVec.Float(be.Level, _w, _x, r0, r1, _epi, (float*)be._scratch[worker].Ptr);
        }
    }

    /// <summary>Decode over packed weights: items are runs of whole 8-row groups.</summary>
    private sealed class PackedMatVecJob : IParallelWork
    {
        private PackedRef _w;
        private QuantAct _qa = null!;
        private Epilogue _epi;
        private int _per;
        public int Items;

        public void Set(in PackedRef w, QuantAct qa, in Epilogue epi, int threads)
        {
            _w = w; _qa = qa; _epi = epi;
            // as for MatVecJob: enough items for balance, each a few hundred KB
            int items = w.GroupBytes * w.Groups < (256 << 10) ? 1 : Math.Min(threads * 16, w.Groups);
            _per = (w.Groups + items - 1) / items;
            Items = (w.Groups + _per - 1) / _per;
        }

        public void Execute(int item, int worker)
        {
            int g0 = item * _per;
            PackedMatVec.Run(_w, _qa, 0, g0, Math.Min(_w.Groups, g0 + _per), _epi);
        }
    }

    /// <summary>Prefill over packed weights: items of <see cref="GroupsPerItem"/> groups, all tokens each.</summary>
    private sealed class PackedGemmJob : IParallelWork
    {
        public const int GroupsPerItem = 4;
        private PackedRef _w;
        private QuantAct _qa = null!;
        private Epilogue2D _epi;
        private int _T;
        public int Items;

        public void Set(in PackedRef w, QuantAct qa, int T, in Epilogue2D epi)
        {
            _w = w; _qa = qa; _T = T; _epi = epi;
            Items = (w.Groups + GroupsPerItem - 1) / GroupsPerItem;
        }

        public void Execute(int item, int worker)
        {
            int g0 = item * GroupsPerItem;
            PackedGemm.Run(_w, _qa, _T, g0, Math.Min(_w.Groups, g0 + GroupsPerItem), _epi);
        }
    }

    /// <summary>Repacking at load, in parallel: items of 64 groups.</summary>
    private sealed class PackJob : IParallelWork
    {
        private const int Per = 64;
        private WeightRef _src;
        private PackedRef _dst;
        public int Items;

        public void Set(in WeightRef src, in PackedRef dst)
        {
            _src = src; _dst = dst;
            Items = (dst.Groups + Per - 1) / Per;
        }

        public void Execute(int item, int worker) => Packing.Pack(_src, _dst, item * Per, Math.Min(_dst.Groups, (item + 1) * Per));
    }

    private sealed class GemmJob(CpuBackend be) : IParallelWork
    {
        private WeightRef _w;
        private CpuTensor _x = null!;
        private QuantAct? _qa;
        private Epilogue2D _epi;
        private bool _int8;
        public int Items;

        public void Set(in WeightRef w, CpuTensor x, QuantAct? qa, in Epilogue2D epi, bool int8, int nr)
        {
            _w = w; _x = x; _qa = qa; _epi = epi; _int8 = int8;
            Items = (w.Rows + nr - 1) / nr;
        }

        public void Execute(int item, int worker)
        {
            byte* s = be._scratch[worker].Ptr;
            if (_int8) ProjGemm.Int8Panel(_w, item, _qa!, _x.Rows, _epi, s);
            else ProjGemm.FloatPanel(be.Level, _w, item, _x.Ptr, _x.Cols, _x.Rows, _epi, (float*)s);
        }
    }

    private sealed class QuantizeJob : IParallelWork
    {
        private QuantAct _qa = null!;
        private CpuTensor _x = null!;
        public void Set(QuantAct qa, CpuTensor x) { _qa = qa; _x = x; }
        public void Execute(int item, int worker) => _qa.QuantizeRow(item, _x.RowPtr(item));
    }

    private sealed class CellJob(CpuBackend be) : IParallelWork
    {
        private ModelConfig _c = null!;
        private CpuTensor _x = null!, _g = null!, _h = null!;
        private CpuState _s = null!;
        private int _block;
        private bool _rows;

        /// <param name="rows">Items are (row, head) pairs, row r one token of the sequence in slot r (see
        /// <see cref="MlstmStepRows"/>); otherwise items are heads over all the rows of one sequence.</param>
        public void Set(ModelConfig c, CpuTensor x, CpuTensor g, CpuState s, int block, CpuTensor h, bool rows)
        {
            _c = c; _x = x; _g = g; _s = s; _block = block; _h = h; _rows = rows;
        }

        public void Execute(int item, int worker)
        {
            if (_rows) StepRow(item / _c.Heads, item % _c.Heads);
            else Heads(item, worker);
        }

        private void StepRow(int r, int hd)
        {
            var c = _c;
            int NH = c.Heads, dqk = c.DQk, dv = c.DV;
            float* S = _s.Ptr + r * c.StateFloats + _block * c.StateFloatsPerBlock;
            float* x = _x.RowPtr(r), g = _g.RowPtr(r);
            float cap = c.GateSoftCap;
            float ig = cap * MathF.Tanh(g[hd] / cap), fg = cap * MathF.Tanh(g[NH + hd] / cap);
            MlstmKernels.Step(be.Level, S + (long)hd * dqk * dv, S + (long)NH * dqk * dv + hd * dqk,
                ref S[(long)NH * dqk * dv + NH * dqk + hd], x + hd * dqk, x + c.QkDim + hd * dqk, x + 2 * c.QkDim + hd * dv,
                dqk, dv, ig, fg, c.CellEps, _h.RowPtr(r) + hd * dv);
        }

        private void Heads(int hd, int worker)
        {
            var c = _c;
            int T = _x.Rows, NH = c.Heads, dqk = c.DQk, dv = c.DV, L = c.ChunkSize;
            float* S = _s.Ptr + _block * c.StateFloatsPerBlock;
            float* C = S + (long)hd * dqk * dv;
            float* n = S + (long)NH * dqk * dv + hd * dqk;
            ref float m = ref S[(long)NH * dqk * dv + NH * dqk + hd];
            float cap = c.GateSoftCap;
            long ldx = _x.Cols, ldh = _h.Cols, ldg = _g.Cols;
            float* q = _x.Ptr + hd * dqk, k = _x.Ptr + c.QkDim + hd * dqk, v = _x.Ptr + 2 * c.QkDim + hd * dv;
            float* h = _h.Ptr + hd * dv;
            float* gi = _g.Ptr + hd, gf = _g.Ptr + NH + hd;
            if (T == 1)
            {
                float ig = cap * MathF.Tanh(*gi / cap), fg = cap * MathF.Tanh(*gf / cap);
                MlstmKernels.Step(be.Level, C, n, ref m, q, k, v, dqk, dv, ig, fg, c.CellEps, h);
                return;
            }
            int Lmax = Math.Min(L, T);
            float* scratch = (float*)be._scratch[worker].Ptr;
            float* igs = scratch + (MlstmKernels.ChunkScratch(Lmax, dqk) - 2L * Lmax - 16);
            float* fgs = igs + Lmax;
            for (int t0 = 0; t0 < T; t0 += L)
            {
                int len = Math.Min(L, T - t0);
                for (int j = 0; j < len; j++)
                {
                    igs[j] = cap * MathF.Tanh(gi[(t0 + j) * ldg] / cap);
                    fgs[j] = cap * MathF.Tanh(gf[(t0 + j) * ldg] / cap);
                }
                MlstmKernels.Chunk(be.Level, C, n, ref m, len, dqk, dv, q + t0 * ldx, k + t0 * ldx, v + t0 * ldx, ldx,
                    igs, fgs, c.CellEps, h + t0 * ldh, ldh, scratch);
            }
        }
    }

    private enum RowOp { RmsNorm, HeadNormGate, SwiGlu, SoftCap }

    /// <summary>Row-wise ops: one item per token for several tokens; column ranges of the single row for one token.</summary>
    private sealed class RowsJob(CpuBackend be) : IParallelWork
    {
        private RowOp _op;
        private CpuTensor _a = null!, _d = null!;
        private CpuTensor? _b;
        private CpuWeight? _w;
        private float _f;
        private int _i0, _i1;
        private int _colsPer;
        public int Items;

        public void Set(RowOp op, CpuTensor a, CpuTensor? b, CpuTensor d, CpuWeight? w, float f, int i0, int i1 = 0)
        {
            _op = op; _a = a; _b = b; _d = d; _w = w; _f = f; _i0 = i0; _i1 = i1;
            int T = a.Rows;
            if (T > 1) { Items = T; _colsPer = 0; return; }
            // one token: split the elementwise ops with transcendental functions across threads
            int n = op == RowOp.SwiGlu ? d.Cols : op == RowOp.SoftCap ? a.Cols : 0;
            if (n < 4096) { Items = 1; _colsPer = 0; return; }
            Items = be.Threads * 2;
            _colsPer = ((n + Items - 1) / Items + 15) & ~15;
            Items = (n + _colsPer - 1) / _colsPer;
        }

        public void Execute(int item, int worker)
        {
            var l = be.Level;
            int t = _colsPer == 0 ? item : 0;
            switch (_op)
            {
                case RowOp.RmsNorm:
                    Ops.RmsNorm(l, _a.RowPtr(t), _w!.FloatPtr, _d.RowPtr(t), _a.Cols, _f);
                    break;
                case RowOp.HeadNormGate:
                {
                    int heads = _i1;
                    Ops.HeadNormGate(l, _a.RowPtr(t), _b!.RowPtr(t) + _i0, _w!.FloatPtr, _d.RowPtr(t), heads, _a.Cols / heads, _f);
                    break;
                }
                case RowOp.SwiGlu:
                {
                    int F = _d.Cols;
                    var (j0, j1) = Range(item, F);
                    float* g = _a.RowPtr(t);
                    Ops.SwiGlu(l, g, g + F, _d.RowPtr(t), j0, j1);
                    break;
                }
                case RowOp.SoftCap:
                {
                    var (j0, j1) = Range(item, _a.Cols);
                    Ops.SoftCap(_a.RowPtr(t), j0, j1, _f);
                    break;
                }
            }
        }

        private (int, int) Range(int item, int n) => _colsPer == 0 ? (0, n) : (item * _colsPer, Math.Min(n, (item + 1) * _colsPer));
    }
}
