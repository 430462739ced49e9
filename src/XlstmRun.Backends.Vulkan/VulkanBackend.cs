using Silk.NET.Vulkan;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;

namespace XlstmRun.Backends.Vulkan;

/// <summary>
/// The Vulkan backend: every op of <see cref="IBackend"/> is a compute shader (shaders/*.comp). Weights are uploaded once
/// into device-local memory (repacked so that every load is 16 bytes), activations and the recurrent state stay on the
/// device; ops are recorded into a command buffer and submitted at the next read. A <see cref="ForwardPlan"/> is
/// compiled by <see cref="Planner"/> into fused kernels; <see cref="Replay"/> records the decode step once and resubmits
/// it. The files VulkanBackend.*.cs hold the kernels' dispatch code by concern (products, cell, small ops).
/// Precision (docs/precision.md): F32 weights always run float32 arithmetic; other weights may use f16 operands in the
/// tensor-core prefill GEMM and int8 activations in the quantized decode matvecs, unless <see cref="VulkanOptions.Float32"/>.
/// </summary>
public sealed unsafe partial class VulkanBackend : IBackend, IBandwidthProbe, IMatrixUnitProbe, IAluProbe, IProfilingBackend, IDeviceMemory
{
    private readonly VulkanContext _cx;
    /// <summary>The largest storage-buffer binding: the device's, or less when the options ask (tests).</summary>
    private readonly ulong _maxBinding;
    private readonly bool _ownsContext;
    private readonly Allocator _mem;
    private readonly CommandStream _cs;
    private readonly Uploader _up;
    private readonly DescriptorCache _desc;
    private readonly VkBuf _dummy;
    private readonly uint _redWg;

    public VulkanBackend(VulkanContext cx, bool ownsContext = false, VulkanOptions? options = null)
    {
        _cx = cx;
        _ownsContext = ownsContext;
        Options = options ?? new VulkanOptions();
        _maxBinding = Math.Min(cx.MaxBinding, Options.MaxBindingBytes ?? ulong.MaxValue);
        try
        {
            _mem = new Allocator(cx, Options.MapDeviceMemory);
            _cs = new CommandStream(cx, Options.Profile) { EagerChunkOps = Options.EagerChunkOps, PreciseBarriers = Options.PreciseBarriers };
            _up = new Uploader(cx, _mem);
            _cs.BeforeSubmit = _up.Submit;
            _desc = new DescriptorCache(cx);
            _dummy = _mem.Create(16, MemKind.Device);
            _redWg = 256;
            InitKernels();
        }
        catch
        {
            DisposeResources();
            throw;
        }
    }

    /// <summary>Open a device (see <see cref="VulkanContext.Create"/>) and a backend that owns it.</summary>
    public static VulkanBackend Create(int device = -1, bool hardwareOnly = false, VulkanOptions? options = null)
    {
        var cx = VulkanContext.Create(device, hardwareOnly);
        try
        {
            return new VulkanBackend(cx, ownsContext: true, options);
        }
        catch
        {
            cx.Dispose();
            throw;
        }
    }

    public VulkanContext Context => _cx;
    public VulkanOptions Options { get; }
    public string Name => "vulkan";
    public string Device => $"{_cx.Info.Name} (Vulkan {_cx.Info.ApiVersion}, {VulkanDeviceInfo.TypeName(_cx.Info.Type)}, subgroup {_cx.Info.SubgroupSize}" +
                            (_cx.UseSubgroups ? "" : ", no subgroup ops") + (_gemmCm != null && !Options.Float32 ? $", prefill GEMM on cooperative matrices (f16, tile {_gemmTile.BM}x{_gemmTile.BN})" : "") +
                            (_intDot ? ", int8-activation matvecs" : "") + (Options.Float32 ? ", precision f32" : "") + ")";

    // ---- precision policy ----------------------------------------------------------------------------------------

    /// <summary>The product runs as a matvec: up to <see cref="VulkanOptions.VecTokens"/> tokens (the decode step of
    /// one or several sequences: each weight load serves a group of tokens, and a token's sums do not depend on the
    /// group), or a weight with few rows (the 2·NH gate rows; a GEMM would run on one or two workgroups).</summary>
    private bool IsVec(VkWeight w, int tokens) => w.Rows < 128 && tokens <= 65535 || tokens <= Options.VecTokens && !SplitK(w, tokens);

