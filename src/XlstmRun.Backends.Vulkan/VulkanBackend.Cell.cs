using System.Runtime.InteropServices;
using XlstmRun.Model;

namespace XlstmRun.Backends.Vulkan;

// The mLSTM cell: the one-token step kernel (shaders/mlstm_step.comp, optionally with the head norm) and the
// chunkwise-parallel prefill (shaders/mlstm_chunk_*.comp, four dispatches per block whatever the length).
public sealed unsafe partial class VulkanBackend
{
    private VkBuf? _stepCounters, _stepPartials, _chunkScratch;

    [StructLayout(LayoutKind.Sequential)]
    internal struct StepPush
    {
        public uint QOff, KOff, VOff, GOff, HOff, NH, Dqk, Dv, NOff, MOff, CntOff, Splits, RowsPerSplit;
        public float Cap, Eps;
        public uint Fuse, OOff, GdOff;
        public float NormEps;
        public uint WriteH;
        public uint QStride, GStride, HStride, GdStride, SlotStride;
    }
    [StructLayout(LayoutKind.Sequential)]
    internal struct ChunkPrepPush { public uint QOff, KOff, RowStride, GOff, GStride, T, L, NH, Dqk, RecOff, SOff; public float Cap; }
    [StructLayout(LayoutKind.Sequential)]
    internal struct ChunkKvPush { public uint KOff, VOff, RowStride, T, L, NH, Dqk, Dv, RecOff, NOff, COff; }
    [StructLayout(LayoutKind.Sequential)]
    internal struct ChunkScanPush { public uint Nc, NH, Dqk, Dv, NOffS, MOffS, RecOff, NOff, COff; }
    [StructLayout(LayoutKind.Sequential)]
    internal struct ChunkOutPush
    {
        public uint QOff, VOff, RowStride, HOff, HStride, T, L, NH, Dqk, Dv, Nc, MOffS, RecOff, SOff, NOff, COff;
        public float Eps;
    }

    public const int ChunkMax = 64;

    /// <summary>Row splits of the step kernel: about <see cref="VulkanOptions.StepRows"/> rows of C per workgroup.</summary>
    private (uint Splits, uint RowsPerSplit) StepSplits(ModelConfig c)
    {
        uint splits = (uint)Math.Clamp((c.DQk + Options.StepRows - 1) / Options.StepRows, 1, 64);
        return (splits, (uint)((c.DQk + splits - 1) / splits));
    }

    private VkBuf StepPartials(ModelConfig c, int rows = 1)
    {
        ulong need = (ulong)rows * (ulong)c.Heads * StepSplits(c).Splits * (ulong)c.DV * 4;
        if (_stepPartials == null || _stepPartials.Size < need) _stepPartials = _mem.Create(need, MemKind.Device);
        return _stepPartials;
    }

    private VkBuf StepCounters(ModelConfig c, int rows = 1)
    {
        ulong need = (ulong)rows * (ulong)c.Heads * 4 + 4;
        if (_stepCounters == null || _stepCounters.Size < need)
        {
            _stepCounters = _mem.Create(Math.Max(need, 256), MemKind.Device);
            var cb = _cs.BeginOp("fill", [], [_stepCounters], transfer: true);
            _cx.Vk.CmdFillBuffer(cb, _stepCounters.Handle, 0, Silk.NET.Vulkan.Vk.WholeSize, 0);
            _cs.EndOp();
        }
        return _stepCounters;
    }

    /// <summary>Floats per (chunk, head) record of the chunk kernels (REC_SIZE in mlstm_chunk.glsl).</summary>
    private const ulong RecordFloats = 320;

    /// <summary>Scratch layout of the chunk kernels for <paramref name="nc"/> chunks (floats; see mlstm_chunk.glsl).</summary>
    private static (ulong Rec, ulong S, ulong N, ulong C, ulong Total) ChunkLayout(ModelConfig c, int nc)
    {
        ulong nh = (ulong)c.Heads, n = (ulong)nc;
        // every region starts on a 16-byte boundary (the scan kernel moves C in vec4s)
        ulong rec = 0, s = rec + (n + 1) * nh * RecordFloats, nn = s + n * nh * 64 * 64, cc = (nn + n * nh * (ulong)c.DQk + 3) & ~3UL;
        ulong total = cc + n * nh * (ulong)c.DQk * (ulong)c.DV;
        return (rec, s, nn, cc, total);
    }

