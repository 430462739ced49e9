using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;

namespace XlstmRun.Model;

/// <summary>A float32 activation matrix [Rows, Cols], row-major, owned by a backend. Views share storage.</summary>
public interface ITensor
{
    int Rows { get; }
    int Cols { get; }
}

/// <summary>A weight matrix [Rows, Cols] (or vector: Rows = 1) in one of the GGUF types, prepared by a backend.</summary>
public interface IWeight
{
    string Name { get; }
    GgmlType Type { get; }
    int Rows { get; }
    int Cols { get; }
}

/// <summary>Token ids on the backend (input of <see cref="IBackend.Embed"/>).</summary>
public interface ITokenBuffer
{
    int Capacity { get; }
}

/// <summary>Integer results on the backend (output of <see cref="IBackend.Argmax"/>).</summary>
public interface IIndexBuffer
{
    int Capacity { get; }
}

/// <summary>
/// The recurrent state of every block of one sequence (or of several: <see cref="Slots"/>), on the backend. Flat layout per
/// block b (offset b·StateFloatsPerBlock): C [NH, dqk, dv] row-major, then n [NH, dqk], then m [NH]. Same layout in
/// state files and on every backend; slot s of a multi-sequence state holds one such state.
/// </summary>
public interface IStateBuffer
{
    ModelConfig Config { get; }
    /// <summary>Sequences held (multi-sequence engine, <see cref="IBackend.StateSlot"/>); 1 for a single sequence.</summary>
    int Slots => 1;
}

/// <summary>
/// What a backend implements: storage and the ops of the model, nothing else. The sequence of ops (the model) lives in
/// <see cref="ModelRunner"/>; every backend executes that same sequence. Ops may run eagerly (CPU) or be recorded and
/// submitted at the next read (GPU); reads (<see cref="Read"/>, <see cref="ReadIndices"/>, <see cref="ReadState"/>)
/// are the synchronisation points.
/// </summary>
public interface IBackend : IDisposable
{
    string Name { get; }
    /// <summary>One line describing the device (for `info` and bench tables).</summary>
    string Device { get; }

    IWeight LoadWeight(TensorView t);
    ITensor Alloc(int rows, int cols);
    /// <summary>A view of rows [row0, row0+rows) of <paramref name="t"/>.</summary>
    ITensor Rows(ITensor t, int row0, int rows);
    ITokenBuffer AllocTokens(int capacity);
    IIndexBuffer AllocIndices(int capacity);
    /// <summary>The recurrent state of <paramref name="slots"/> sequences (zeros).</summary>
    IStateBuffer AllocState(ModelConfig config, int slots = 1);
    /// <summary>Slot <paramref name="slot"/> of a multi-sequence state as a one-sequence state that every op, read,
    /// write and reset takes (the slot's storage, not a copy).</summary>
    IStateBuffer StateSlot(IStateBuffer state, int slot);
    /// <summary>Release a tensor from <see cref="Alloc"/> (views of it must not be used afterwards). Default: nothing to do.</summary>
    void Free(ITensor t) { }
    /// <summary>Release a token buffer from <see cref="AllocTokens"/>. Default: nothing to do.</summary>
    void FreeTokens(ITokenBuffer t) { }
    /// <summary>Release scratch memory that only multi-token feeds need (called with the batch buffers). Default: none.</summary>
    void ReleaseScratch() { }

    void WriteTokens(ITokenBuffer dst, ReadOnlySpan<int> ids);
    void Read(ITensor src, Span<float> dst);
    void ReadIndices(IIndexBuffer src, Span<int> dst);
    void ReadState(IStateBuffer src, Span<float> dst);
    void WriteState(IStateBuffer dst, ReadOnlySpan<float> src);
    void ResetState(IStateBuffer dst);