    // the plan being run feeds prompt tokens (not a decode step); packs several sequences' prompts (Packing's class)
    private bool _feeding;
    private int _packClass;
    private const int PackSplitK = 1, PackMatVec = 2;

    /// <summary>The product runs as the split-K tensor-core GEMM (shaders/matmul_coopmat.glsl, SPLITK): a prompt feed of
    /// <see cref="VulkanOptions.FewMinTokens"/>..<see cref="VulkanOptions.VecTokens"/> tokens, where one workgroup walking
    /// all of K would be a chain of memory latencies and the matvec pays per token, or packed prompts of that length (any
    /// count: a token's bits do not depend on it, so each prompt gets what it gets alone).</summary>
    private bool SplitK(VkWeight w, int tokens) =>
        HalfGemm(w) && w.Rows >= 128 && _packClass != PackMatVec &&
        (_packClass == PackSplitK || _feeding && tokens >= Options.FewMinTokens && tokens <= Options.VecTokens);

    /// <summary>The tensor-core GEMM (f16 operands) may take this weight: never F32 weights, never values outside f16's
    /// range (<see cref="VkWeight.F16Safe"/>), not under --precision f32.</summary>
    private bool HalfGemm(VkWeight w) => _gemmCm != null && !Options.Float32 && w.DevType != GgmlType.F32 && w.F16Safe;

    /// <summary>Quantized matvec with int8 activations (integer dot products).</summary>
    private bool IntDotVec(VkWeight w) => _intDot && GgmlTypes.IsQuantized(w.DevType);

    /// <summary>Two packing classes, each giving a token the bits of its prompt's feed alone: feeds of
    /// <see cref="VulkanOptions.FewMinTokens"/>..<see cref="VulkanOptions.VecTokens"/> tokens run every large product as the
    /// split-K GEMM, and so do their packed passes (any total); shorter feeds (or every feed of up to VecTokens tokens
    /// where the split-K GEMM does not run) are matvecs, whose sums per token do not depend on the token count either:
    /// packed in passes of up to VecTokens tokens. The gate rows are matvecs in both; the other ops work row by row.</summary>
    public (int Class, int MaxTokens)? Packing(ModelWeights weights, int tokens)
    {
        if (tokens < 2 || tokens > Options.VecTokens) return null;
        bool split = _gemmCm != null && !Options.Float32 &&
            weights.Blocks.All(b => new[] { b.Qkvo, b.Out, b.GateUp, b.Down }.All(w => w is VkWeight v && (v.Rows < 128 || HalfGemm(v))));
        return split && tokens >= Options.FewMinTokens ? (PackSplitK, Math.Max(PreferredBatch, Options.VecTokens)) : (PackMatVec, Options.VecTokens);
    }

    public ActivationPrecision MatMulActivations(GgmlType weightType, int tokens)
    {
        if (Options.Float32 || weightType == GgmlType.F32) return ActivationPrecision.Float32;
        // a feed of this many prompt tokens (decode steps of several sequences take the matvec up to VecTokens)
        if (tokens <= Options.VecTokens && (tokens < Options.FewMinTokens || _gemmCm == null))
            return _intDot && GgmlTypes.IsQuantized(weightType) ? ActivationPrecision.Int8 : ActivationPrecision.Float32;
        return _gemmCm != null ? ActivationPrecision.Float16 : ActivationPrecision.Float32;
    }

    // ---- profiling -------------------------------------------------------------------------------------------------