    private VkBuf ChunkScratch(ulong floats)
    {
        if (_chunkScratch == null || _chunkScratch.Size < floats * 4)
        {
            if (_chunkScratch != null) Release(_chunkScratch);
            _chunkScratch = _mem.Create(floats * 4, MemKind.Device);
        }
        return _chunkScratch;
    }

    /// <summary>Release the prefill scratch: the chunk kernels' (sized for the longest batch so far), the GEMM's f16
    /// workspaces and the split-K GEMM's partial tiles.</summary>
    public void ReleaseScratch()
    {
        if (_chunkScratch != null) Release(_chunkScratch);
        if (_xh != null) Release(_xh);
        if (_wh != null) Release(_wh);
        if (_splitParts != null) Release(_splitParts);
        (_chunkScratch, _xh, _wh, _splitParts) = (null, null, null, null);
    }

    public void MlstmCell(ModelConfig c, ITensor qkvo, ITensor gates, IStateBuffer state, int block, ITensor h)
    {
        if (qkvo.Rows == 1)
        {
            CheckCell(c, qkvo, gates, h, block);
            DispatchStep(c, qkvo, gates, state, block, h, null, true);
            return;
        }
        var job = ChunkJobFor(c, qkvo, gates, state, block, h, 0);
        var scr = ChunkScratch(job.Layout.Total);
        for (int stage = 0; stage < 4; stage++) ChunkStage(stage, job, scr);
    }

    /// <summary>Chunkwise cells run in groups so far (<see cref="MlstmCellGroup"/>; tests).</summary>
    public long GroupedCells { get; private set; }

    /// <summary>Scratch of one group of chunkwise cells at most (larger groups run in parts).</summary>
    private const ulong GroupScratchBytes = 256UL << 20;

    /// <summary>Chunkwise cells of different sequences on disjoint rows and states (<see cref="Planner.CellGroup"/>): each
    /// kernel stage runs for all of them before the next, without barriers between the sequences, each in its own region
    /// of the scratch. Every cell gets the dispatches and push constants it gets alone, so the same bits.</summary>
    private void MlstmCellGroup(IReadOnlyList<MlstmCellOp> cells)
    {
        GroupedCells += cells.Count;
        for (int i = 0; i < cells.Count;)
        {
            var jobs = new List<ChunkJob>();
            ulong total = 0;
            for (; i < cells.Count; i++)
            {
                var cell = cells[i];
                var job = ChunkJobFor(cell.Config, cell.Qkvo, cell.Gates, cell.State, cell.Block, cell.H, total);
                ulong end = (total + job.Layout.Total + 3) & ~3UL;   // regions start on 16-byte boundaries
                if (jobs.Count > 0 && end * 4 > GroupScratchBytes) break;
                jobs.Add(job);
                total = end;
            }
            var scr = ChunkScratch(total);
            for (int stage = 0; stage < 4; stage++)
            {
                _cs.BeginGroup();
                try
                {
                    foreach (var job in jobs) ChunkStage(stage, job, scr);
                }
                finally
                {
                    _cs.EndGroup();
                }
            }
        }
    }

    private static void CheckCell(ModelConfig c, ITensor qkvo, ITensor gates, ITensor h, int block)
    {
        int T = qkvo.Rows;
        if (qkvo.Cols != c.QkvoDim || gates.Cols != 2 * c.Heads || h.Cols != c.VDim || gates.Rows != T || h.Rows != T) throw new ArgumentException("mlstm: shape mismatch");
        if ((uint)block >= (uint)c.Blocks) throw new ArgumentOutOfRangeException(nameof(block));
    }

    /// <summary>One chunkwise cell: its tensors, chunks and scratch layout (floats from <c>Base</c> of the scratch).</summary>
    private sealed record ChunkJob(ModelConfig C, VkTensor Q, VkTensor G, VkTensor H, VkState S, int Block, int L, int Nc,
        (ulong Rec, ulong S, ulong N, ulong C, ulong Total) Layout, ulong Base);

