using System.Runtime.InteropServices;
using Silk.NET.Vulkan;
using XlstmRun.Formats;
using XlstmRun.Model;

namespace XlstmRun.Backends.Vulkan;

// Matrix products: the decode matvec (shaders/matvec.glsl, fused epilogues) and the prefill GEMMs
// (shaders/matmul_coopmat.glsl on tensor cores, shaders/matmul.comp in float32).
public sealed unsafe partial class VulkanBackend
{
    private Kernel _matvec = null!, _matvecIdot = null!, _matmul = null!, _embed = null!, _rmsnorm = null!, _headnorm = null!, _swiglu = null!,
        _softcap = null!, _argmax = null!, _quantize = null!, _step = null!, _chunkPrep = null!, _chunkKv = null!, _chunkScan = null!, _chunkOut = null!, _copy = null!;
    private Kernel? _gemmCm, _gemmCm2, _convertF16, _mmaPeak;
    private VkBuf? _xh, _wh;   // the GEMM's f16 workspaces: x converted once (GemmHalfXTokens), a dequantized weight slab
    private VkBuf? _splitParts;   // the split-K GEMM's partial tiles
    // the largest of these workspaces any loaded weight can need (allocated at once, so that a prefill does not grow them
    // in its first block: growing releases the old one, and a release waits for the device)
    private uint _widestKPad;        // halves per f16 row of the widest weight
    private ulong _largestSlab;      // bytes of the largest dequantized slab
    private ulong _largestSplit;     // floats per token of the largest split-K partials (K segments × padded part rows)
    private Kernel? _splitSum;
    /// <summary>Matvecs recorded so far that quantized their output for the next one (M_QOUT; tests).</summary>
    public long QuantizedOutputs { get; private set; }
    /// <summary>Matvecs over several tokens recorded so far on tensor cores (<see cref="VulkanOptions.TensorMatVec"/>; tests).</summary>
    public long TensorMatVecs { get; private set; }
    /// <summary>GEMMs recorded so far that read operands prepared in the f16 workspaces (tests: never in a replayed step).</summary>
    public long PreparedGemms { get; private set; }
    private VkBuf? _xq, _qc;   // the XQ workspace (quantized activations), M_QOUT's counters
    /// <summary>Rows of a fused matvec's auxiliary weight per workgroup: one, so that the 16 gate rows of a 7B block are
    /// 16 workgroups (two workgroups of 8 rows each streamed 128 KiB and finished last: 22.9 µs for q|k|v|o + gates
    /// against 15.9 µs for q|k|v|o alone, H200).</summary>
    private const uint AuxRowsPerGroup = 1;
    private GemmTile _gemmTile;
    private bool _intDot;

    private void InitKernels()
    {
        var cx = _cx;
        Kernel K(string name, int bindings, uint push) => cx.Kernel(name, bindings, push);
        _matvec = K("matvec", 11, (uint)sizeof(MatVecPush));
        _matmul = K("matmul", 5, (uint)sizeof(GemmPush));
        _embed = K("embed", 4, (uint)sizeof(EmbedPush));
        _rmsnorm = K("rmsnorm", 3, (uint)sizeof(RmsPush));
        _headnorm = K("headnorm", 4, (uint)sizeof(HeadNormPush));
        _swiglu = K("swiglu", 2, (uint)sizeof(SwiGluPush));
        _softcap = K("softcap", 1, (uint)sizeof(SoftCapPush));
        _argmax = K("argmax", 2, (uint)sizeof(ArgmaxPush));
        _step = K("mlstm_step", 8, (uint)sizeof(StepPush));
        _chunkPrep = K("mlstm_chunk_prep", 3, (uint)sizeof(ChunkPrepPush));
        _chunkKv = K("mlstm_chunk_kv", 2, (uint)sizeof(ChunkKvPush));
        _chunkScan = K("mlstm_chunk_scan", 2, (uint)sizeof(ChunkScanPush));
        _chunkOut = K("mlstm_chunk_out", 4, (uint)sizeof(ChunkOutPush));
        _copy = K("copy", 2, 8);

        // int8-activation matvecs: where the device accelerates packed dot products (or forced on/off by the options)
        _intDot = cx.IntDot && !Options.Float32 && (Options.IntDot ?? cx.IntDotAccelerated);
        if (_intDot)
        {
            _matvecIdot = K("matvec_idot", 15, (uint)sizeof(MatVecPush));
            _quantize = K("quantize_x", 5, (uint)sizeof(QuantizePush));
        }

        // tensor-core GEMM: where the device lists the f16 shape; the tile must fit the device's shared memory
        _convertF16 = K("convert_f16", 4, (uint)sizeof(ConvertPush));
        var limit = cx.Limits.MaxComputeSharedMemorySize;
        if (Options.EmulateCoopMat is { } emu)
        {
            if (emu.SharedBytes > limit) throw new ArgumentException($"emulated GEMM tile {emu} needs {emu.SharedBytes} bytes of shared memory, the device has {limit}");
            _gemmTile = emu;
            _gemmCm = K("matmul_coopmat_emu", 6, (uint)sizeof(GemmPush));
        }
        else if (cx.CoopMatNv && Options.CoopMat && !Options.Float32)
        {
            // default: 8 subgroups of 64 × 32 each, 128 × 128 per workgroup (H200 2026-11-30: 98.5 TFLOP/s at 4096² × 2048 tokens,
            // 77 with 4 subgroups of 64 × 64; docs/NOTES.md); smaller tiles where shared memory is short
            GemmTile[] candidates = Options.Gemm is { } g ? [g] : [new(2, 4, 4, 2, 4), new(2, 2, 4, 4, 4), new(2, 2, 4, 4, 2), new(2, 2, 2, 4, 4), new(2, 2, 2, 2, 4)];
            foreach (var t in candidates)
                if (t.SharedBytes <= limit) { _gemmTile = t; break; }
            if (_gemmTile.Threads == 0) throw new ArgumentException($"no cooperative-matrix GEMM tile fits {limit} bytes of shared memory");
            if (cx.CoopMat2 && Options.GemmCoopMat2)
            {
                var ct = Options.Cm2Tile;
                try
                {
                    if (ct.Threads > cx.CoopMat2MaxWorkgroup) throw new InvalidOperationException($"tile {ct}: the device allows {cx.CoopMat2MaxWorkgroup} invocations");
                    _gemmCm2 = K("matmul_cm2", 4, (uint)sizeof(Cm2Push));
                    _gemmCm2.Pipeline([ct.Threads, ct.BM, ct.BN, ct.BK]);
                }
                catch (Exception e) when (e is InvalidOperationException or VulkanUnavailableException)
                {
                    _gemmCm2 = null;
                    Options.Log?.Invoke($"vulkan: coopmat2 GEMM unavailable ({e.Message})");
                }
            }
            try
            {
                _gemmCm = K("matmul_coopmat", 6, (uint)sizeof(GemmPush));
                // build the F16 prefill's pipeline now: a driver that rejects the module leaves the fp32 GEMM in place
                GemmPipeline(_gemmCm, WeightLayout.WType(GgmlType.F16), _gemmTile, Options.GemmHalfXTokens < VulkanOptions.Never);
            }
            catch (Exception e) when (e is InvalidOperationException or VulkanUnavailableException)
            {
                _gemmCm = null;
                Options.Log?.Invoke($"vulkan: cooperative-matrix GEMM unavailable ({e.Message})");
            }
        }
    }