    public bool Profiling => _cs.Profiling;
    public string ProfileReport() => _cs.ProfileReport() + _cs.StatsReport() + HostReport() + LoadReport();
    public IReadOnlyDictionary<string, (long Count, double Ns)> OpTimes() => _cs.OpTimes();
    public void ResetProfile() => _cs.ResetProfile();
    /// <summary>Wall-clock figures only (cheap; printed at dispose when XLSTM_VK_STATS=1).</summary>
    public string StatsReport() => _cs.StatsReport() + LoadReport();
    private string HostReport() =>
        $"vulkan host time: plan recording {_hostRun.Ms:F1} ms in {_hostRun.N} runs (fusion planning {_hostFuse.Ms:F1} ms), " +
        $"tensor allocation {_hostAlloc.Ms:F1} ms ({_hostAlloc.N}), release {_hostRelease.Ms:F1} ms ({_hostRelease.N}, incl. waiting for the device); " +
        $"descriptor sets {_desc.Count} cached\n";
    /// <summary>Host wall time and count of one kind of backend work (the --profile report's host line).</summary>
    private struct HostClock
    {
        public double Ms;
        public long N;
        public void Add(long t0) { Ms += System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds; N++; }
    }
    private HostClock _hostRun, _hostFuse, _hostAlloc, _hostRelease;
    private string LoadReport() =>
        $"vulkan weights: {_weightBytes / 1073741824.0:F2} GiB uploaded in {_loadMs / 1000:F2} s ({(_loadMs > 0 ? _weightBytes / 1e6 / _loadMs : 0):F2} GB/s); device memory {_mem.DeviceBytes / 1073741824.0:F3} GiB\n";
    private double _loadMs;
    private long _weightBytes;
    /// <summary>Device memory allocated now (weights, activations, state, scratch).</summary>
    public long DeviceBytes => (long)_mem.DeviceBytes;
    /// <summary>Most device memory allocated at once since the last <see cref="ResetPeak"/>.</summary>
    public long PeakDeviceBytes => (long)_mem.PeakDeviceBytes;
    public long WeightBytes => _weightDeviceBytes;
    private long _weightDeviceBytes;
    public void ResetPeak() => _mem.ResetPeak();
    public long? DriverReportedBytes() => _cx.DeviceHeapUsage();
    /// <summary>Dispatches recorded so far that fused several ops (tests).</summary>
    public long FusedDispatches { get; private set; }

    // ---- storage ---------------------------------------------------------------------------------------------------

    public IWeight LoadWeight(TensorView t)
    {
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        var w = LoadWeightCore(t);
        _loadMs += System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        _weightBytes += t.Bytes;
        return w;
    }

    private IWeight LoadWeightCore(TensorView t)
    {
        int cols = (int)t.Cols;
        int rows = checked((int)(t.Elements / t.Cols));
        bool vector = rows == 1 || t.Ne.Length == 1;
        var devType = vector ? GgmlType.F32 : t.Type;
        _ = WeightLayout.WType(devType); // rejects unknown types
        byte* src = t.Data;
        long srcRowBytes = t.RowBytes;
        float[]? decoded = null;
        if (vector && t.Type != GgmlType.F32)
        {
            decoded = t.ToFloatArray();
            srcRowBytes = cols * 4L;
        }
        int perPart = WeightLayout.RowsPerPart(devType, cols, rows, _maxBinding);
        if (!vector) NoteGemmWeight(devType, rows, cols, perPart);
        var parts = new List<WeightPart>();
        fixed (float* dp = decoded)
        {
            if (decoded != null) src = (byte*)dp;
            for (int r0 = 0; r0 < rows; r0 += perPart)
            {
                int n = Math.Min(perPart, rows - r0);
                ulong bytes = WeightLayout.PartBytes(devType, cols, n);
                var buf = _mem.Create(bytes, MemKind.Device);
                _weightDeviceBytes += (long)buf.Size;
                long mainRow = WeightLayout.MainRowBytes(devType, cols), scaleRow = WeightLayout.ScaleRowBytes(devType, cols);
                ulong mainBytes = (ulong)(mainRow * n);
                // upload in row chunks that fit the staging buffer
                long chunkRows = Math.Max(1, (long)(_up.StagingSize / 2) / Math.Max(1, mainRow));
                for (int a = 0; a < n; a += (int)chunkRows)
                {
                    int b = (int)Math.Min(n, a + chunkRows);
                    byte* s = src;
                    int ra = r0 + a, rb = r0 + b;
                    _up.Write(buf, (ulong)(a * mainRow), (ulong)((b - a) * mainRow), d => WeightLayout.FillMain(devType, s, srcRowBytes, cols, ra, rb, d));
                    if (scaleRow > 0)
                        _up.Write(buf, mainBytes + (ulong)(a * scaleRow), (ulong)((b - a) * scaleRow), d => WeightLayout.FillScales(devType, s, srcRowBytes, cols, ra, rb, d));
                }
                parts.Add(new WeightPart
                {
                    Buf = buf, RowStart = r0, RowCount = n, WStride = WeightLayout.WStride(devType, cols),
                    ScaleBase = (uint)(mainBytes / 2),
                });
            }
        }
        // f16 operands in the tensor-core GEMM only where every value survives the narrowing (docs/precision.md)
        bool f16Safe = vector || devType == GgmlType.F32 || _gemmCm == null || WeightLayout.FitsF16(devType, src, srcRowBytes, cols, rows);
        return new VkWeight { Name = t.Name, Type = t.Type, DevType = devType, Rows = rows, Cols = cols, Parts = parts.ToArray(), F16Safe = f16Safe };
    }