    private static ChunkJob ChunkJobFor(ModelConfig c, ITensor qkvo, ITensor gates, IStateBuffer state, int block, ITensor h, ulong scratchBase)
    {
        CheckCell(c, qkvo, gates, h, block);
        if (c.DQk > 256) throw new InvalidOperationException($"the chunk kernels take head sizes up to 256 (dqk = {c.DQk})");
        int T = qkvo.Rows;
        int L = Math.Min(c.ChunkSize, ChunkMax);
        int nc = (T + L - 1) / L;
        return new ChunkJob(c, (VkTensor)qkvo, (VkTensor)gates, (VkTensor)h, (VkState)state, block, L, nc, ChunkLayout(c, nc), scratchBase);
    }

    /// <summary>Stage 0-3 of the chunk kernels (prep, kv, scan, out) for one cell.</summary>
    private void ChunkStage(int stage, ChunkJob j, VkBuf scr)
    {
        var c = j.C;
        var (Q, G, H, S) = (j.Q, j.G, j.H, j.S);
        int T = Q.Rows, NH = c.Heads, dqk = c.DQk, dv = c.DV, L = j.L, nc = j.Nc;
        var (qb, qo) = Act(Q);
        uint kOff = qo + (uint)c.QkDim, vOff = qo + 2u * (uint)c.QkDim;
        uint nOffS = (uint)(NH * dqk * dv), mOffS = nOffS + (uint)(NH * dqk);
        uint rec = (uint)(j.Base + j.Layout.Rec), so = (uint)(j.Base + j.Layout.S), no = (uint)(j.Base + j.Layout.N), co = (uint)(j.Base + j.Layout.C);
        switch (stage)
        {
            case 0:
            {
                var (gb, go) = Act(G);
                _cs.BeginOp("mlstm.chunk.prep", [Q.Buf, G.Buf], [scr]);
                var pp = new ChunkPrepPush
                {
                    QOff = qo, KOff = kOff, RowStride = (uint)Q.Stride, GOff = go, GStride = (uint)G.Stride, T = (uint)T, L = (uint)L,
                    NH = (uint)NH, Dqk = (uint)dqk, RecOff = rec, SOff = so, Cap = c.GateSoftCap,
                };
                Run(_chunkPrep, _chunkPrep.Pipeline([]), [qb, gb, Whole(scr)], &pp, (uint)nc, (uint)NH);
                break;
            }
            case 1:
            {
                _cs.BeginOp("mlstm.chunk.kv", [Q.Buf, scr], [scr]);
                var pk = new ChunkKvPush
                {
                    KOff = kOff, VOff = vOff, RowStride = (uint)Q.Stride, T = (uint)T, L = (uint)L, NH = (uint)NH, Dqk = (uint)dqk, Dv = (uint)dv,
                    RecOff = rec, NOff = no, COff = co,
                };
                Run(_chunkKv, _chunkKv.Pipeline([]), [qb, Whole(scr)], &pk, Groups(dv, 64), Groups(dqk, 64), (uint)(nc * NH));
                break;
            }
            case 2:
            {
                var sb = StateBlock(S, j.Block);
                _cs.BeginOp("mlstm.chunk.scan", [S.Buf, scr], [S.Buf, scr]);
                var ps = new ChunkScanPush
                {
                    Nc = (uint)nc, NH = (uint)NH, Dqk = (uint)dqk, Dv = (uint)dv, NOffS = nOffS, MOffS = mOffS,
                    RecOff = rec, NOff = no, COff = co,
                };
                Run(_chunkScan, _chunkScan.Pipeline([]), [sb, Whole(scr)], &ps, Groups((long)dqk * dv, 1024), (uint)NH);
                break;
            }
            default:
            {
                var sb = StateBlock(S, j.Block);
                var (hb, ho) = Act(H);
                _cs.BeginOp("mlstm.chunk.out", [Q.Buf, S.Buf, scr], [H.Buf, S.Buf]);
                var po = new ChunkOutPush
                {
                    QOff = qo, VOff = vOff, RowStride = (uint)Q.Stride, HOff = ho, HStride = (uint)H.Stride, T = (uint)T, L = (uint)L, NH = (uint)NH,
                    Dqk = (uint)dqk, Dv = (uint)dv, Nc = (uint)nc, MOffS = mOffS, RecOff = rec, SOff = so, NOff = no,
                    COff = co, Eps = c.CellEps,
                };
                Run(_chunkOut, _chunkOut.Pipeline([]), [qb, sb, Whole(scr), hb], &po, Groups(dv, 64), (uint)nc, (uint)NH);
                break;
            }
        }
        _cs.EndOp();
    }

