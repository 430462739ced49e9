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
/// The recurrent state of every block, on the backend. Flat layout per block b (offset b·StateFloatsPerBlock):
/// C [NH, dqk, dv] row-major, then n [NH, dqk], then m [NH]. Same layout in state files and on every backend.
/// </summary>
public interface IStateBuffer
{
    ModelConfig Config { get; }
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
    IStateBuffer AllocState(ModelConfig config);

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
}