    public ITensor Alloc(int rows, int cols)
    {
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        int stride = VkTensor.StrideFor(cols);
        var buf = _mem.Create((ulong)rows * (ulong)stride * 4, MemKind.Device);
        var cb = _cs.BeginOp("fill", [], [buf], transfer: true);
        _cx.Vk.CmdFillBuffer(cb, buf.Handle, 0, Vk.WholeSize, 0);
        _cs.EndOp();
        _hostAlloc.Add(t0);
        return new VkTensor(buf, 0, rows, cols, stride);
    }

    public void Free(ITensor t)
    {
        var v = (VkTensor)t;
        if (v.Offset != 0) throw new ArgumentException("only whole tensors from Alloc can be freed");
        Release(v.Buf);
    }

    /// <summary>Destroy a buffer once the device is done with it, and the descriptor sets that name it.</summary>
    private void Release(VkBuf b)
    {
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        _cs.Flush();
        _desc.Forget(b);
        _mem.Release(b);
        _hostRelease.Add(t0);
    }

    public ITensor Rows(ITensor t, int row0, int rows)
    {
        var v = (VkTensor)t;
        if (row0 < 0 || rows < 0 || row0 + rows > v.Rows) throw new ArgumentOutOfRangeException(nameof(rows));
        return new VkTensor(v.Buf, v.Offset + (long)row0 * v.Stride, rows, v.Cols, v.Stride);
    }

    public ITokenBuffer AllocTokens(int capacity) => new VkTokens(_mem.Create((ulong)capacity * 4, MemKind.Upload), capacity);

    public void FreeTokens(ITokenBuffer t) => Release(((VkTokens)t).Buf);

    public IIndexBuffer AllocIndices(int capacity) => new VkIndices(_mem.Create((ulong)capacity * 4, MemKind.Readback), capacity);

    public IStateBuffer AllocState(ModelConfig config, int slots = 1)
    {
        if (slots < 1) throw new ArgumentOutOfRangeException(nameof(slots));
        ulong stride = VkState.StrideFor(config);
        ulong slotBytes = stride * (ulong)config.Blocks;
        // as many slots per buffer as the allocation (and one binding) may hold
        ulong limit = Math.Min(_cx.MaxAllocation, _maxBinding);
        int perBuffer = (int)Math.Clamp(limit / slotBytes, 1UL, (ulong)slots);
        var groups = new List<(VkBuf, int, int)>();
        for (int first = 0; first < slots; first += perBuffer)
        {
            int n = Math.Min(perBuffer, slots - first);
            groups.Add((_mem.Create(slotBytes * (ulong)n, MemKind.Device), first, n));
        }
        var s = new VkState(config, stride, groups.ToArray(), slots);
        ResetState(s);
        // step-kernel scratch now, so that no allocation (or its zero fill) lands inside a replay recording
        StepCounters(config, slots);
        StepPartials(config, slots);
        // The state is the last thing a ModelRunner allocates: finish the uploads and zero fills now, so that loading is
        // complete (and timed) before the first forward pass.
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        _cs.Flush();
        _up.Finish();
        _loadMs += System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        _cs.ResetStats();
        return s;
    }

    public IStateBuffer StateSlot(IStateBuffer state, int slot) => ((VkState)state).Slot(slot);

