using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;

namespace XlstmRun.Model;

public enum LogitsMode { None, Last, All }

/// <summary>
/// The xLSTM model definition: the sequence of ops of a forward pass (<see cref="BuildPlan"/>), executed by any
/// <see cref="IBackend"/>. Holds the weights (prepared by the backend), the activation buffers and the recurrent state.
/// </summary>
public sealed class ModelRunner : IDisposable
{
    private readonly IBackend _be;
    private readonly ModelConfig _c;
    private readonly ModelWeights _w;
    private readonly int _maxBatch;
    // Activations: one workspace for single-token steps (kept), one for batches of up to _maxBatch tokens (allocated at
    // the first multi-token feed; released after each feed where the backend asks for it, so that decode memory stays
    // weights + state + the step workspace).
    private readonly Workspace _step;
    private Workspace? _batch;
    // or a batch workspace shared with other runners (BatchRunner's slots), kept between feeds
    private readonly SharedWorkspace? _shared;
    private int _sharedVersion;
    private readonly IIndexBuffer _argmax;
    private readonly Dictionary<string, ForwardPlan> _plans = new();
    // plan keys are replay keys of the backend: unique per runner (several runners may share a backend and its weights)
    private static int _nextId;
    private readonly string _id = "r" + Interlocked.Increment(ref _nextId);

    /// <summary>Activation buffers for up to <see cref="Capacity"/> tokens; logits rows allocated on first use.</summary>
    internal sealed class Workspace
    {
        public required int Capacity { get; init; }
        public required ITensor X, A, Qkvo, Gates, H, G, Gu, S;
        public required ITokenBuffer Tokens;
        public ITensor? Xf, Logits;

        public IEnumerable<ITensor> All()
        {
            foreach (var t in new[] { X, A, Qkvo, Gates, H, G, Gu, S }) yield return t;
            if (Xf != null) yield return Xf;
            if (Logits != null) yield return Logits;
        }
    }

    /// <summary>
    /// A batch workspace for several runners that never feed at the same time (the slots of a <see cref="BatchRunner"/>):
    /// kept between feeds, so a new prompt allocates and clears nothing and finds its descriptor sets and recorded
    /// plans; grown when a longer feed comes. <see cref="Version"/> changes whenever buffers are replaced: a runner drops
    /// its plans that name the old ones before its next feed.
    /// </summary>
    internal sealed class SharedWorkspace
    {
        public Workspace? Ws;
        public int Version;

        public void Release(IBackend be)
        {
            if (Ws == null) return;
            foreach (var t in Ws.All()) be.Free(t);
            be.FreeTokens(Ws.Tokens);
            Ws = null;
            Version++;
        }
    }

    public ModelConfig Config => _c;
    public IBackend Backend => _be;
    public ModelWeights Weights => _w;
    public IStateBuffer State { get; }
    /// <summary>Tokens processed since the state was last reset or loaded.</summary>
    public long Position { get; set; }

    /// <param name="maxBatch">Tokens per forward pass of a long feed (rounded to whole chunks); default: the backend's
    /// <see cref="IBackend.PreferredBatch"/>.</param>
    public ModelRunner(GgufFile file, IBackend backend, int? maxBatch = null, ModelConfig? config = null)
        : this(new ModelWeights(file, backend, config), null, maxBatch)
    {
    }

    /// <summary>A runner over weights already on the backend, with its own state (a new one, or
    /// <paramref name="state"/>: e.g. one slot of a multi-sequence state).</summary>
    public ModelRunner(ModelWeights weights, IStateBuffer? state, int? maxBatch = null)
        : this(weights, state, maxBatch, null)
    {
    }

    internal ModelRunner(ModelWeights weights, IStateBuffer? state, int? maxBatch, SharedWorkspace? shared)
    {
        _shared = shared;
        _w = weights;
        _be = weights.Backend;
        _c = weights.Config;
        var c = _c;
        // Round the batch to whole chunks so that a long prompt is split exactly where the chunkwise form splits anyway.
        int mb = maxBatch ?? _be.PreferredBatch;
        _maxBatch = Math.Max(c.ChunkSize, mb / c.ChunkSize * c.ChunkSize);
        _step = NewWorkspace(_be, c, 1);
        _argmax = _be.AllocIndices(1);
        State = state ?? _be.AllocState(c);
    }

