using XlstmRun.Formats;
using XlstmRun.Model;

namespace XlstmRun.Backends.Vulkan;

/// <summary>
/// How a <see cref="ForwardPlan"/> runs on the Vulkan backend: which neighbouring ops become one kernel. Pure logic over
/// the plan (tested without a device). Fusions, all for matvec-sized products (a decode step):
/// <list type="bullet">
/// <item>RmsNorm(x → a), then products reading a: the first becomes a matvec that normalizes x on the fly; a following
///   product of a small F32 weight on the same a rides along as the matvec's auxiliary rows (the xLSTM gates beside
///   q|k|v|o). a is still written when a later op reads it.</item>
/// <item>a matvec, then SwiGlu of its output: gate and up rows in pairs, silu(gate)·up written by the matvec.</item>
/// <item>a matvec, then SoftCap of its output: capped in the epilogue.</item>
/// <item>the one-token mLSTM cell, then HeadNormGate of its h: the step kernel's last workgroup per head applies it.</item>
/// <item>consecutive chunkwise cells of different sequences on disjoint rows (the prompts of a packed prefill pass): one
///   group, whose kernels run stage by stage for all of them (no barrier between the sequences of a stage).</item>
/// </list>
/// A fusion is skipped where it would change what an op reads (an output overlapping an input of the fused kernel).
/// An intermediate that no later op reads is not written at all.
/// </summary>
public static class Planner
{
    public abstract record Step;

    /// <summary>One op on its own.</summary>
    public sealed record Single(PlanOp Op) : Step;

    /// <summary>One matvec dispatch: <see cref="Main"/>, optionally normalizing its input on the fly (<see cref="Norm"/>,
    /// writing the normalized row only when <see cref="WriteNorm"/>), with <see cref="Aux"/> rows on the same input, and a
    /// SwiGLU (writing the gate|up rows only when <see cref="WriteGateUp"/>) or soft-cap epilogue.</summary>
    public sealed record MatVec(MatMulOp Main, RmsNormOp? Norm, bool WriteNorm, MatMulOp? Aux, SwiGluOp? SwiGlu, bool WriteGateUp, SoftCapOp? Cap) : Step;

    /// <summary>The step-form cell (one token of one sequence, or one token of each of several: <see cref="MlstmStepRowsOp"/>)
    /// with the head norm and output gate applied by the step kernel; h written only when <see cref="WriteH"/>.</summary>
    public sealed record Cell(PlanOp Op, HeadNormGateOp Norm, bool WriteH) : Step;

    /// <summary>Chunkwise cells (several tokens each) of different sequences: rows, outputs and states disjoint.</summary>
    public sealed record CellGroup(IReadOnlyList<MlstmCellOp> Cells) : Step;

    /// <summary>What the planner needs to know about tensors and weights.</summary>
    public interface IFacts
    {
        /// <summary>The product runs as a matvec (one workgroup row set per token), not as a GEMM.</summary>
        bool IsMatVec(MatMulOp m);
        /// <summary>The weight can be the auxiliary rows of a fused matvec (F32, few rows, one buffer).</summary>
        bool CanBeAux(IWeight w);
        /// <summary>The weight can take part in a fusion (one buffer).</summary>
        bool Fusable(IWeight w);
        bool Overlaps(ITensor a, ITensor b);
        bool Same(ITensor a, ITensor b);
        /// <summary>The two state buffers (or slot views) share no memory.</summary>
        bool SeparateStates(IStateBuffer a, IStateBuffer b);
    }