    /// <summary>Token ids: through the mapping when nothing is pending on the device (a decode step), else recorded as
    /// a buffer update in the command stream (between the batches of a long prompt: no host round trip).</summary>
    public void WriteTokens(ITokenBuffer dst, ReadOnlySpan<int> ids)
    {
        var t = (VkTokens)dst;
        if (ids.Length > t.Capacity) throw new ArgumentException("too many token ids for the buffer");
        if (_cs.Idle)
        {
            ids.CopyTo(new Span<int>(t.Buf.Mapped, ids.Length));
            return;
        }
        fixed (int* p = ids)
        {
            for (int o = 0; o < ids.Length; o += 16384)
            {
                int n = Math.Min(16384, ids.Length - o);
                var cb = _cs.BeginOp("tokens", [], [t.Buf], transfer: true);
                _cx.Vk.CmdUpdateBuffer(cb, t.Buf.Handle, (ulong)o * 4, (ulong)n * 4, p + o);
                _cs.EndOp();
            }
        }
    }

    private VkBuf? _readback;

    private VkBuf Readback(ulong bytes)
    {
        if (_readback == null || _readback.Size < bytes)
        {
            if (_readback != null) Release(_readback);
            _readback = _mem.Create(Math.Max(bytes, 1UL << 20), MemKind.Readback);
        }
        return _readback;
    }

    /// <summary>Copy rows of a tensor to the host (a strided device copy, or the mapping when device memory is host-visible).</summary>
    private void ReadRows(VkBuf buf, long offsetFloats, int rows, int cols, int stride, Span<float> dst)
    {
        if (dst.Length < (long)rows * cols) throw new ArgumentException("destination too small");
        byte* from;
        if (buf.Mapped != null)
        {
            _cs.Flush();
            from = buf.Mapped + offsetFloats * 4;
        }
        else
        {
            ulong bytes = (ulong)rows * (ulong)stride * 4;
            var rb = Readback(bytes);
            var cb = _cs.BeginOp("read", [buf], [rb]);
            var region = new BufferCopy { SrcOffset = (ulong)offsetFloats * 4, DstOffset = 0, Size = bytes - (ulong)(stride - cols) * 4 };
            _cx.Vk.CmdCopyBuffer(cb, buf.Handle, rb.Handle, 1, &region);
            _cs.EndOp();
            _cs.Flush();
            from = rb.Mapped;
        }
        for (int r = 0; r < rows; r++)
            new ReadOnlySpan<float>(from + (long)r * stride * 4, cols).CopyTo(dst.Slice(r * cols, cols));
    }

    public void Read(ITensor src, Span<float> dst)
    {
        var t = (VkTensor)src;
        ReadRows(t.Buf, t.Offset, t.Rows, t.Cols, t.Stride, dst);
    }

    /// <summary>Write host floats into a tensor (tests and tools; not part of the model's op sequence).</summary>
    public void Write(ITensor dst, ReadOnlySpan<float> src)
    {
        var t = (VkTensor)dst;
        if (src.Length != t.Rows * t.Cols) throw new ArgumentException("source length does not match the tensor");
        _cs.Flush();
        fixed (float* sp = src)
        {
            float* s = sp;
            int cols = t.Cols, stride = t.Stride, rows = t.Rows;
            _up.Write(t.Buf, (ulong)t.Offset * 4, (ulong)((long)rows * stride * 4 - (stride - cols) * 4L), d =>
            {
                for (int r = 0; r < rows; r++) System.Buffer.MemoryCopy(s + (long)r * cols, d + (long)r * stride * 4, cols * 4L, cols * 4L);
            });
            _up.Finish();
        }
    }

    public void ReadIndices(IIndexBuffer src, Span<int> dst)
    {
        var t = (VkIndices)src;
        if (dst.Length > t.Capacity) throw new ArgumentException("destination larger than the index buffer");
        _cs.Flush();
        new ReadOnlySpan<int>(t.Buf.Mapped, dst.Length).CopyTo(dst);
    }

    public void ReadState(IStateBuffer src, Span<float> dst)
    {
        var s = (VkState)src;
        var c = s.Config;
        if (dst.Length < c.StateFloats) throw new ArgumentException("destination too small");
        int per = (int)c.StateFloatsPerBlock;
        int strideFloats = (int)(s.BlockStride / 4);
        if (s.Slots != 1) throw new ArgumentException("read one slot of a multi-sequence state through its view (StateSlot)");
        // blocks are rows of a [Blocks, per] matrix with a padded row stride
        ReadRows(s.Buf, (long)(s.Base / 4), c.Blocks, per, strideFloats, dst);
    }