    public void MlstmStepRows(ModelConfig c, ITensor qkvo, ITensor gates, IStateBuffer state, int block, ITensor h)
    {
        var Q = (VkTensor)qkvo;
        if (Q.Rows > state.Slots) throw new ArgumentException("more rows than state slots");
        DispatchStep(c, qkvo, gates, state, block, h, null, true);
    }

    /// <summary>
    /// The step kernel: one token of one sequence, or (a multi-sequence state) row r of qkvo/gates/h stepping slot r,
    /// one dispatch per buffer of slots. With <paramref name="norm"/> it also applies HeadNormGate (its last workgroup per
    /// head and row); h is written when <paramref name="writeH"/>.
    /// </summary>
    private void DispatchStep(ModelConfig c, ITensor qkvo, ITensor gates, IStateBuffer state, int block, ITensor h, HeadNormGateOp? norm, bool writeH)
    {
        var Q = (VkTensor)qkvo;
        var G = (VkTensor)gates;
        var H = (VkTensor)h;
        var S = (VkState)state;
        int NH = c.Heads, dqk = c.DQk, dv = c.DV, rows = Q.Rows;
        var (qb, qo) = Act(Q);
        var (gb, go) = Act(G);
        var (hb, ho) = Act(H);
        uint nOff = (uint)(NH * dqk * dv), mOff = nOff + (uint)(NH * dqk);
        var cnt = StepCounters(c, rows);
        var (splits, rowsPerSplit) = StepSplits(c);
        var part = StepPartials(c, rows);
        var nw = (VkWeight?)norm?.W;
        var gd = (VkTensor?)norm?.Dst;
        Binding nwb = Whole(_dummy), gdb = Whole(_dummy);
        uint gdOff = 0;
        if (norm != null)
        {
            nwb = Whole(nw!.Parts[0].Buf);
            (gdb, gdOff) = Act(gd!);
            FusedDispatches++;
        }
        var groups = S.Slots == 1 ? [(S.Buf, 0, 1)] : S.Groups;
        foreach (var (buf, first, count) in groups)
        {
            int n = Math.Min(count, rows - first);
            if (n <= 0) break;
            // the state from this block of the group's first slot on (one sequence: its block)
            ulong start = (S.Slots == 1 ? S.Base : 0) + S.BlockStride * (ulong)block;
            var sb = S.Slots == 1 ? StateBlock(S, block) : new Binding(buf, start, (ulong)(n - 1) * S.SlotStride + S.BlockBytes);
            _cs.BeginOp(norm != null ? "mlstm.step+headnorm" : "mlstm.step", [Q.Buf, G.Buf, buf, cnt, nw?.Parts[0].Buf],
                [buf, writeH ? H.Buf : null, cnt, part, gd?.Buf]);
            var pc = new StepPush
            {
                QOff = qo + (uint)(first * Q.Stride), KOff = qo + (uint)(first * Q.Stride) + (uint)c.QkDim, VOff = qo + (uint)(first * Q.Stride) + 2u * (uint)c.QkDim,
                GOff = go + (uint)(first * G.Stride), HOff = ho + (uint)(first * H.Stride), NH = (uint)NH, Dqk = (uint)dqk, Dv = (uint)dv,
                NOff = nOff, MOff = mOff, CntOff = (uint)(first * NH), Splits = splits, RowsPerSplit = rowsPerSplit, Cap = c.GateSoftCap, Eps = c.CellEps,
                Fuse = norm != null ? 1u : 0u, OOff = qo + (uint)(first * Q.Stride) + (uint)c.OOffset, GdOff = gdOff + (uint)(first * (gd?.Stride ?? 0)),
                NormEps = norm?.Config.NormEps ?? 0f, WriteH = writeH ? 1u : 0u,
                QStride = (uint)Q.Stride, GStride = (uint)G.Stride, HStride = (uint)H.Stride, GdStride = (uint)(gd?.Stride ?? 0),
                SlotStride = (uint)(S.SlotStride / 4),
            };
            Run(_step, _step.Pipeline([]), [qb, gb, sb, hb, Whole(cnt), Whole(part), nwb, gdb], &pc, Groups(dv, 256), splits, (uint)(n * NH));
            _cs.EndOp();
        }
    }
}