    // ---- push constants (must match the shaders' push_constant blocks) ---------------------------------------------------

    [StructLayout(LayoutKind.Sequential)]
    internal struct MatVecPush
    {
        public uint Rows, Cols, WStride, ScaleBase, XOff, XStride, DOff, DStride, BOff, Flags;
        public uint AOff, AStride, SOff, SStride, Half;
        public float Eps, Cap;
        public uint AuxRows, AuxOff, AuxStride, MainGroups, NTok;
        public uint XqStride, XdOff, XsOff;
        public uint RowGroups;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct QuantizePush { public uint XOff, XStride, Nb, XdOff, XsOff, Totals; }

    [StructLayout(LayoutKind.Sequential)]
    internal struct Cm2Push { public uint Rows, Cols, WStride, XStride, DOff, DStride, BOff, Flags, NTok; }

    [StructLayout(LayoutKind.Sequential)]
    internal struct ConvertPush { public uint Rows, Cols, Groups, WStride, ScaleBase, XOff, XStride, RowStart; }

    [StructLayout(LayoutKind.Sequential)]
    internal struct GemmPush { public uint Rows, Cols, WStride, ScaleBase, XOff, XStride, DOff, DStride, BOff, Flags, NTok, KSeg, PartStride; }

    // ---- launch shapes -----------------------------------------------------------------------------------------------

    /// <summary>Matvec shape per weight type and token count (XLSTM_VK_MATVEC, for several tokens XLSTM_VK_VEC_MATVEC,
    /// override): rows per workgroup chosen so that 4096-column rows keep every invocation busy with one 16-byte load per
    /// row. With several tokens per workgroup (H200 sweeps, 4 tokens): int8 Q8_0 with pre-quantized activations at 4 rows
    /// (16 and 64 tokens: 25-30 % faster than 8 while every workgroup summed its tokens' norm partials, session 3), Q4_0
    /// at 8 like one token (since quantize_x sums them once: `batch` B = 64 1,424 tok/s at 8 rows, 1,371 at 4, B = 16
    /// equal; session 9), in-register quantization at 8 rows (which share it); float weights at 4 rows (F16 7B decode on
    /// the H200: 188.5 tok/s at 2 rows, 204.2 at 4, 201.2 at 8, session 4).</summary>
    private MatVecShape MatVecShapeFor(VkWeight w, int tokens)
    {
        if (tokens > 1 && Options.VecMatVec is { } v) return v;
        if (Options.MatVec is { } s) return s;
        if (!GgmlTypes.IsQuantized(w.DevType)) return new MatVecShape(128, 4, 1);
        return new MatVecShape(128, tokens > 1 && IntDotVec(w) && w.DevType == GgmlType.Q8_0 ? 4u : 8u, 1);
    }

    /// <summary>The tensor-core GEMM's pipeline: tile, weight type, x in f16 (XF16) and the options' register stages and
    /// grid order.</summary>
    private Pipeline GemmPipeline(Kernel k, uint wtype, GemmTile t, bool xf16, bool splitK = false) =>
        k.Pipeline([t.Threads, t.WarpsM, wtype, t.WarpsN, t.TM, t.TN, t.Bkv, xf16 ? 1u : 0u, (uint)Options.GemmRegisterStages, Options.GemmTokenMajor ? 1u : 0u,
            splitK ? 1u : 0u, (uint)Options.GemmDiag]);