    public void WriteState(IStateBuffer dst, ReadOnlySpan<float> src)
    {
        var s = (VkState)dst;
        var c = s.Config;
        if (src.Length < c.StateFloats) throw new ArgumentException("source too small");
        if (s.Slots != 1) throw new ArgumentException("write one slot of a multi-sequence state through its view (StateSlot)");
        _cs.Flush();
        int per = (int)c.StateFloatsPerBlock;
        fixed (float* sp = src)
        {
            for (int b = 0; b < c.Blocks; b++)
            {
                float* blockSrc = sp + (long)b * per;
                // pieces no larger than half the staging buffer
                long pieceFloats = (long)(_up.StagingSize / 8);
                for (long o = 0; o < per; o += pieceFloats)
                {
                    long n = Math.Min(pieceFloats, per - o);
                    float* from = blockSrc + o;
                    _up.Write(s.Buf, s.Base + s.BlockStride * (ulong)b + (ulong)o * 4, (ulong)n * 4, d => System.Buffer.MemoryCopy(from, d, n * 4, n * 4));
                }
            }
            _up.Finish();
        }
    }

    public void ResetState(IStateBuffer dst)
    {
        var s = (VkState)dst;
        foreach (var (buf, _, count) in s.Groups)
        {
            var cb = _cs.BeginOp("reset", [], [buf], transfer: true);
            _cx.Vk.CmdFillBuffer(cb, buf.Handle, s.Base, s.SlotStride * (ulong)count, 0);
            _cs.EndOp();
        }
    }

    /// <summary>The device's memory bandwidth (bench): see <see cref="DeviceProbe"/>. Waits for pending work first; the
    /// probe's buffers are freed before it returns.</summary>
    public BandwidthProbeResult MeasureDeviceBandwidth(long bytes, int passes)
    {
        _cs.Flush();
        return new DeviceProbe(_cx, _mem, _copy).Measure(bytes, passes);
    }

    // ---- plans -------------------------------------------------------------------------------------------------------

    public int PreferredBatch => Options.Batch ?? (_cx.Info.DeviceLocalBytes >= 16UL << 30 && _cx.Info.IsHardware ? 2048 : 256);

    public bool TransientBatchBuffers => true;

    public void Replay(string key, Action record) => _cs.Replay(key, record);

    public void Run(ForwardPlan plan)
    {
        (_feeding, _packClass) = (!plan.Decode, plan.PackClass);
        try
        {
            RunSteps(plan);
        }
        finally
        {
            (_feeding, _packClass) = (false, 0);
        }
    }

    private void RunSteps(ForwardPlan plan)
    {
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        var steps = Planner.Fuse(plan, new Facts(this), Options.Fusion, Options.CellGroups);
        _hostFuse.Add(t0);
        bool xqReady = false;   // the previous matvec quantized this one's input (M_QOUT)
        for (int i = 0; i < steps.Count; i++)
        {
            var step = AsMatVec(steps[i]);
            switch (step)
            {
                case Planner.MatVec mv:
                    var next = i + 1 < steps.Count ? AsMatVec(steps[i + 1]) as Planner.MatVec : null;
                    bool qout = next != null && CanQuantizeOut(mv, next);
                    DispatchMatVec(mv, qout ? (VkWeight)next!.Norm!.W : null, xqReady);
                    xqReady = qout;
                    continue;
                case Planner.Cell { Op: MlstmCellOp one } c:
                    DispatchStep(one.Config, one.Qkvo, one.Gates, one.State, one.Block, one.H, c.Norm, c.WriteH);
                    break;
                case Planner.CellGroup g:
                    MlstmCellGroup(g.Cells);
                    break;
                case Planner.Cell { Op: MlstmStepRowsOp rows } c:
                    DispatchStep(rows.Config, rows.Qkvo, rows.Gates, rows.State, rows.Block, rows.H, c.Norm, c.WriteH);
                    break;
                case Planner.Single s:
                    s.Op.RunOn(this);
                    break;
            }
            xqReady = false;
        }
        _hostRun.Add(t0);
    }

