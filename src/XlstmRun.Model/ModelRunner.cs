using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;

namespace XlstmRun.Model;

public enum LogitsMode { None, Last, All }

/// <summary>
/// The xLSTM model definition: the sequence of ops of a forward pass, executed by any <see cref="IBackend"/>.
/// Holds the weights (prepared by the backend), the activation buffers and the recurrent state.
/// </summary>
public sealed class ModelRunner : IDisposable
{
    private readonly IBackend _be;
    private readonly ModelConfig _c;
    private readonly BlockWeights[] _blocks;
    private readonly IWeight _embd, _out;
    private readonly IWeight? _outNorm;
    private readonly int _maxBatch;
    // activations for a batch of up to _maxBatch tokens
    private readonly ITensor _x, _a, _qkvo, _gates, _h, _g, _gu, _s, _xf, _logits;
    private readonly ITokenBuffer _tokens;
    private readonly IIndexBuffer _argmax;

    private sealed record BlockWeights(IWeight AttnNorm, IWeight Qkvo, IWeight Gates, IWeight GatesBias, IWeight HeadNorm,
        IWeight Out, IWeight FfnNorm, IWeight GateUp, IWeight Down);

    public ModelConfig Config => _c;
    public IBackend Backend => _be;
    public IStateBuffer State { get; }
    /// <summary>Tokens processed since the state was last reset or loaded.</summary>
    public long Position { get; set; }
    public int MaxBatch => _maxBatch;

    public ModelRunner(GgufFile file, IBackend backend, int maxBatch = 256, ModelConfig? config = null)
    {
        _be = backend;
        _c = config ?? ModelConfig.FromGguf(file);
        var c = _c;
        // Round the batch to whole chunks so that a long prompt is split exactly where the chunkwise form splits anyway.
        _maxBatch = Math.Max(c.ChunkSize, maxBatch / c.ChunkSize * c.ChunkSize);
        var shapes = TensorNames.All(c).ToDictionary(t => t.Name, t => t.Shape);
        IWeight W(string name) => _be.LoadWeight(file.Tensor(name, shapes[name]));
        _embd = W(TensorNames.TokenEmbd);
        _blocks = new BlockWeights[c.Blocks];
        for (int b = 0; b < c.Blocks; b++)
        {
            _blocks[b] = new BlockWeights(W(TensorNames.AttnNorm(b)), W(TensorNames.Qkvo(b)), W(TensorNames.Gates(b)),
                W(TensorNames.GatesBias(b)), W(TensorNames.HeadNorm(b)), W(TensorNames.Out(b)), W(TensorNames.FfnNorm(b)),
                W(TensorNames.FfnGateUp(b)), W(TensorNames.FfnDown(b)));
        }
        _outNorm = c.AddOutNorm ? W(TensorNames.OutputNorm) : null;
        _out = W(TensorNames.Output);

        int T = _maxBatch;
        _x = _be.Alloc(T, c.Hidden);
        _a = _be.Alloc(T, c.Hidden);
        _qkvo = _be.Alloc(T, c.QkvoDim);
        _gates = _be.Alloc(T, 2 * c.Heads);
        _h = _be.Alloc(T, c.VDim);
        _g = _be.Alloc(T, c.VDim);
        _gu = _be.Alloc(T, 2 * c.FfnDim);
        _s = _be.Alloc(T, c.FfnDim);
        _xf = _be.Alloc(T, c.Hidden);
        _logits = _be.Alloc(T, c.Vocab);
        _tokens = _be.AllocTokens(T);
        _argmax = _be.AllocIndices(T);
        State = _be.AllocState(c);
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
        foreach (var id in ids)
            if ((uint)id >= (uint)_c.Vocab) throw new BadInputException($"token id {id} is out of range (vocabulary size {_c.Vocab})");
        long need = mode switch { LogitsMode.All => (long)ids.Length * _c.Vocab, LogitsMode.Last => _c.Vocab, _ => 0 };
        if (logits.Length < need) throw new ArgumentException("logits buffer too small");
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

    /// <summary>Feed one token and return the greedy next token (argmax over the first <paramref name="validVocab"/> logits).</summary>
    public int StepGreedy(int id, int validVocab)
    {
        if ((uint)id >= (uint)_c.Vocab) throw new BadInputException($"token id {id} is out of range (vocabulary size {_c.Vocab})");
        Span<int> one = [id];
        _be.WriteTokens(_tokens, one);
        _be.Replay("step-greedy", () =>
        {
            var logits = Body(1, LogitsMode.Last)!;
            _be.Argmax(logits, validVocab, _argmax);
        });
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
        _be.WriteTokens(_tokens, ids);
        ITensor? head;
        if (n == 1)
        {
            // Same ops for every single-token step: a GPU backend records them once and replays them.
            _be.Replay("step-" + mode, () => Body(1, mode));
            head = mode == LogitsMode.None ? null : _be.Rows(_logits, 0, 1);
        }
        else
            head = Body(n, mode);
        Position += n;
        return head;
    }

    /// <summary>The forward pass of <paramref name="n"/> tokens (already in the token buffer). Returns the logits rows.</summary>
    private ITensor? Body(int n, LogitsMode mode)
    {
        var be = _be;
        var c = _c;
        ITensor x = be.Rows(_x, 0, n), a = be.Rows(_a, 0, n), qkvo = be.Rows(_qkvo, 0, n), gates = be.Rows(_gates, 0, n);
        ITensor h = be.Rows(_h, 0, n), g = be.Rows(_g, 0, n), gu = be.Rows(_gu, 0, n), s = be.Rows(_s, 0, n);
        be.Embed(_embd, _tokens, x);
        for (int b = 0; b < c.Blocks; b++)
        {
            var w = _blocks[b];
            // mLSTM sub-block: x += W_out · (sigmoid(o) ⊙ MultiHeadLayerNorm(cell(q, k, v, i, f)))
            be.RmsNorm(x, w.AttnNorm, a, c.NormEps);
            be.MatMul(w.Qkvo, a, qkvo);
            be.MatMul(w.Gates, a, gates, w.GatesBias);
            be.MlstmCell(c, qkvo, gates, State, b, h);
            be.HeadNormGate(c, h, qkvo, w.HeadNorm, g);
            be.MatMul(w.Out, g, x, accumulate: true);
            // FFN sub-block: x += W_down · (silu(W_gate · c) ⊙ W_up · c)
            be.RmsNorm(x, w.FfnNorm, a, c.NormEps);
            be.MatMul(w.GateUp, a, gu);
            be.SwiGlu(gu, s);
            be.MatMul(w.Down, s, x, accumulate: true);
        }
        if (mode == LogitsMode.None) return null;
        int r0 = mode == LogitsMode.Last ? n - 1 : 0, rn = mode == LogitsMode.Last ? 1 : n;
        var xr = be.Rows(_x, r0, rn);
        var xf = be.Rows(_xf, 0, rn);
        var logits = be.Rows(_logits, 0, rn);
        if (_outNorm != null) be.RmsNorm(xr, _outNorm, xf, c.NormEps);
        else xf = xr;
        be.MatMul(_out, xf, logits);
        be.SoftCap(logits, c.LogitSoftCap);
        return logits;
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

    public void Dispose() { }
}