    /// <summary>The GEMM tile for <paramref name="tokens"/> rows: the prefill tile, or for a few rows (the
    /// multi-sequence decode step) a tile of 16–64 tokens × 64 weight rows, so that the weights are still read once and
    /// the matrix units are not mostly multiplying padding.</summary>
    private GemmTile GemmTileFor(int tokens)
    {
        if (Options.Gemm != null || Options.EmulateCoopMat != null || tokens > 64) return _gemmTile;
        return tokens <= 16 ? new GemmTile(1, 4, 1, 1, 4) : tokens <= 32 ? new GemmTile(1, 4, 2, 1, 4) : new GemmTile(2, 4, 2, 1, 4);
    }

    // ---- dispatch ------------------------------------------------------------------------------------------------------

    public void MatMul(IWeight w, ITensor x, ITensor dst, IWeight? bias = null, bool accumulate = false)
    {
        var W = (VkWeight)w;
        var X = (VkTensor)x;
        var D = (VkTensor)dst;
        if (W.Cols != X.Cols || W.Rows != D.Cols || X.Rows != D.Rows)
            throw new ArgumentException($"matmul shape mismatch: {W.Name} [{W.Rows}, {W.Cols}] · x [{X.Rows}, {X.Cols}] → [{D.Rows}, {D.Cols}]");
        var B = (VkWeight?)bias;
        if (B != null && B.Cols != W.Rows) throw new ArgumentException("matmul: bias length does not match the rows");
        if (IsVec(W, X.Rows)) DispatchMatVec(new Planner.MatVec(new MatMulOp(w, x, dst, bias, accumulate, -1), null, false, null, null, false, null));
        else DispatchGemm(W, X, D, B, accumulate);
    }

    private void DispatchGemm(VkWeight W, VkTensor X, VkTensor D, VkWeight? B, bool accumulate)
    {
        int T = X.Rows;
        var (db, dOff) = Act(D);
        var bb = B != null ? Whole(B.Parts[0].Buf) : Whole(_dummy);
        uint flags = (accumulate ? 1u : 0u) | (B != null ? 2u : 0u);
        if (!HalfGemm(W))
        {
            DispatchGemmF32(W, X, D, B, accumulate, db, dOff, bb, flags);
            return;
        }

        if (SplitK(W, T))
        {
            DispatchSplitK(W, X, D, B, accumulate);
            return;
        }
        var tile = GemmTileFor(T);
        // Operands prepared once live in workspaces that prefills grow and release (ReleaseScratch): a step recorded
        // for replay (the multi-sequence step over more than VecTokens sequences) must not name them.
        bool prepare = !_cs.IsRecordingReplay;
        // workgroup-scope cooperative matrices (the large-tile prefill GEMM only): f16 operands prepared once
        bool cm2 = prepare && _gemmCm2 != null && T > 64 && Options.Gemm == null;
        var kernel = cm2 ? _gemmCm2! : _gemmCm!;
        uint kPad = (uint)(W.Cols + 7) / 8 * 8;   // halves per row of the f16 workspaces
        // x: float32 converted per tile, or once into the f16 workspace
        bool xf16 = cm2 || prepare && T >= Options.GemmHalfXTokens;
        Binding xb, xhb = Whole(_dummy);
        uint xOff, xStride;
        VkBuf xRead;
        if (xf16)
        {
            ConvertX(X, W.Cols, kPad);
            (xb, xhb, xOff, xStride, xRead) = (Whole(_dummy), Whole(_xh!), 0u, kPad, _xh!);
        }
        else
        {
            (xb, xOff) = Act(X);
            (xStride, xRead) = ((uint)X.Stride, X.Buf);
        }
        // weights: as stored (dequantized per tile), or quantized ones dequantized to F16 once, slab by slab
        bool deq = cm2 ? W.DevType != GgmlType.F16 : prepare && GgmlTypes.IsQuantized(W.DevType) && T >= Options.GemmDequantTokens;
        if (xf16 || deq) PreparedGemms++;
        var ct = Options.Cm2Tile;
        var pipe = cm2 ? kernel.Pipeline([ct.Threads, ct.BM, ct.BN, ct.BK])
                       : GemmPipeline(kernel, deq ? WeightLayout.WType(GgmlType.F16) : W.WType, tile, xf16);
        string name = (cm2 ? "gemm.cm2." : "gemm.f16.") + GgmlTypes.Name(W.DevType) + (deq ? ".dq" : "") + (xf16 && !cm2 ? ".xh" : "");
        foreach (var p in W.Parts)
        {
            int slab = deq ? SlabRows(p.RowCount, kPad, cm2 ? ct.BN : tile.BN) : p.RowCount;
            for (int r0 = 0; r0 < p.RowCount; r0 += slab)
            {
                int n = Math.Min(slab, p.RowCount - r0);
                VkBuf wb = p.Buf;
                uint wStride = p.WStride, scaleBase = p.ScaleBase;
                if (deq)
                {
                    _wh = Workspace(_wh, Math.Max((ulong)slab * kPad * 2, _largestSlab));
                    var cp = new ConvertPush
                    {
                        Rows = (uint)n, Cols = (uint)W.Cols, Groups = kPad / 8, WStride = p.WStride, ScaleBase = p.ScaleBase, RowStart = (uint)r0,
                    };
                    _cs.BeginOp("gemm.dequant." + GgmlTypes.Name(W.DevType), [p.Buf], [_wh]);
                    Run(_convertF16!, _convertF16!.Pipeline([1, W.WType]), [Whole(p.Buf), Whole(p.Buf), Whole(_dummy), Whole(_wh)], &cp, ConvertGroups(n, kPad));
                    _cs.EndOp();
                    (wb, wStride, scaleBase) = (_wh, kPad / 8, 0u);
                }
                BeginGemm(name, [wb], xRead, B, accumulate ? D.Buf : null, D.Buf);
                if (cm2)
                {
                    var c2 = new Cm2Push
                    {
                        Rows = (uint)n, Cols = (uint)W.Cols, WStride = wStride * 8, XStride = xStride, DOff = dOff + (uint)(p.RowStart + r0),
                        DStride = (uint)D.Stride, BOff = (uint)(p.RowStart + r0), Flags = flags, NTok = (uint)T,
                    };
                    Run(kernel, pipe, [Whole(wb), xhb, db, bb], &c2, Groups(n, ct.BN), Groups(T, ct.BM));
                    _cs.EndOp();
                    continue;
                }
                var pc = new GemmPush
                {
                    Rows = (uint)n, Cols = (uint)W.Cols, WStride = wStride, ScaleBase = scaleBase,
                    XOff = xOff, XStride = xStride, DOff = dOff + (uint)(p.RowStart + r0), DStride = (uint)D.Stride,
                    BOff = (uint)(p.RowStart + r0), Flags = flags, NTok = (uint)T,
                };
                var (gRows, gToks) = (Groups(n, tile.BN), Groups(T, tile.BM));
                if (Options.GemmTokenMajor) Run(kernel, pipe, [Whole(wb), Whole(wb), xb, db, bb, xhb], &pc, gToks, gRows);
                else Run(kernel, pipe, [Whole(wb), Whole(wb), xb, db, bb, xhb], &pc, gRows, gToks);
                _cs.EndOp();
            }
        }
    }