    // ---- ops -------------------------------------------------------------------------------------------------------
    /// <summary>dst[t] = table[ids[t]] for t &lt; dst.Rows.</summary>
    void Embed(IWeight table, ITokenBuffer ids, ITensor dst);
    /// <summary>dst = x · rsqrt(mean(x²) + eps) · w, per row.</summary>
    void RmsNorm(ITensor x, IWeight w, ITensor dst, float eps);
    /// <summary>dst[t] (+)= W · x[t] (+ bias). W is [dst.Cols, x.Cols].</summary>
    void MatMul(IWeight w, ITensor x, ITensor dst, IWeight? bias = null, bool accumulate = false);
    /// <summary>
    /// The mLSTM cell of one block over x.Rows tokens in order, carrying <paramref name="state"/>: gate soft-cap, then the
    /// chunkwise-parallel form in chunks of config.ChunkSize (one token: the recurrent step form). qkvo is [T, QkvoDim]
    /// (q|k|v|o), gates is [T, 2·NH] (i|f pre-activations), h is [T, VDim].
    /// </summary>
    void MlstmCell(ModelConfig config, ITensor qkvo, ITensor gates, IStateBuffer state, int block, ITensor h);
    /// <summary>
    /// One step of the mLSTM cell for several sequences: row r of qkvo/gates is the next token of the sequence in slot r
    /// of <paramref name="state"/>, h row r its output (the multi-sequence decode step). The default runs the one-token
    /// cell on each row and slot view.
    /// </summary>
    void MlstmStepRows(ModelConfig config, ITensor qkvo, ITensor gates, IStateBuffer state, int block, ITensor h)
    {
        if (qkvo.Rows > state.Slots) throw new ArgumentException("more rows than state slots");
        for (int r = 0; r < qkvo.Rows; r++)
            MlstmCell(config, Rows(qkvo, r, 1), Rows(gates, r, 1), StateSlot(state, r), block, Rows(h, r, 1));
    }
    /// <summary>dst = LayerNormPerHead(h) · w · sigmoid(o), o = qkvo[:, OOffset..OOffset+VDim].</summary>
    void HeadNormGate(ModelConfig config, ITensor h, ITensor qkvo, IWeight w, ITensor dst);
    /// <summary>dst[t, j] = silu(gu[t, j]) · gu[t, F + j], F = dst.Cols.</summary>
    void SwiGlu(ITensor gateUp, ITensor dst);
    /// <summary>x = cap · tanh(x / cap), in place.</summary>
    void SoftCap(ITensor x, float cap);
    /// <summary>dst[t] = argmax over the first <paramref name="validCols"/> columns of row t.</summary>
    void Argmax(ITensor x, int validCols, IIndexBuffer dst);

    /// <summary>
    /// Runs <paramref name="record"/>, whose ops must be identical on every call with the same key (only buffer contents
    /// change). A GPU backend records them once and replays the recording; the CPU backend simply runs them.
    /// </summary>
    void Replay(string key, Action record);

    /// <summary>Run the ops of a forward pass. The default runs them one by one through the op entry points above; a
    /// backend may compile the plan into fused kernels instead (same results within its precision policy).</summary>
    void Run(ForwardPlan plan) => plan.RunUnfused(this);

    /// <summary>Whether a feed of <paramref name="tokens"/> prompt tokens may share one pass with other sequences' prompts
    /// (<see cref="BatchRunner.Prefill"/>) and still give each of its tokens the bits of the feed alone: null = no (it is fed
    /// alone); else prompts of the same <c>Class</c> go together (<see cref="ForwardPlan.PackClass"/>), at most
    /// <c>MaxTokens</c> per pass. Default: null.</summary>
    (int Class, int MaxTokens)? Packing(ModelWeights weights, int tokens) => null;

    /// <summary>Tokens per forward pass that suit this backend for long feeds (ModelRunner's default batch).</summary>
    int PreferredBatch => 256;

    /// <summary>True when ModelRunner should release the multi-token activation buffers after each feed (device memory
    /// is scarce; allocation is cheap next to a prefill). Default false.</summary>
    bool TransientBatchBuffers => false;

    /// <summary>What activations become inside a matrix product with weights of <paramref name="weightType"/> over
    /// <paramref name="tokens"/> tokens (the precision policy, docs/precision.md). Default: float32.</summary>
    ActivationPrecision MatMulActivations(GgmlType weightType, int tokens) => ActivationPrecision.Float32;
}

/// <summary>The precision of activations inside a matrix product (see docs/precision.md).</summary>
public enum ActivationPrecision
{
    /// <summary>float32 operands, float32 accumulation: the exact path.</summary>
    Float32,
    /// <summary>Activations (and weights) rounded to float16 inside the product, float32 accumulation (tensor cores).</summary>
    Float16,
    /// <summary>Activations quantized to 8 bits per block of 32 (integer dot products), for Q8_0/Q4_0 weights.</summary>
    Int8,
}