    /// <summary>A plain product that runs as a matvec, as a (fusion-free) matvec step; any other step as it is.</summary>
    private Planner.Step AsMatVec(Planner.Step s) =>
        s is Planner.Single { Op: MatMulOp m } && IsVec((VkWeight)m.W, m.X.Rows) ? new Planner.MatVec(m, null, false, null, null, false, null) : s;

    private sealed class Facts(VulkanBackend be) : Planner.IFacts
    {
        public bool IsMatVec(MatMulOp m) => be.IsVec((VkWeight)m.W, m.X.Rows);
        public bool CanBeAux(IWeight w) => w is VkWeight v && v.DevType == GgmlType.F32 && v.Rows <= 64 && v.Parts.Length == 1;
        public bool Fusable(IWeight w) => ((VkWeight)w).Parts.Length == 1;
        public bool Overlaps(ITensor a, ITensor b)
        {
            var x = (VkTensor)a;
            var y = (VkTensor)b;
            if (x.Buf != y.Buf) return false;
            long xs = x.Offset, xe = x.Offset + (long)x.Rows * x.Stride, ys = y.Offset, ye = y.Offset + (long)y.Rows * y.Stride;
            return xs < ye && ys < xe;
        }
        public bool Same(ITensor a, ITensor b) => SameView((VkTensor)a, (VkTensor)b);
        public bool SeparateStates(IStateBuffer a, IStateBuffer b)
        {
            var x = (VkState)a;
            var y = (VkState)b;
            if (x.Slots != 1 || y.Slots != 1) return false;
            return x.Buf != y.Buf || x.Base + x.SlotStride <= y.Base || y.Base + y.SlotStride <= x.Base;
        }
    }

    private static bool SameView(VkTensor a, VkTensor b) =>
        a.Buf == b.Buf && a.Offset == b.Offset && a.Rows == b.Rows && a.Cols == b.Cols && a.Stride == b.Stride;

    // ---- bindings ----------------------------------------------------------------------------------------------------

    /// <summary>A binding that covers the tensor's rows, and the tensor's first element relative to it.</summary>
    private (Binding B, uint Off) Act(VkTensor t)
    {
        if (t.Buf.Size <= _maxBinding) return (Binding.Whole(t.Buf), checked((uint)t.Offset));
        ulong start = (ulong)t.Offset * 4;
        ulong align = Math.Max(256UL, _cx.Limits.MinStorageBufferOffsetAlignment);
        ulong off = start / align * align;
        ulong range = Math.Min(t.Buf.Size - off, _maxBinding / align * align);
        if (start + (ulong)t.Rows * (ulong)t.Stride * 4 > off + range)
            throw new InvalidOperationException($"an activation view of {(ulong)t.Rows * (ulong)t.Stride * 4} bytes exceeds the device's storage-buffer range ({_maxBinding} bytes): use a smaller batch");
        return (new Binding(t.Buf, off, range), (uint)((start - off) / 4));
    }

    private static Binding Whole(VkBuf b) => Binding.Whole(b);

    private Binding StateBlock(VkState s, int block) => new(s.Buf, s.Base + s.BlockStride * (ulong)block, s.BlockBytes);

    private static uint Groups(long n, long per) => checked((uint)((n + per - 1) / per));

    private (uint X, uint Y) Grid2(uint groups)
    {
        var lim = _cx.Limits;
        uint maxX = Math.Min(lim.MaxComputeWorkGroupCount[0], 65535u);
        if (groups <= maxX) return (groups, 1);
        uint y = (groups + maxX - 1) / maxX;
        return ((groups + y - 1) / y, y);
    }

    private void Run(Kernel k, Pipeline p, ReadOnlySpan<Binding> b, void* push, uint gx, uint gy = 1, uint gz = 1) =>
        _cs.Dispatch(k, p, _desc.Set(k, b), push, gx, gy, gz);

    // ---- lifetime ----------------------------------------------------------------------------------------------------

    private void DisposeResources()
    {
        try
        {
            _cs?.Flush();
        }
        catch (InvalidOperationException) { }
        _cs?.Dispose();
        _up?.Dispose();
        _desc?.Dispose();
        _mem?.Dispose();
    }

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (Options.Stats && Options.Log != null)
            try { _cs.Flush(); Options.Log(StatsReport().TrimEnd('\n')); } catch (InvalidOperationException) { }
        DisposeResources();
        if (_ownsContext) _cx.Dispose();
    }
}