    /// <summary>x [T, cols] converted to f16 once into <see cref="_xh"/> (rows of <paramref name="kPad"/> halves).</summary>
    private void ConvertX(VkTensor X, int cols, uint kPad)
    {
        int T = X.Rows;
        var (sb, so) = Act(X);
        _xh = Workspace(_xh, (ulong)T * Math.Max(kPad, _widestKPad) * 2);
        var cp = new ConvertPush { Rows = (uint)T, Cols = (uint)cols, Groups = kPad / 8, XOff = so, XStride = (uint)X.Stride };
        _cs.BeginOp("gemm.x.f16", [X.Buf], [_xh]);
        Run(_convertF16!, _convertF16!.Pipeline([0, 0]), [Whole(_dummy), Whole(_dummy), sb, Whole(_xh)], &cp, ConvertGroups(T, kPad));
        _cs.EndOp();
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct SplitSumPush { public uint Rows, NTok, Segs, PartStride, PStride, DOff, DStride, BOff, Flags; }

    /// <summary>
    /// The split-K GEMM (<see cref="SplitK"/>): x in f16 once, the weights as stored (dequantized per tile), one workgroup
    /// per tile and K segment of <see cref="VulkanOptions.FewKSegment"/> storing its plain partial tile, then
    /// shaders/splitk_sum.comp adds the partials in order (then the bias, then the old value when accumulating). The tile
    /// follows the token count; a token's bits do not.
    /// </summary>
    private void DispatchSplitK(VkWeight W, VkTensor X, VkTensor D, VkWeight? B, bool accumulate)
    {
        int T = X.Rows;
        var tile = SplitTile(T);
        uint kPad = (uint)(W.Cols + 7) / 8 * 8;
        ConvertX(X, W.Cols, kPad);
        uint kSeg = (uint)Options.FewKSegment;
        var pipe = GemmPipeline(_gemmCm!, W.WType, tile, xf16: true, splitK: true);
        _splitSum ??= _cx.Kernel("splitk_sum", 3, (uint)sizeof(SplitSumPush));
        var (db, dOff) = Act(D);
        var bb = B != null ? Whole(B.Parts[0].Buf) : Whole(_dummy);
        uint flags = (accumulate ? 1u : 0u) | (B != null ? 2u : 0u);
        foreach (var p in W.Parts)
        {
            uint n = (uint)p.RowCount;
            var (segs, pStride) = SplitShape(W.Cols, p.RowCount);
            uint partStride = (uint)T * pStride;
            _splitParts = Workspace(_splitParts, Math.Max((ulong)segs * partStride, (ulong)T * _largestSplit) * 4);
            _cs.BeginOp("gemm.splitk." + GgmlTypes.Name(W.DevType), [p.Buf, _xh], [_splitParts]);
            var pc = new GemmPush
            {
                Rows = n, Cols = (uint)W.Cols, WStride = p.WStride, ScaleBase = p.ScaleBase, XOff = 0, XStride = kPad, DOff = 0, DStride = pStride,
                BOff = 0, Flags = 0, NTok = (uint)T, KSeg = kSeg, PartStride = partStride,
            };
            var (gRows, gToks) = (Groups(n, tile.BN), Groups(T, tile.BM));
            var binds = new[] { Whole(p.Buf), Whole(p.Buf), Whole(_dummy), Whole(_splitParts), Whole(_dummy), Whole(_xh!) };
            if (Options.GemmTokenMajor) Run(_gemmCm!, pipe, binds, &pc, gToks, gRows, segs);
            else Run(_gemmCm!, pipe, binds, &pc, gRows, gToks, segs);
            _cs.EndOp();
            _cs.BeginOp("gemm.splitk.sum", [_splitParts, B?.Parts[0].Buf, accumulate ? D.Buf : null], [D.Buf]);
            var sp = new SplitSumPush
            {
                Rows = n, NTok = (uint)T, Segs = segs, PartStride = partStride, PStride = pStride, DOff = dOff + (uint)p.RowStart, DStride = (uint)D.Stride,
                BOff = (uint)p.RowStart, Flags = flags,
            };
            Run(_splitSum, _splitSum.Pipeline([]), [Whole(_splitParts), db, bb], &sp, Groups(n, 256), (uint)T);
            _cs.EndOp();
        }
    }

    /// <summary>The split-K GEMM's tile for <paramref name="tokens"/> (<see cref="VulkanOptions.FewTiles"/>): the first
    /// from its size class down that fits the device's shared memory, with its own K step or one of 32.</summary>
    private GemmTile SplitTile(int tokens)
    {
        uint limit = _cx.Limits.MaxComputeSharedMemorySize;
        for (int i = tokens <= 16 ? 0 : tokens <= 32 ? 1 : tokens <= 64 ? 2 : 3; i >= 0; i--)
        {
            var t = Options.FewTiles[i];
            if (t.SharedBytes <= limit) return t;
            if ((t with { Bkv = 4 }).SharedBytes <= limit) return t with { Bkv = 4 };
        }
        return new GemmTile(1, 1, 1, 1, 2);
    }

    /// <summary>Diagnosis (`bench --op mma`): the f16 tensor-core rate through GL_NV_cooperative_matrix with no memory
    /// traffic (shaders/mma_peak.comp) in TFLOP/s, the best of <paramref name="passes"/>; null without cooperative
    /// matrices or device timestamps.</summary>
    public double? MatrixPeakTflops(int passes = 5)
    {
        if (!_cx.CoopMatNv || !Profiling) return null;
        var k = _mmaPeak ??= _cx.Kernel("mma_peak", 1, 8);
        uint groups = 1024, iters = 4096;   // 8 subgroups each: enough to fill any GPU several times
        var outBuf = _mem.Create((ulong)groups * 8 * 2048 * 4, MemKind.Device);
        try
        {
            var pc = stackalloc uint[2];
            pc[0] = iters;
            pc[1] = BitConverter.SingleToUInt32Bits(0.25f);
            double ns = FastestDispatchNs("mma.peak", k, k.Pipeline([]), outBuf, pc, groups, passes);
            return (double)groups * 8 * iters * 8 * 2 * 4096 / ns / 1e3;
        }
        finally
        {
            Release(outBuf);
        }
    }

    /// <summary>The fastest of <paramref name="passes"/> timed dispatches (after a warm-up) of a diagnostic kernel whose
    /// one binding is <paramref name="outBuf"/>, in ns of device time.</summary>
    private double FastestDispatchNs(string op, Kernel k, Pipeline pipe, VkBuf outBuf, void* pc, uint groups, int passes)
    {
        double best = double.PositiveInfinity;
        for (int p = 0; p <= passes; p++)
        {
            ResetProfile();
            _cs.BeginOp(op, [], [outBuf]);
            Run(k, pipe, [Whole(outBuf)], pc, groups);
            _cs.EndOp();
            _cs.Flush();
            if (p > 0 && OpTimes().TryGetValue(op, out var t) && t.Ns > 0) best = Math.Min(best, t.Ns);
        }
        return best;
    }

    private Kernel? _aluPeak;

    /// <summary>Diagnosis (`bench --op alu`): packed int8 dot products (OpSDotKHR) or float FMAs per second in G with no
    /// memory traffic (shaders/alu_peak.comp), the best of <paramref name="passes"/>; null without the integer dot product
    /// feature (for <paramref name="intDot"/>) or device timestamps.</summary>
    public double? AluPeakGops(bool intDot, int passes = 5)
    {
        if (!Profiling || (intDot && !_cx.IntDot)) return null;
        var k = _aluPeak ??= _cx.Kernel("alu_peak", 1, 8);
        // 256 invocations each: enough to fill any GPU several times; a CPU device (lavapipe) gets a token amount
        bool cpu = _cx.Info.Type == PhysicalDeviceType.Cpu;
        uint groups = cpu ? 8u : 4096u, iters = cpu ? 256u : 4096u;
        var outBuf = _mem.Create((ulong)groups * 256 * 4, MemKind.Device);
        try
        {
            var pc = stackalloc uint[2];
            pc[0] = iters;
            pc[1] = 0x9E3779B9u;
            double ns = FastestDispatchNs("alu.peak", k, k.Pipeline([intDot ? 0u : 1u]), outBuf, pc, groups, passes);
            return (double)groups * 256 * iters * 8 / ns;
        }
        finally
        {
            Release(outBuf);
        }
    }

    /// <summary>The float32 GEMM (shaders/matmul.comp): F32 weights, --precision f32, devices without tensor cores.</summary>
    private void DispatchGemmF32(VkWeight W, VkTensor X, VkTensor D, VkWeight? B, bool accumulate, Binding db, uint dOff, Binding bb, uint flags)
    {
        int T = X.Rows;
        var (xb, xo) = Act(X);
        BeginGemm("gemm.f32." + GgmlTypes.Name(W.DevType), W.Parts.Select(p => p.Buf), X.Buf, B, accumulate ? D.Buf : null, D.Buf);
        var pipe = _matmul.Pipeline([0, 0, W.WType]);
        foreach (var p in W.Parts)
        {
            var pc = new GemmPush
            {
                Rows = (uint)p.RowCount, Cols = (uint)W.Cols, WStride = p.WStride, ScaleBase = p.ScaleBase,
                XOff = xo, XStride = (uint)X.Stride, DOff = dOff + (uint)p.RowStart, DStride = (uint)D.Stride,
                BOff = (uint)p.RowStart, Flags = flags, NTok = (uint)T,
            };
            Run(_matmul, pipe, [Whole(p.Buf), Whole(p.Buf), xb, db, bb], &pc, Groups(p.RowCount, 64), Groups(T, 64));
        }
        _cs.EndOp();
    }

    private void BeginGemm(string name, IEnumerable<VkBuf> weights, VkBuf x, VkWeight? bias, VkBuf? accumulated, VkBuf dst)
    {
        var reads = new List<VkBuf?>(weights) { x, bias?.Parts[0].Buf, accumulated };
        _cs.BeginOp(name, reads.ToArray(), [dst]);
    }

    /// <summary>Rows of a dequantized weight slab: the whole part if it fits <see cref="VulkanOptions.GemmDequantBytes"/>,
    /// else whole GEMM tiles of rows.</summary>
    private int SlabRows(int rows, uint kPad, uint tileRows)
    {
        long fit = Options.GemmDequantBytes / (2L * kPad);
        if (fit >= rows) return rows;
        return (int)Math.Max(tileRows, fit / tileRows * tileRows);
    }

    /// <summary>Note what a loaded weight's prefill GEMMs will need of the workspaces (see <see cref="Workspace"/>).</summary>
    private void NoteGemmWeight(GgmlType devType, int rows, int cols, int perPart)
    {
        uint kPad = (uint)WeightLayout.Pad8(cols);
        _widestKPad = Math.Max(_widestKPad, kPad);
        if (GgmlTypes.IsQuantized(devType)) _largestSlab = Math.Max(_largestSlab, Math.Min((ulong)rows * kPad * 2, (ulong)Options.GemmDequantBytes));
        var (segs, pStride) = SplitShape(cols, Math.Min(rows, perPart));
        _largestSplit = Math.Max(_largestSplit, (ulong)segs * pStride);
    }

    /// <summary>The split-K GEMM's K segments and padded rows per token of a weight part's partial tiles.</summary>
    private (uint Segs, uint PStride) SplitShape(int cols, int partRows)
    {
        uint kSeg = (uint)Options.FewKSegment;
        return (((uint)cols + kSeg - 1) / kSeg, ((uint)partRows + 3) / 4 * 4);
    }

    /// <summary>A prefill workspace of at least <paramref name="bytes"/>: <paramref name="cur"/>, or a larger one in its
    /// place (only eager work names these, never a recorded replay, so the old one can go).</summary>
    private VkBuf Workspace(VkBuf? cur, ulong bytes)
    {
        if (cur != null && cur.Size >= bytes) return cur;
        if (cur != null) Release(cur);
        return _mem.Create(Math.Max(bytes, 64UL << 10), MemKind.Device);
    }

    private uint ConvertGroups(long rows, uint kPad) => (uint)Math.Min(Groups(rows * (kPad / 8), 256), 65535);

    private Kernel? _matvecTc;

    /// <summary>
    /// The tensor-core kernel for an int8 product over several tokens (<see cref="VulkanOptions.TensorMatVec"/>), or null
    /// for the matvec. It reproduces the one-token matvec's sum order, which exists only where that matvec runs 128
    /// invocations in whole subgroups and reduces by the reduce-scatter (rows a power of two, at most the subgroup).
    /// </summary>
    private Kernel? TensorMatVecKernel(VkWeight W)
    {
        int mode = Options.TensorMatVec;
        if (mode == 0 || Options.Float32 || !_cx.UseSubgroups || !Options.ReduceScatter) return null;
        var one = MatVecShapeFor(W, 1);
        uint sg = _cx.Info.SubgroupSize;
        if (one.Wg != 128 || one.Rows is not (2 or 4 or 8 or 16) || one.Rows > sg || 128 % sg != 0) return null;
        if (mode == 1 && (!_cx.CoopMatNv || sg != 32)) return null;
        return _matvecTc ??= _cx.Kernel(mode == 2 ? "matvec_tc_emu" : "matvec_tc", 15, (uint)sizeof(MatVecPush));
    }

    /// <summary>
    /// Whether <paramref name="producer"/> can quantize its output for <paramref name="consumer"/> (M_QOUT in matvec.glsl):
    /// one token, a plain int8 matvec of whole 32-row blocks (reading its own input unquantized) writing exactly the input
    /// of the consumer's fused norm, and a consumer that reads pre-quantized activations. Saves the consumer's quantize
    /// dispatch (about 5 µs on the H200).
    /// </summary>
    private bool CanQuantizeOut(Planner.MatVec producer, Planner.MatVec consumer)
    {
        var m = producer.Main;
        var W = (VkWeight)m.W;
        var D = (VkTensor)m.Dst;
        return producer is { Norm: null, Aux: null, SwiGlu: null, Cap: null } && consumer.Norm is { } n && D.Rows == 1 && IntDotVec(W)
            && W.Parts.Length == 1 && W.Rows % 32 == 0 && 32 % MatVecShapeFor(W, 1).Rows == 0 && (D.Offset & 3) == 0
            && SameView((VkTensor)n.X, D) && IntDotVec((VkWeight)consumer.Main.W) && Options.PreQuantTokens < VulkanOptions.Never
            && Options.PreQuantTokens > 1;   // the producer quantizes its own input in registers: the XQ workspace is free
    }

    /// <summary>One matvec dispatch per weight part, with the step's fusions (see <see cref="Planner.MatVec"/>).
    /// <paramref name="quantizeFor"/>: also quantize the output for the next matvec's norm with this weight
    /// (<see cref="CanQuantizeOut"/>); <paramref name="xqReady"/>: the input's quants are already in the XQ workspace.</summary>
    private void DispatchMatVec(Planner.MatVec mv, VkWeight? quantizeFor = null, bool xqReady = false)
    {
        var m = mv.Main;
        var W = (VkWeight)m.W;
        var D = (VkTensor)m.Dst;
        var B = (VkWeight?)m.Bias;
        var norm = mv.Norm;
        var XIn = (VkTensor)(norm != null ? norm.X : m.X);   // the raw residual when the norm is fused
        var NW = (VkWeight?)norm?.W;
        var A = (VkTensor?)norm?.Dst;
        var aux = mv.Aux;
        var AW = (VkWeight?)aux?.W;
        var AD = (VkTensor?)aux?.Dst;
        var AB = (VkWeight?)aux?.Bias;
        var S = (VkTensor?)mv.SwiGlu?.Dst;
        int T = XIn.Rows;
        bool idot = IntDotVec(W);
        // pre-quantized activations: always under a fused norm (the in-register path's x·w and Σx² in the weight loop cost
        // more than the extra dispatch), for plain products from PreQuantTokens tokens on (one token: the extra dispatch
        // costs more than the in-register quantization saves, H200). Either way a token's quants and sums are the same
        // bits, so one sequence and several stay bit-identical.
        bool preq = idot && Options.PreQuantTokens < VulkanOptions.Never && (norm != null || T >= Options.PreQuantTokens);
        var kernel = idot ? _matvecIdot : _matvec;
        var shape = MatVecShapeFor(W, T);
        uint nr = shape.Rows;
        if (S != null && nr % 2 != 0) nr = Math.Max(2, nr + 1);
        if (aux != null && AW!.Rows > 64) throw new InvalidOperationException("auxiliary matvec rows exceed 64");
        uint mode = (norm != null ? 1u : 0u) | (S != null ? 2u : 0u) | (mv.Cap != null ? 4u : 0u) | (aux != null ? 8u : 0u) | (quantizeFor != null ? 16u : 0u);
        if (mode != 0 && W.Parts.Length > 1) throw new InvalidOperationException("fused matvec over a split weight");

        var (xb, xo) = Act(XIn);
        var (db, dOff) = Act(D);
        // the norm weight: this matvec's fused norm, or (M_QOUT) the next one's
        Binding nwb = NW != null ? Whole(NW.Parts[0].Buf) : quantizeFor != null ? Whole(quantizeFor.Parts[0].Buf) : Whole(_dummy);
        // XQ layout (see QuantizeX): of this matvec's input, or (M_QOUT) of its output
        uint nb = (uint)(quantizeFor != null ? W.Rows : W.Cols) / 32, xdOff = (uint)T * nb * 4, xsOff = (uint)T * nb * 10;
        VkBuf? xq = null;
        bool totals = false;   // quantize_x wrote each token's whole Σx² for this matvec's fused norm (flags bit 32)
        if (preq && !xqReady) xq = QuantizeX(XIn, xb, xo, nwb, NW != null, T, nb, out totals);
        else if (preq || quantizeFor != null) xq = XqBuffer(T, nb);   // quantized by the previous matvec, or to be written
        VkBuf? qc = quantizeFor != null ? QuantizeCounters(nb) : null;
        var reads = new List<VkBuf?>(W.Parts.Length + 7);
        foreach (var p in W.Parts) reads.Add(p.Buf);
        reads.Add(XIn.Buf);
        reads.Add(B?.Parts[0].Buf);
        reads.Add(m.Accumulate ? D.Buf : null);
        reads.Add(NW?.Parts[0].Buf);
        reads.Add(AW?.Parts[0].Buf);
        reads.Add(AB?.Parts[0].Buf);
        reads.Add(preq ? xq : null);
        bool writeD = S == null || mv.WriteGateUp;
        VkBuf?[] writes = [writeD ? D.Buf : null, mv.WriteNorm ? A!.Buf : null, S?.Buf, AD?.Buf, quantizeFor != null ? xq : null, qc];
        string name = "matvec." + GgmlTypes.Name(W.DevType) + (idot ? preq ? ".q8x" : ".i8" : "") + (norm != null ? "+norm" : "") + (aux != null ? "+aux" : "") +
                      (S != null ? "+swiglu" : "") + (mv.Cap != null ? "+softcap" : "") + (quantizeFor != null ? "+qout" : "");
        _cs.BeginOp(name, reads.ToArray(), writes);
        if (mode != 0) FusedDispatches++;
        if (quantizeFor != null) QuantizedOutputs++;
        uint group = (uint)Math.Min(T, Options.VecGroup);   // tokens per workgroup
        uint rloop = T > 1 ? (uint)Options.VecRowLoop : 1u;   // row groups per workgroup
        uint perGroup = rloop, tileRows = nr;   // row groups per workgroup, rows per row group
        if (idot && preq && T > 1 && TensorMatVecKernel(W) is { } tck)
        {
            kernel = tck;
            // rows × tokens tiles of the tensor-core build (TC_M = 64, TC_N = 16; M_SWIGLU: 32 gate|up row pairs); its
            // M_AUX rows and sum order are the one-token matvec's (NUM_ROWS, workgroup of 128)
            shape = MatVecShapeFor(W, 1);
            (nr, group, rloop, perGroup, tileRows) = (shape.Rows, 16u, 1u, 1u, 64u);
            TensorMatVecs++;
        }
        var pipe = kernel.Pipeline([shape.Wg, nr, W.WType, mode, shape.Unroll, group, preq ? 1u : 0u, rloop, AuxRowsPerGroup, Options.ReduceScatter ? 1u : 0u,
                                    _cx.Info.SubgroupSize, (uint)Options.TensorMatVecBlocks]);

        Binding ab = Whole(_dummy), sb = Whole(_dummy), awb = Whole(_dummy), adb = Whole(_dummy), abb = Whole(_dummy);
        uint aOff = 0, aStride = 0, sOff = 0, sStride = 0, auxOff = 0, auxStride = 0;
        if (mv.WriteNorm) { (ab, aOff) = Act(A!); aStride = (uint)A!.Stride; }
        if (S != null) { (sb, sOff) = Act(S); sStride = (uint)S.Stride; }
        if (aux != null)
        {
            awb = Whole(AW!.Parts[0].Buf);
            (adb, auxOff) = Act(AD!);
            auxStride = (uint)AD!.Stride;
            if (AB != null) abb = Whole(AB.Parts[0].Buf);
        }
        var bb = B != null ? Whole(B.Parts[0].Buf) : Whole(_dummy);
        bool firstPart = true;
        foreach (var p in W.Parts)
        {
            uint rowGroups = S != null ? Groups(W.Rows / 2, tileRows / 2) : Groups(p.RowCount, tileRows);
            uint mainGroups = (rowGroups + perGroup - 1) / perGroup;
            uint auxGroups = aux != null ? Groups(AW!.Rows, AuxRowsPerGroup) : 0;
            var pc = new MatVecPush
            {
                Rows = (uint)p.RowCount, Cols = (uint)W.Cols, WStride = p.WStride, ScaleBase = p.ScaleBase,
                XOff = xo, XStride = (uint)XIn.Stride, DOff = dOff + (uint)p.RowStart, DStride = (uint)D.Stride,
                BOff = (uint)p.RowStart,
                Flags = (m.Accumulate ? 1u : 0u) | (B != null ? 2u : 0u) | (mv.WriteNorm && firstPart ? 4u : 0u) | (mv.WriteGateUp ? 8u : 0u) | (AB != null ? 16u : 0u) |
                        (totals ? 32u : 0u),
                AOff = aOff, AStride = aStride, SOff = sOff, SStride = sStride, Half = (uint)(W.Rows / 2),
                Eps = norm?.Eps ?? 0f, Cap = mv.Cap?.Cap ?? 0f,
                AuxRows = aux != null ? (uint)AW!.Rows : 0, AuxOff = auxOff, AuxStride = auxStride, MainGroups = mainGroups,
                NTok = (uint)T, XqStride = nb, XdOff = xdOff, XsOff = xsOff, RowGroups = rowGroups,
            };
            firstPart = false;
            var (gx, gy) = Grid2(mainGroups + auxGroups);
            if (idot)
            {
                var q = Whole(xq ?? _dummy);
                Run(kernel, pipe, [Whole(p.Buf), Whole(p.Buf), xb, db, bb, nwb, ab, sb, awb, adb, abb, q, q, q, Whole(qc ?? _dummy)], &pc, gx, gy, Groups(T, group));
            }
            else Run(kernel, pipe, [Whole(p.Buf), Whole(p.Buf), xb, db, bb, nwb, ab, sb, awb, adb, abb], &pc, gx, gy, Groups(T, group));
        }
        _cs.EndOp();
    }

    /// <summary>The XQ workspace for T tokens of nb blocks: T·nb·32 bytes of quants, then T·nb (d, Σq) pairs (float
    /// index T·nb·8), then T·nb partial sums of x², one per block (float index T·nb·10). A larger one replaces it when
    /// needed; the old one stays alive (under 1 MB at 64 tokens of 7B rows) because recorded steps may name it.</summary>
    private VkBuf XqBuffer(int T, uint nb)
    {
        ulong need = (ulong)T * nb * 44 + (ulong)T * 4;   // quants, (d, Σq), Σx² per block, Σx² per token
        if (_xq == null || _xq.Size < need) _xq = _mem.Create(Math.Max(need, 64UL << 10), MemKind.Device);
        return _xq;
    }

    /// <summary>M_QOUT's per-block counters (zero; the last workgroup of a block resets its counter).</summary>
    private VkBuf QuantizeCounters(uint nb)
    {
        if (_qc == null || _qc.Size < nb * 4UL)
        {
            _qc = _mem.Create(Math.Max(nb * 4UL, 4096), MemKind.Device);
            var cb = _cs.BeginOp("fill", [], [_qc], transfer: true);
            _cx.Vk.CmdFillBuffer(cb, _qc.Handle, 0, Vk.WholeSize, 0);
            _cs.EndOp();
        }
        return _qc;
    }

    /// <summary>The input of an int8 matvec quantized once per token (shaders/quantize_x.comp, times the fused RmsNorm's
    /// weight when <paramref name="norm"/>) into the XQ workspace (<see cref="XqBuffer"/>).</summary>
    private VkBuf QuantizeX(VkTensor x, Binding xb, uint xo, Binding nwb, bool norm, int T, uint nb, out bool totals)
    {
        // each token's whole Σx² as well, for a fused norm over several tokens (one token's matvec sums the partials itself)
        totals = norm && T > 1;
        var xq = XqBuffer(T, nb);
        _cs.BeginOp(norm ? "quantize+norm" : "quantize", [x.Buf, norm ? ((VkBuf?)nwb.Buf) : null], [xq]);
        var pc = new QuantizePush { XOff = xo, XStride = (uint)x.Stride, Nb = nb, XdOff = (uint)T * nb * 4, XsOff = (uint)T * nb * 10, Totals = totals ? 1u : 0u };
        var q = Whole(xq);
        Run(_quantize, _quantize.Pipeline([norm ? 1u : 0u]), [xb, nwb, q, q, q], &pc, 1, (uint)T, 1);
        _cs.EndOp();
        return xq;
    }
}