    public static List<Step> Fuse(ForwardPlan plan, IFacts f, bool fusion, bool groupCells = true)
    {
        var ops = plan.Ops;
        var steps = new List<Step>(ops.Count);
        bool ReadLater(ITensor t, int after) => plan.ReadLater(t, after, f.Overlaps, f.Same);
        for (int i = 0; i < ops.Count; i++)
        {
            var op = ops[i];
            if (fusion && op is RmsNormOp n && i + 1 < ops.Count && ops[i + 1] is MatMulOp m1 && f.Same(m1.X, n.Dst) && f.IsMatVec(m1)
                && f.Fusable(m1.W) && f.Fusable(n.W) && !f.Overlaps(n.X, n.Dst) && !f.Overlaps(m1.Dst, n.X) && !f.Overlaps(m1.Dst, n.Dst))
            {
                int last = i + 1;
                var mv = Epilogues(new MatVec(m1, n, false, null, null, false, null), ref last);
                if (mv.SwiGlu == null && mv.Cap == null && last + 1 < ops.Count && ops[last + 1] is MatMulOp m2 && f.Same(m2.X, n.Dst)
                    && f.IsMatVec(m2) && f.CanBeAux(m2.W) && !m2.Accumulate && !f.Overlaps(m2.Dst, n.X) && !f.Overlaps(m2.Dst, n.Dst)
                    && !f.Overlaps(m2.Dst, m1.Dst))
                {
                    last++;
                    mv = mv with { Aux = m2 };
                }
                steps.Add(mv with { WriteNorm = ReadLater(n.Dst, last) });
                i = last;
                continue;
            }
            if (fusion && op is MatMulOp m && f.IsMatVec(m) && f.Fusable(m.W) && !f.Overlaps(m.Dst, m.X))
            {
                int last = i;
                var mv = Epilogues(new MatVec(m, null, false, null, null, false, null), ref last);
                if (mv.SwiGlu != null || mv.Cap != null)
                {
                    steps.Add(mv);
                    i = last;
                    continue;
                }
            }
            if (groupCells && op is MlstmCellOp { Qkvo.Rows: > 1 } first)
            {
                var group = new List<MlstmCellOp> { first };
                while (i + group.Count < ops.Count && ops[i + group.Count] is MlstmCellOp { Qkvo.Rows: > 1 } more && more.Block == first.Block
                       && group.TrueForAll(g => Disjoint(g, more)))
                    group.Add(more);
                if (group.Count > 1)
                {
                    steps.Add(new CellGroup(group));
                    i += group.Count - 1;
                    continue;
                }
            }
            var cell = op switch
            {
                MlstmCellOp c when c.Qkvo.Rows == 1 => (c.Qkvo, c.Gates, c.H),
                MlstmStepRowsOp r => (r.Qkvo, r.Gates, r.H),
                _ => default((ITensor Qkvo, ITensor Gates, ITensor H)?),
            };
            if (fusion && cell is var (cq, cg, ch) && i + 1 < ops.Count && ops[i + 1] is HeadNormGateOp hn
                && f.Same(hn.H, ch) && f.Same(hn.Qkvo, cq) && f.Fusable(hn.W) && hn.Config.DV <= 1024
                && !f.Overlaps(hn.Dst, cq) && !f.Overlaps(hn.Dst, ch) && !f.Overlaps(hn.Dst, cg))
            {
                steps.Add(new Cell(op, hn, ReadLater(ch, i + 1)));
                i++;
                continue;
            }
            steps.Add(new Single(op));
        }
        return steps;

        // two cells that may run at once: neither writes what the other reads or writes, and their states differ
        bool Disjoint(MlstmCellOp a, MlstmCellOp b) =>
            !f.Overlaps(a.H, b.H) && !f.Overlaps(a.H, b.Qkvo) && !f.Overlaps(a.H, b.Gates)
            && !f.Overlaps(b.H, a.Qkvo) && !f.Overlaps(b.H, a.Gates) && f.SeparateStates(a.State, b.State);

        // a SwiGlu or SoftCap of the matvec's output right after it becomes its epilogue
        MatVec Epilogues(MatVec mv, ref int last)
        {
            var m = mv.Main;
            if (last + 1 >= ops.Count || m.Bias != null || m.Accumulate) return mv;
            var next = ops[last + 1];
            if (next is SwiGluOp s && f.Same(s.GateUp, m.Dst) && m.W.Rows % 2 == 0 && !f.Overlaps(s.Dst, m.Dst) && !f.Overlaps(s.Dst, m.X)
                && (mv.Norm == null || !f.Overlaps(s.Dst, mv.Norm.X) && !f.Overlaps(s.Dst, mv.Norm.Dst)))
            {
                last++;
                return mv with { SwiGlu = s, WriteGateUp = ReadLater(m.Dst, last) };
            }
            if (next is SoftCapOp cap && f.Same(cap.X, m.Dst))
            {
                last++;
                return mv with { Cap = cap };
            }
            return mv;
        }
    }

    /// <summary>Dispatches per block in a fused plan (the <c>≤ 5 per block</c> budget of the decode step; tests).</summary>
    public static double KernelsPerBlock(IReadOnlyList<Step> steps, int blocks)
    {
        int n = 0;
        foreach (var s in steps)
        {
            PlanOp? op = s switch { Single x => x.Op, MatVec x => x.Main, Cell x => x.Op, _ => null };
            if (op != null && op.Block >= 0) n++;
            if (s is CellGroup g && g.Cells[0].Block >= 0) n += g.Cells.Count;
        }
        return n / (double)Math.Max(1, blocks);
    }
}
