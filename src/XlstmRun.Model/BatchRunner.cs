namespace XlstmRun.Model;

/// <summary>
/// The multi-sequence engine: <see cref="Slots"/> sequences share the model's weights, each with its own slot of one
/// recurrent state. A decode step advances every slot by one token in one forward pass (the matrix products take
/// Slots rows instead of one, so the weights are read once for all sequences). A slot is (re)filled with a new
/// sequence by <see cref="Reset"/> and a prefill through <see cref="Slot"/> (a one-sequence runner on that slot),
/// while the other slots keep their state.
/// </summary>
public sealed class BatchRunner : IDisposable
{
    private readonly ModelWeights _w;
    private readonly IBackend _be;
    private readonly ModelConfig _c;
    private readonly ModelRunner?[] _slots;
    private readonly int? _maxBatch;
    private readonly ModelRunner.Workspace _ws;
    // the slots' prefill activations: one set for all of them (they feed one at a time), kept for the runner's life
    private readonly ModelRunner.SharedWorkspace _prefill = new();
    private readonly IIndexBuffer _argmax;
    private ForwardPlan? _plan;
    private int _planVocab;
    private static int _nextId;
    private readonly string _id = "b" + Interlocked.Increment(ref _nextId);

    public BatchRunner(ModelWeights weights, int slots, int? maxBatch = null)
    {
        if (slots < 1) throw new ArgumentOutOfRangeException(nameof(slots));
        _w = weights;
        _be = weights.Backend;
        _c = weights.Config;
        _maxBatch = maxBatch;
        Slots = slots;
        _slots = new ModelRunner?[slots];
        _ws = ModelRunner.NewWorkspace(_be, _c, slots);
        _ws.Logits = _be.Alloc(slots, _c.Vocab);
        _ws.Xf = _be.Alloc(slots, _c.Hidden);
        _argmax = _be.AllocIndices(slots);
        State = _be.AllocState(_c, slots);
    }

    public int Slots { get; }
    public ModelConfig Config => _c;
    /// <summary>Every slot's state.</summary>
    public IStateBuffer State { get; }

    /// <summary>A one-sequence runner on slot <paramref name="slot"/>'s state (prefill, state save/load of that slot).</summary>
    public ModelRunner Slot(int slot)
    {
        if ((uint)slot >= (uint)Slots) throw new ArgumentOutOfRangeException(nameof(slot));
        return _slots[slot] ??= new ModelRunner(_w, _be.StateSlot(State, slot), _maxBatch, _prefill);
    }

    /// <summary>Empty slot <paramref name="slot"/> for a new sequence.</summary>
    public void Reset(int slot) => Slot(slot).ResetState();

    /// <summary>
    /// One decode step of every slot: <paramref name="tokens"/>[r] is fed to slot r (a slot without a sequence takes any
    /// valid id; its state is reset before reuse). Writes the greedy next id of each slot (over the first
    /// <paramref name="validVocab"/> logits) to <paramref name="argmax"/>, and, when <paramref name="logits"/> is not
    /// empty, every slot's logits [Slots, Vocab].
    /// </summary>
    public void Step(ReadOnlySpan<int> tokens, int validVocab, Span<int> argmax, Span<float> logits)
    {
        if (tokens.Length != Slots || argmax.Length < Slots) throw new ArgumentException("one token and one result per slot");
        if (validVocab <= 0 || validVocab > _c.Vocab) throw new ArgumentOutOfRangeException(nameof(validVocab));
        foreach (var id in tokens)
            if ((uint)id >= (uint)_c.Vocab) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {id} is out of range (vocabulary size {_c.Vocab})");
        if (_plan == null || _planVocab != validVocab)
        {
            _plan = new ForwardPlan($"{_id}-step-{Slots}-{validVocab}", Slots,
                ModelRunner.BuildPlan(_w, _ws, Slots, LogitsMode.All, State, multiSequence: true, (_argmax, validVocab)));
            _planVocab = validVocab;
        }
        _be.WriteTokens(_ws.Tokens, tokens);
        var plan = _plan;
        _be.Replay(plan.Key, () => _be.Run(plan));
        _be.ReadIndices(_argmax, argmax[..Slots]);
        if (!logits.IsEmpty)
        {
            if (logits.Length < (long)Slots * _c.Vocab) throw new ArgumentException("logits buffer too small");
            _be.Read(_ws.Logits!, logits);
        }
        foreach (var r in _slots) if (r != null) r.Position++;
    }

    public void Dispose()
    {
        foreach (var r in _slots) r?.Dispose();
        _prefill.Release(_be);
    }
}
