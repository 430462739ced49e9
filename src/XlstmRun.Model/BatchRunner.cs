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

    /// <summary>Prompts that went through a packed pass (<see cref="Prefill"/>) and those fed alone, so far.</summary>
    public int PackedPrompts { get; private set; }
    public int AlonePrompts { get; private set; }

    /// <summary>
    /// Feeds each (slot, ids) into its slot, carrying the slot's state, without logits. Prompts the backend packs
    /// (<see cref="IBackend.Packing"/>) share forward passes with the others of their class: the weights are read once for
    /// all of them, each prompt's cell runs on its own rows and state, and every token gets the bits of its prompt fed
    /// alone. The others (and a prompt alone in its class) are fed one at a time.
    /// </summary>
    public void Prefill(IReadOnlyList<(int Slot, int[] Ids)> prompts)
    {
        var classes = new SortedDictionary<int, (int Max, List<(int Slot, int[] Ids)> Prompts)>();
        foreach (var p in prompts)
        {
            if ((uint)p.Slot >= (uint)Slots) throw new ArgumentOutOfRangeException(nameof(prompts), $"slot {p.Slot}");
            if (p.Ids.Length == 0) continue;
            if (prompts.Count > 1 && _be.Packing(_w, p.Ids.Length) is var (cls, max) && p.Ids.Length <= max)
            {
                if (!classes.TryGetValue(cls, out var c)) classes[cls] = c = (max, new());
                c.Prompts.Add(p);
            }
            else Alone(p);
        }
        foreach (var (cls, (max, pack)) in classes)
            for (int i = 0; i < pack.Count;)
            {
                int j = i, n = 0;
                while (j < pack.Count && n + pack[j].Ids.Length <= max) n += pack[j++].Ids.Length;
                if (j == i + 1) Alone(pack[i]);
                else
                {
                    PackedPass(pack.GetRange(i, j - i), n, cls);
                    PackedPrompts += j - i;
                }
                i = j;
            }
        // a GPU backend records the passes and runs them at the next read: wait here, so that the prefill's time is its own
        // (the batch summary reports prefill and steps apart), not the next step's
        if (prompts.Count > 0) _be.Read(_be.Rows(_ws.X, 0, 1), new float[_c.Hidden]);
    }

    private void Alone((int Slot, int[] Ids) p)
    {
        Slot(p.Slot).Forward(p.Ids, LogitsMode.None, default);
        AlonePrompts++;
    }

    private void PackedPass(List<(int Slot, int[] Ids)> pass, int n, int packClass)
    {
        foreach (var (_, p) in pass) ModelRunner.CheckIds(p, _c.Vocab);
        // the slots' shared prefill workspace, grown to whole chunks of this pass if needed (the slot runners drop their
        // plans that name the old buffers: SharedWorkspace.Version)
        if (_prefill.Ws != null && _prefill.Ws.Capacity < n) _prefill.Release(_be);
        _prefill.Ws ??= ModelRunner.NewWorkspace(_be, _c, (n + _c.ChunkSize - 1) / _c.ChunkSize * _c.ChunkSize);
        var ws = _prefill.Ws;
        var ids = new int[n];
        var segments = new List<(int Start, int Length, IStateBuffer State)>(pass.Count);
        int at = 0;
        foreach (var (slot, p) in pass)
        {
            p.CopyTo(ids, at);
            segments.Add((at, p.Length, Slot(slot).State));
            at += p.Length;
        }
        _be.WriteTokens(ws.Tokens, ids);
        var plan = new ForwardPlan($"{_id}-packed", n, ModelRunner.BuildPlan(_w, ws, n, LogitsMode.None, State, false, null, segments), packClass);
        _be.Run(plan);
        foreach (var (slot, p) in pass) Slot(slot).Position += p.Length;
    }

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