    internal static Workspace NewWorkspace(IBackend be, ModelConfig c, int T)
    {
        var _be = be;
        return new Workspace
        {
            Capacity = T,
            X = _be.Alloc(T, c.Hidden), A = _be.Alloc(T, c.Hidden), Qkvo = _be.Alloc(T, c.QkvoDim), Gates = _be.Alloc(T, 2 * c.Heads),
            H = _be.Alloc(T, c.VDim), G = _be.Alloc(T, c.VDim), Gu = _be.Alloc(T, 2 * c.FfnDim), S = _be.Alloc(T, c.FfnDim),
            Tokens = _be.AllocTokens(T),
        };
    }

    private void ReleaseBatch()
    {
        if (_shared != null)
        {
            DropBatchPlans();
            return;
        }
        if (_batch == null) return;
        foreach (var t in _batch.All()) _be.Free(t);
        _be.FreeTokens(_batch.Tokens);
        _be.ReleaseScratch();
        _batch = null;
        DropBatchPlans();
    }

    private void DropBatchPlans()
    {
        foreach (var k in _plans.Keys.Where(k => k.StartsWith(_id + "-batch", StringComparison.Ordinal)).ToList()) _plans.Remove(k);
    }

    public void ResetState()
    {
        _be.ResetState(State);
        Position = 0;
    }

    /// <summary>
    /// Feed <paramref name="ids"/> through the model, carrying the state. Logits (after the soft-cap) go to
    /// <paramref name="logits"/>: [ids.Length, Vocab] for All, [Vocab] for Last, nothing for None.
    /// </summary>
    public void Forward(ReadOnlySpan<int> ids, LogitsMode mode, Span<float> logits)
    {
        if (ids.Length == 0) throw new BadInputException("no token ids given");
        CheckIds(ids, _c.Vocab);
        long need = mode switch { LogitsMode.All => (long)ids.Length * _c.Vocab, LogitsMode.Last => _c.Vocab, _ => 0 };
        if (logits.Length < need) throw new ArgumentException("logits buffer too small");
        try
        {
            for (int start = 0; start < ids.Length; start += _maxBatch)
            {
                int n = Math.Min(_maxBatch, ids.Length - start);
                bool lastBatch = start + n == ids.Length;
                var m = mode == LogitsMode.All ? LogitsMode.All : mode == LogitsMode.Last && lastBatch ? LogitsMode.Last : LogitsMode.None;
                var headRows = RunBatch(ids.Slice(start, n), m);
                if (m == LogitsMode.All) _be.Read(headRows!, logits.Slice(start * _c.Vocab, n * _c.Vocab));
                else if (m == LogitsMode.Last) _be.Read(headRows!, logits[.._c.Vocab]);
            }
        }
        finally
        {
            if (_be.TransientBatchBuffers && _shared == null) ReleaseBatch();
        }
    }

    /// <summary>Every id must be a row of the embedding: else a one-line input error naming the first that is not.</summary>
    internal static void CheckIds(ReadOnlySpan<int> ids, int vocab)
    {
        foreach (var id in ids)
            if ((uint)id >= (uint)vocab) throw new BadInputException($"token id {id} is out of range (vocabulary size {vocab})");
    }

    /// <summary>Feed one token and return the greedy next token (argmax over the first <paramref name="validVocab"/> logits).</summary>
    public int StepGreedy(int id, int validVocab)
    {
        Span<int> one = [id];
        CheckIds(one, _c.Vocab);
        if (validVocab <= 0 || validVocab > _c.Vocab) throw new ArgumentOutOfRangeException(nameof(validVocab));
        _be.WriteTokens(_step.Tokens, one);
        var plan = Plan(_step, 1, LogitsMode.Last, validVocab);
        _be.Replay(plan.Key, () => _be.Run(plan));
        Position++;
        Span<int> res = stackalloc int[1];
        _be.ReadIndices(_argmax, res);
        return res[0];
    }

