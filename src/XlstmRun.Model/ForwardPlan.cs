namespace XlstmRun.Model;

/// <summary>
/// One op of a forward pass, with its operands. <see cref="ModelRunner"/> writes the model as a list of these
/// (<see cref="ForwardPlan"/>); a backend either runs them one by one (<see cref="RunOn"/>, the default of
/// <see cref="IBackend.Run"/>) or compiles the list into kernels of its own, fusing neighbours where it can.
/// Block is the model block the op belongs to (-1: embedding and head).
/// </summary>
public abstract record PlanOp(int Block)
{
    /// <summary>Run this op alone through the backend's op entry point.</summary>
    public abstract void RunOn(IBackend be);
    /// <summary>Tensors the op reads (weights excluded).</summary>
    public abstract IEnumerable<ITensor> Reads { get; }
    /// <summary>Tensors the op writes.</summary>
    public abstract IEnumerable<ITensor> Writes { get; }
}

public sealed record EmbedOp(IWeight Table, ITokenBuffer Ids, ITensor Dst) : PlanOp(-1)
{
    public override void RunOn(IBackend be) => be.Embed(Table, Ids, Dst);
    public override IEnumerable<ITensor> Reads => [];
    public override IEnumerable<ITensor> Writes => [Dst];
}

public sealed record RmsNormOp(ITensor X, IWeight W, ITensor Dst, float Eps, int Block) : PlanOp(Block)
{
    public override void RunOn(IBackend be) => be.RmsNorm(X, W, Dst, Eps);
    public override IEnumerable<ITensor> Reads => [X];
    public override IEnumerable<ITensor> Writes => [Dst];
}

public sealed record MatMulOp(IWeight W, ITensor X, ITensor Dst, IWeight? Bias, bool Accumulate, int Block) : PlanOp(Block)
{
    public override void RunOn(IBackend be) => be.MatMul(W, X, Dst, Bias, Accumulate);
    public override IEnumerable<ITensor> Reads => Accumulate ? [X, Dst] : [X];
    public override IEnumerable<ITensor> Writes => [Dst];
}

/// <summary>The mLSTM cell of one block (see <see cref="IBackend.MlstmCell"/>).</summary>
public sealed record MlstmCellOp(ModelConfig Config, ITensor Qkvo, ITensor Gates, IStateBuffer State, ITensor H, int Block) : PlanOp(Block)
{
    public override void RunOn(IBackend be) => be.MlstmCell(Config, Qkvo, Gates, State, Block, H);
    public override IEnumerable<ITensor> Reads => [Qkvo, Gates];
    public override IEnumerable<ITensor> Writes => [H];
}

/// <summary>One decode step of several sequences: row r uses state slot r (see <see cref="IBackend.MlstmStepRows"/>).</summary>
public sealed record MlstmStepRowsOp(ModelConfig Config, ITensor Qkvo, ITensor Gates, IStateBuffer State, ITensor H, int Block) : PlanOp(Block)
{
    public override void RunOn(IBackend be) => be.MlstmStepRows(Config, Qkvo, Gates, State, Block, H);
    public override IEnumerable<ITensor> Reads => [Qkvo, Gates];
    public override IEnumerable<ITensor> Writes => [H];
}

public sealed record HeadNormGateOp(ModelConfig Config, ITensor H, ITensor Qkvo, IWeight W, ITensor Dst, int Block) : PlanOp(Block)
{
    public override void RunOn(IBackend be) => be.HeadNormGate(Config, H, Qkvo, W, Dst);
    public override IEnumerable<ITensor> Reads => [H, Qkvo];
    public override IEnumerable<ITensor> Writes => [Dst];
}

public sealed record SwiGluOp(ITensor GateUp, ITensor Dst, int Block) : PlanOp(Block)
{
    public override void RunOn(IBackend be) => be.SwiGlu(GateUp, Dst);
    public override IEnumerable<ITensor> Reads => [GateUp];
    public override IEnumerable<ITensor> Writes => [Dst];
}

public sealed record SoftCapOp(ITensor X, float Cap) : PlanOp(-1)
{
    public override void RunOn(IBackend be) => be.SoftCap(X, Cap);
    public override IEnumerable<ITensor> Reads => [X];
    public override IEnumerable<ITensor> Writes => [X];
}

public sealed record ArgmaxOp(ITensor X, int ValidCols, IIndexBuffer Dst) : PlanOp(-1)
{
    public override void RunOn(IBackend be) => be.Argmax(X, ValidCols, Dst);
    public override IEnumerable<ITensor> Reads => [X];
    public override IEnumerable<ITensor> Writes => [];
}

/// <summary>
/// The ops of one forward pass over <see cref="Tokens"/> tokens, in order. Built by <see cref="ModelRunner"/>; the
/// same plan (same operands) is rebuilt for every decode step, so a backend may compile it once per <see cref="Key"/>.
/// </summary>
public sealed class ForwardPlan
{
    /// <param name="decode">Whether the plan is a decode step (<see cref="Decode"/>); by default one token, or a step of
    /// several sequences (<see cref="MlstmStepRowsOp"/>).</param>
    public ForwardPlan(string key, int tokens, IReadOnlyList<PlanOp> ops, int packClass = 0, bool? decode = null)
    {
        Key = key;
        Tokens = tokens;
        Ops = ops;
        PackClass = packClass;
        Decode = decode ?? (tokens == 1 || ops.Any(o => o is MlstmStepRowsOp));
    }

    /// <summary>Identifies the plan's shape: plans with equal keys have the same ops on the same tensors.</summary>
    public string Key { get; }
    public int Tokens { get; }
    public IReadOnlyList<PlanOp> Ops { get; }
    /// <summary>A decode step (one token of one sequence, or one token of each of several): its products must give every
    /// row the one-token bits. Otherwise the plan feeds prompt tokens.</summary>
    public bool Decode { get; }
    /// <summary>Non-zero: the prompts of several sequences packed into one pass (BatchRunner.Prefill), all of the backend's
    /// packing class (<see cref="IBackend.Packing"/>): every product must give each token the same bits as a feed of its
    /// prompt alone.</summary>
    public int PackClass { get; }

    /// <summary>Run every op through the backend's op entry points, in order (no fusion).</summary>
    public void RunUnfused(IBackend be)
    {
        foreach (var op in Ops) op.RunOn(be);
    }

    /// <summary>Whether <paramref name="t"/> (or a tensor sharing its storage, as judged by <paramref name="sameStorage"/>)
    /// is read by an op after index <paramref name="after"/> before being entirely rewritten. Conservative: any later
    /// read of overlapping storage counts, until an op writes exactly the same view.</summary>
    public bool ReadLater(ITensor t, int after, Func<ITensor, ITensor, bool> overlaps, Func<ITensor, ITensor, bool> sameView)
    {
        for (int i = after + 1; i < Ops.Count; i++)
        {
            var op = Ops[i];
            foreach (var r in op.Reads) if (overlaps(r, t)) return true;
            foreach (var w in op.Writes) if (sameView(w, t)) return false;
        }
        return false;
    }
}