    /// <summary>Feed tokens; return the greedy next token after the last one.</summary>
    public int ForwardGreedy(ReadOnlySpan<int> ids, int validVocab)
    {
        if (ids.Length == 1) return StepGreedy(ids[0], validVocab);
        if (ids.Length > 1) Forward(ids[..^1], LogitsMode.None, default);
        return StepGreedy(ids[^1], validVocab);
    }

    private ITensor? RunBatch(ReadOnlySpan<int> ids, LogitsMode mode)
    {
        int n = ids.Length;
        ForwardPlan plan;
        Workspace ws;
        if (n == 1)
        {
            ws = _step;
            _be.WriteTokens(ws.Tokens, ids);
            // Same ops for every single-token step: a GPU backend records them once and replays them.
            plan = Plan(ws, 1, mode, 0);
            var p = plan;
            _be.Replay(p.Key, () => _be.Run(p));
        }
        else
        {
            // sized to the feed (whole chunks, at most the batch): a 20-token prompt does not allocate (and a GPU
            // backend does not clear) activations for thousands of tokens
            int capacity = Math.Min(_maxBatch, (n + _c.ChunkSize - 1) / _c.ChunkSize * _c.ChunkSize);
            if (_shared != null)
            {
                if (_shared.Ws != null && _shared.Ws.Capacity < n) _shared.Release(_be);
                _shared.Ws ??= NewWorkspace(_be, _c, capacity);
                if (_sharedVersion != _shared.Version) DropBatchPlans();
                _sharedVersion = _shared.Version;
                ws = _shared.Ws;
            }
            else
            {
                if (_batch != null && _batch.Capacity < n) ReleaseBatch();
                ws = _batch ??= NewWorkspace(_be, _c, capacity);
            }
            _be.WriteTokens(ws.Tokens, ids);
            plan = Plan(ws, n, mode, 0);
            _be.Run(plan);
        }
        Position += n;
        return mode == LogitsMode.None ? null : _be.Rows(ws.Logits!, 0, mode == LogitsMode.Last ? 1 : n);
    }

    /// <summary>The plan for <paramref name="n"/> tokens in workspace <paramref name="ws"/> (cached per shape); with
    /// <paramref name="argmaxVocab"/> &gt; 0 it ends with the greedy argmax of the last logits row.</summary>
    private ForwardPlan Plan(Workspace ws, int n, LogitsMode mode, int argmaxVocab)
    {
        string key = $"{_id}-{(ws == _step ? "step" : "batch")}-{n}-{mode}-{argmaxVocab}";
        if (_plans.TryGetValue(key, out var p)) return p;
        int headRows = mode switch { LogitsMode.All => ws.Capacity, LogitsMode.Last => 1, _ => 0 };
        if (headRows > 0 && (ws.Logits == null || ws.Logits.Rows < headRows))
        {
            if (ws.Logits != null)
            {
                _be.Free(ws.Logits);
                _be.Free(ws.Xf!);
                // cached plans of this workspace name the old buffers (a shared one: every sharing runner's)
                string prefix = $"{_id}-{(ws == _step ? "step" : "batch")}";
                foreach (var k in _plans.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).ToList()) _plans.Remove(k);
                if (_shared != null && ws == _shared.Ws) _sharedVersion = ++_shared.Version;
            }
            ws.Logits = _be.Alloc(headRows, _c.Vocab);
            ws.Xf = _be.Alloc(headRows, _c.Hidden);
        }
        p = new ForwardPlan(key, n, BuildPlan(ws, n, mode, argmaxVocab));
        _plans[key] = p;
        return p;
    }

    /// <summary>The forward pass of <paramref name="n"/> tokens (already in the workspace's token buffer), as ops.</summary>
    private List<PlanOp> BuildPlan(Workspace ws, int n, LogitsMode mode, int argmaxVocab) =>
        BuildPlan(_w, ws, n, mode, State, multiSequence: false, argmaxVocab > 0 ? (_argmax, argmaxVocab) : null);

    /// <summary>
    /// The model as a list of ops: <paramref name="n"/> tokens of one sequence carrying <paramref name="state"/>, or
    /// (<paramref name="multiSequence"/>) one token of each of n sequences, row r stepping slot r of the state, or
    /// (<paramref name="segments"/>) the prompts of several sequences, rows [Start, Start + Length) carrying State. Logits
    /// rows per <paramref name="mode"/>; with <paramref name="argmax"/>, the greedy ids of those rows too.
    /// </summary>
    internal static List<PlanOp> BuildPlan(ModelWeights wt, Workspace ws, int n, LogitsMode mode, IStateBuffer state, bool multiSequence,
        (IIndexBuffer Dst, int Vocab)? argmax, IReadOnlyList<(int Start, int Length, IStateBuffer State)>? segments = null)
    {
        var be = wt.Backend;
        var c = wt.Config;
        var ops = new List<PlanOp>(c.Blocks * 10 + 5);
        ITensor x = be.Rows(ws.X, 0, n), a = be.Rows(ws.A, 0, n), qkvo = be.Rows(ws.Qkvo, 0, n), gates = be.Rows(ws.Gates, 0, n);
        ITensor h = be.Rows(ws.H, 0, n), g = be.Rows(ws.G, 0, n), gu = be.Rows(ws.Gu, 0, n), s = be.Rows(ws.S, 0, n);
        ops.Add(new EmbedOp(wt.Embedding, ws.Tokens, x));
        for (int b = 0; b < c.Blocks; b++)
        {
            var w = wt.Blocks[b];
            // mLSTM sub-block: x += W_out · (sigmoid(o) ⊙ MultiHeadLayerNorm(cell(q, k, v, i, f)))
            ops.Add(new RmsNormOp(x, w.AttnNorm, a, c.NormEps, b));
            ops.Add(new MatMulOp(w.Qkvo, a, qkvo, null, false, b));
            ops.Add(new MatMulOp(w.Gates, a, gates, w.GatesBias, false, b));
            if (segments != null)
            {
                // packed prompts: the cell runs per sequence on its rows and its state
                foreach (var (start, len, st) in segments)
                    ops.Add(new MlstmCellOp(c, be.Rows(ws.Qkvo, start, len), be.Rows(ws.Gates, start, len), st, be.Rows(ws.H, start, len), b));
            }
            else ops.Add(multiSequence ? new MlstmStepRowsOp(c, qkvo, gates, state, h, b) : new MlstmCellOp(c, qkvo, gates, state, h, b));
            ops.Add(new HeadNormGateOp(c, h, qkvo, w.HeadNorm, g, b));
            ops.Add(new MatMulOp(w.Out, g, x, null, true, b));
            // FFN sub-block: x += W_down · (silu(W_gate · c) ⊙ W_up · c)
            ops.Add(new RmsNormOp(x, w.FfnNorm, a, c.NormEps, b));
            ops.Add(new MatMulOp(w.GateUp, a, gu, null, false, b));
            ops.Add(new SwiGluOp(gu, s, b));
            ops.Add(new MatMulOp(w.Down, s, x, null, true, b));
        }
        if (mode == LogitsMode.None) return ops;
        int r0 = mode == LogitsMode.Last ? n - 1 : 0, rn = mode == LogitsMode.Last ? 1 : n;
        var xr = be.Rows(ws.X, r0, rn);
        var logits = be.Rows(ws.Logits!, 0, rn);
        var xf = xr;
        if (wt.OutNorm != null)
        {
            xf = be.Rows(ws.Xf!, 0, rn);
            ops.Add(new RmsNormOp(xr, wt.OutNorm, xf, c.NormEps, -1));
        }
        ops.Add(new MatMulOp(wt.Output, xf, logits, null, false, -1));
        ops.Add(new SoftCapOp(logits, c.LogitSoftCap));
        if (argmax is var (dst, vocab)) ops.Add(new ArgmaxOp(logits, vocab, dst));
        return ops;
    }

    public float[] SaveState()
    {
        var s = new float[_c.StateFloats];
        _be.ReadState(State, s);
        return s;
    }

    public void LoadState(ReadOnlySpan<float> s, long position)
    {
        _be.WriteState(State, s);
        Position = position;
    }

    public void Dispose() => ReleaseBatch();
}
