using System.Runtime.InteropServices;
using Silk.NET.Vulkan;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;

namespace XlstmRun.Backends.Vulkan;

/// <summary>
/// The Vulkan backend: every op of <see cref="IBackend"/> is a compute shader (shaders/*.comp). Weights are uploaded once
/// into device-local memory (repacked so that every load is 16 bytes), activations and the recurrent state stay on the
/// device; ops are recorded into a command buffer and submitted at the next read, and <see cref="Replay"/> records the
/// decode step once and resubmits it.
/// </summary>
public sealed unsafe class VulkanBackend : IBackend, IBandwidthProbe
{
    private readonly VulkanContext _cx;
    private readonly bool _ownsContext;
    private readonly Allocator _mem;
    private readonly CommandStream _cs;
    private readonly Uploader _up;
    private readonly Kernel _matvec, _matmul, _embed, _rmsnorm, _headnorm, _swiglu, _softcap, _argmax, _step, _cgates, _cout, _cstate, _copy;
    private readonly Kernel? _matmulCm;
    private readonly DescriptorCache _desc;
    private readonly VkBuf _dummy;
    private VkBuf? _scratch, _counters, _partials, _readback;
    private readonly uint _redWg;
    private readonly (uint Wg, uint Rows)[] _mv = new (uint, uint)[5];

    public const int ChunkMax = 64;

    public VulkanBackend(VulkanContext cx, bool ownsContext = false, bool profile = false)
    {
        _cx = cx;
        _ownsContext = ownsContext;
        try
        {
            _mem = new Allocator(cx);
            _cs = new CommandStream(cx, profile);
            _up = new Uploader(cx, _mem);
            _cs.BeforeSubmit = _up.Submit;
            _desc = new DescriptorCache(cx);
            Kernel K(string name, int bindings, uint push) => cx.Kernel(name, bindings, push);
            _matvec = K("matvec", 8, (uint)sizeof(MatPush));
            _matmul = K("matmul", 5, (uint)sizeof(MatPush));
            _embed = K("embed", 4, (uint)sizeof(EmbedPush));
            _rmsnorm = K("rmsnorm", 3, (uint)sizeof(RmsPush));
            _headnorm = K("headnorm", 4, (uint)sizeof(HeadNormPush));
            _swiglu = K("swiglu", 2, (uint)sizeof(SwiGluPush));
            _softcap = K("softcap", 1, (uint)sizeof(SoftCapPush));
            _argmax = K("argmax", 2, (uint)sizeof(ArgmaxPush));
            _step = K("mlstm_step", 8, (uint)sizeof(StepPush));
            _cgates = K("mlstm_chunk_gates", 4, (uint)sizeof(ChunkGatesPush));
            _cout = K("mlstm_chunk_out", 4, (uint)sizeof(ChunkOutPush));
            _cstate = K("mlstm_chunk_state", 3, (uint)sizeof(ChunkStatePush));
            _copy = K("copy", 2, 8);
            if (cx.CoopMatNv)
            {
                // build one pipeline now: a driver that rejects the module leaves the fp32 GEMM in place
                try
                {
                    _matmulCm = K("matmul_coopmat", 5, (uint)sizeof(MatPush));
                    _matmulCm.Pipeline([0, 0, WeightLayout.WType(GgmlType.F16)]);
                }
                catch (Exception e) when (e is InvalidOperationException or VulkanUnavailableException)
                {
                    _matmulCm = null;
                    if (Environment.GetEnvironmentVariable("XLSTM_DEBUG") == "1") Console.Error.WriteLine($"vulkan: cooperative-matrix GEMM unavailable ({e.Message})");
                }
            }
            else if (TestEmulateCoopMat) _matmulCm = K("matmul_coopmat_emu", 5, (uint)sizeof(MatPush));
            _dummy = _mem.Create(16, MemKind.Device);
            _redWg = 256;
            // matvec shape per weight type: workgroup size and rows per workgroup (XLSTM_VK_MATVEC="wg,rows" overrides)
            // Q8_0/Q4_0: 8 rows (H100 2026-11-27: 4.04 ms per Q4_0 step at 8 rows, 5.10 at 4; Q8_0 5.02 / 5.66;
            // docs/notes/vulkan-backend.md)
            for (int t = 0; t < 5; t++) _mv[t] = t >= 3 ? (128u, 8u) : (128u, 2u);
            var env = Environment.GetEnvironmentVariable("XLSTM_VK_MATVEC");
            if (!string.IsNullOrEmpty(env))
            {
                var p = env.Split(',');
                if (p.Length == 2 && uint.TryParse(p[0], out var wg) && uint.TryParse(p[1], out var rows) && wg is >= 32 and <= 256 && (wg & (wg - 1)) == 0 && rows is >= 1 and <= 8)
                    for (int t = 0; t < 5; t++) _mv[t] = (wg, rows);
            }
        }
        catch
        {
            DisposeResources();
            throw;
        }
    }

    /// <summary>Open a device (see <see cref="VulkanContext.Create"/>) and a backend that owns it.</summary>
    public static VulkanBackend Create(int device = -1, bool hardwareOnly = false, bool profile = false)
    {
        var cx = VulkanContext.Create(device, hardwareOnly);
        try
        {
            return new VulkanBackend(cx, ownsContext: true, profile);
        }
        catch
        {
            cx.Dispose();
            throw;
        }
    }

    public VulkanContext Context => _cx;

    /// <summary>Tests only: backends created while this is set run the prefill GEMM through the cooperative-matrix kernel
    /// built with emulated matrix operations (matmul_coopmat_emu), so its tiling, f16 staging and epilogue are checked on
    /// a device without cooperative matrices.</summary>
    public static bool TestEmulateCoopMat { get; set; }
    public string Name => "vulkan";
    public string Device => $"{_cx.Info.Name} (Vulkan {_cx.Info.ApiVersion}, {VulkanDeviceInfo.TypeName(_cx.Info.Type)}, subgroup {_cx.Info.SubgroupSize}" +
                            (_cx.UseSubgroups ? "" : ", no subgroup ops") + (_matmulCm != null && _cx.CoopMatNv ? ", prefill GEMM on NV cooperative matrix (f16)" : "") + ")";
    public bool Profiling => _cs.Profiling;
    public string ProfileReport() => _cs.ProfileReport() + _cs.StatsReport() + LoadReport();
    /// <summary>Wall-clock figures only (cheap; printed at dispose when XLSTM_VK_STATS=1).</summary>
    public string StatsReport() => _cs.StatsReport() + LoadReport();
    private string LoadReport() =>
        $"vulkan weights: {_weightBytes / 1073741824.0:F2} GiB uploaded in {_loadMs / 1000:F2} s ({(_loadMs > 0 ? _weightBytes / 1e6 / _loadMs : 0):F2} GB/s); device memory {_mem.DeviceBytes / 1073741824.0:F2} GiB\n";
    private double _loadMs;
    private long _weightBytes;
    /// <summary>Device memory allocated so far (weights, activations, state, scratch).</summary>
    public ulong DeviceBytes => _mem.DeviceBytes;
    public long Barriers => _cs.Barriers;

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
        int perPart = WeightLayout.RowsPerPart(devType, cols, rows, _cx.MaxBinding);
        var parts = new List<WeightPart>();
        fixed (float* dp = decoded)
        {
            if (decoded != null) src = (byte*)dp;
            for (int r0 = 0; r0 < rows; r0 += perPart)
            {
                int n = Math.Min(perPart, rows - r0);
                ulong bytes = WeightLayout.PartBytes(devType, cols, n);
                var buf = _mem.Create(bytes, MemKind.Device);
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
        return new VkWeight { Name = t.Name, Type = t.Type, DevType = devType, Rows = rows, Cols = cols, Parts = parts.ToArray() };
    }

    public ITensor Alloc(int rows, int cols)
    {
        ResolveAll();
        int stride = VkTensor.StrideFor(cols);
        var buf = _mem.Create((ulong)rows * (ulong)stride * 4, MemKind.Device);
        var cb = _cs.BeginOp("fill", [], [buf]);
        _cx.Vk.CmdFillBuffer(cb, buf.Handle, 0, Vk.WholeSize, 0);
        _cs.EndOp();
        return new VkTensor(buf, 0, rows, cols, stride);
    }

    public ITensor Rows(ITensor t, int row0, int rows)
    {
        var v = (VkTensor)t;
        if (row0 < 0 || rows < 0 || row0 + rows > v.Rows) throw new ArgumentOutOfRangeException(nameof(rows));
        return new VkTensor(v.Buf, v.Offset + (long)row0 * v.Stride, rows, v.Cols, v.Stride);
    }

    public ITokenBuffer AllocTokens(int capacity) => new VkTokens(_mem.Create((ulong)capacity * 4, MemKind.Upload), capacity);
    public IIndexBuffer AllocIndices(int capacity) => new VkIndices(_mem.Create((ulong)capacity * 4, MemKind.Readback), capacity);

    public IStateBuffer AllocState(ModelConfig config)
    {
        ulong stride = VkState.StrideFor(config);
        var buf = _mem.Create(stride * (ulong)config.Blocks, MemKind.Device);
        ResolveAll();
        var s = new VkState(config, buf, stride);
        ResetState(s);
        // cell scratch and step counters now, so that no allocation (or its zero fill) lands inside a replay recording
        Scratch(config);
        Counters(config);
        Partials(config);
        // The state is the last thing a ModelRunner allocates: finish the uploads and zero fills now, so that loading is
        // complete (and timed) before the first forward pass.
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        _cs.Flush();
        _up.Finish();
        _loadMs += System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        _cs.ResetStats();
        return s;
    }

    public void WriteTokens(ITokenBuffer dst, ReadOnlySpan<int> ids)
    {
        var t = (VkTokens)dst;
        if (ids.Length > t.Capacity) throw new ArgumentException("too many token ids for the buffer");
        ResolveAll();
        _cs.Flush(); // earlier ops may still read the old ids
        ids.CopyTo(new Span<int>(t.Buf.Mapped, ids.Length));
    }

    private VkBuf Readback(ulong bytes)
    {
        if (_readback == null || _readback.Size < bytes) _readback = _mem.Create(Math.Max(bytes, 1UL << 20), MemKind.Readback);
        return _readback;
    }

    /// <summary>Copy rows of a tensor to the host (a strided device copy, or the mapping when device memory is host-visible).</summary>
    private void ReadRows(VkBuf buf, long offsetFloats, int rows, int cols, int stride, Span<float> dst)
    {
        if (dst.Length < (long)rows * cols) throw new ArgumentException("destination too small");
        ResolveAll();
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
        ResolveAll();
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
        ResolveAll();
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
        // blocks are rows of a [Blocks, per] matrix with a padded row stride
        ReadRows(s.Buf, 0, c.Blocks, per, strideFloats, dst);
    }

    public void WriteState(IStateBuffer dst, ReadOnlySpan<float> src)
    {
        var s = (VkState)dst;
        var c = s.Config;
        if (src.Length < c.StateFloats) throw new ArgumentException("source too small");
        ResolveAll();
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
                    _up.Write(s.Buf, s.BlockStride * (ulong)b + (ulong)o * 4, (ulong)n * 4, d => System.Buffer.MemoryCopy(from, d, n * 4, n * 4));
                }
            }
            _up.Finish();
        }
    }

    public void ResetState(IStateBuffer dst)
    {
        var s = (VkState)dst;
        ResolveAll();
        var cb = _cs.BeginOp("reset", [], [s.Buf]);
        _cx.Vk.CmdFillBuffer(cb, s.Buf.Handle, 0, Vk.WholeSize, 0);
        _cs.EndOp();
    }

    /// <summary>The device's memory bandwidth (bench): see <see cref="DeviceProbe"/>. Waits for pending work first; the
    /// probe's buffers are freed before it returns.</summary>
    public BandwidthProbeResult MeasureDeviceBandwidth(long bytes, int passes)
    {
        ResolveAll();
        _cs.Flush();
        return new DeviceProbe(_cx, _mem, _copy).Measure(bytes, passes);
    }

    public void Replay(string key, Action record)
    {
        ResolveAll();
        _cs.Replay(key, () =>
        {
            record();
            ResolveAll(); // nothing deferred may leak out of the recording
        });
    }

    // ---- bindings ----------------------------------------------------------------------------------------------------

    /// <summary>A binding that covers the tensor's rows, and the tensor's first element relative to it.</summary>
    private (Binding B, uint Off) Act(VkTensor t)
    {
        if (t.Buf.Size <= _cx.MaxBinding) return (Binding.Whole(t.Buf), checked((uint)t.Offset));
        ulong start = (ulong)t.Offset * 4;
        ulong off = start / 256 * 256;
        ulong range = Math.Min(t.Buf.Size - off, _cx.MaxBinding / 256 * 256);
        if (start + (ulong)t.Rows * (ulong)t.Stride * 4 > off + range)
            throw new InvalidOperationException($"an activation view of {(ulong)t.Rows * (ulong)t.Stride * 4} bytes exceeds the device's storage-buffer range ({_cx.MaxBinding} bytes): use a smaller batch");
        return (new Binding(t.Buf, off, range), (uint)((start - off) / 4));
    }

    private static Binding Whole(VkBuf b) => Binding.Whole(b);

    private Binding StateBlock(VkState s, int block) => new(s.Buf, s.BlockStride * (ulong)block, s.BlockBytes);

    private static uint Groups(long n, long per) => checked((uint)((n + per - 1) / per));

    private (uint X, uint Y) Grid2(uint groups)
    {
        var lim = _cx.Limits;
        uint maxX = Math.Min(lim.MaxComputeWorkGroupCount[0], 65535u);
        if (groups <= maxX) return (groups, 1);
        uint y = (groups + maxX - 1) / maxX;
        return ((groups + y - 1) / y, y);
    }

    // ---- push constants (must match the shaders' push_constant blocks) --------------------------------------------

    [StructLayout(LayoutKind.Sequential)]
    private struct MatPush
    {
        public uint Rows, Cols, WStride, ScaleBase, XOff, XStride, DOff, DStride, BOff, Flags, NTok;
        public uint AOff, AStride, SOff, Half;
        public float Eps, Cap;
    }
    [StructLayout(LayoutKind.Sequential)]
    private struct EmbedPush { public uint RowStart, RowCount, Cols, WStride, ScaleBase, DOff, DStride, NTok; }
    [StructLayout(LayoutKind.Sequential)]
    private struct RmsPush { public uint XOff, XStride, DOff, DStride, Cols, WOff; public float Eps; }
    [StructLayout(LayoutKind.Sequential)]
    private struct HeadNormPush { public uint HOff, HStride, OOff, OStride, DOff, DStride, Dv, WOff; public float Eps; }
    [StructLayout(LayoutKind.Sequential)]
    private struct SwiGluPush { public uint GOff, GStride, DOff, DStride, F, NTok; }
    [StructLayout(LayoutKind.Sequential)]
    private struct SoftCapPush { public uint XOff, XStride, Cols, NTok; public float Cap; }
    [StructLayout(LayoutKind.Sequential)]
    private struct ArgmaxPush { public uint XOff, XStride, ValidCols, OOff; }
    [StructLayout(LayoutKind.Sequential)]
    private struct StepPush
    {
        public uint QOff, KOff, VOff, GOff, HOff, NH, Dqk, Dv, NOff, MOff, CntOff, Splits, RowsPerSplit;
        public float Cap, Eps;
        public uint Fuse, OOff, GdOff;
        public float NormEps;
    }
    [StructLayout(LayoutKind.Sequential)]
    private struct ChunkGatesPush { public uint QOff, KOff, RowStride, GOff, GStride, Len, NH, Dqk, NOff, MOff; public float Cap, Eps; }
    [StructLayout(LayoutKind.Sequential)]
    private struct ChunkOutPush { public uint QOff, VOff, RowStride, HOff, HStride, Len, Dqk, Dv; }
    [StructLayout(LayoutKind.Sequential)]
    private struct ChunkStatePush { public uint KOff, VOff, RowStride, Len, Dqk, Dv; }

    // ---- ops ---------------------------------------------------------------------------------------------------------

    private void Run(Kernel k, Pipeline p, ReadOnlySpan<Binding> b, void* push, uint gx, uint gy = 1, uint gz = 1) =>
        _cs.Dispatch(k, p, _desc.Set(k, b), push, gx, gy, gz);

    private static string TypeName(VkWeight w) => GgmlTypes.Name(w.DevType);

    public void Embed(IWeight table, ITokenBuffer ids, ITensor dst)
    {
        var w = (VkWeight)table;
        var tok = (VkTokens)ids;
        var d = (VkTensor)dst;
        if (d.Cols != w.Cols) throw new ArgumentException($"embed: table has {w.Cols} columns, destination {d.Cols}");
        if (d.Rows > tok.Capacity) throw new ArgumentException("embed: more rows than token ids");
        ResolveAll();
        var (db, dOff) = Act(d);
        var reads = new VkBuf?[w.Parts.Length + 1];
        for (int i = 0; i < w.Parts.Length; i++) reads[i] = w.Parts[i].Buf;
        reads[^1] = tok.Buf;
        _cs.BeginOp("embed." + TypeName(w), reads, [d.Buf]);
        var pipe = _embed.Pipeline([0, 0, w.WType]);
        foreach (var p in w.Parts)
        {
            var pc = new EmbedPush
            {
                RowStart = (uint)p.RowStart, RowCount = (uint)p.RowCount, Cols = (uint)w.Cols, WStride = p.WStride, ScaleBase = p.ScaleBase,
                DOff = dOff, DStride = (uint)d.Stride, NTok = (uint)d.Rows,
            };
            Run(_embed, pipe, [Whole(p.Buf), Whole(p.Buf), Whole(tok.Buf), db], &pc, Groups((w.Cols + 7) / 8, 64), (uint)d.Rows);
        }
        _cs.EndOp();
    }

    public void RmsNorm(ITensor x, IWeight w, ITensor dst, float eps)
    {
        var X = (VkTensor)x;
        var W = (VkWeight)w;
        var D = (VkTensor)dst;
        if (X.Cols != W.Cols || D.Cols != X.Cols || D.Rows != X.Rows) throw new ArgumentException("rmsnorm: shape mismatch");
        ResolveAll();
        // one token: deferred, so that the matvecs reading dst can apply the norm themselves (see "deferred ops")
        if (_fuse && X.Rows == 1 && X.Buf != D.Buf && W.Parts.Length == 1)
        {
            _norm = new PendingNorm(X, W, D, eps);
            return;
        }
        DispatchRmsNorm(X, W, D, eps);
    }

    private void DispatchRmsNorm(VkTensor X, VkWeight W, VkTensor D, float eps)
    {
        var (xb, xo) = Act(X);
        var (db, dOff) = Act(D);
        _cs.BeginOp("rmsnorm", [X.Buf, W.Parts[0].Buf], [D.Buf]);
        var pc = new RmsPush { XOff = xo, XStride = (uint)X.Stride, DOff = dOff, DStride = (uint)D.Stride, Cols = (uint)X.Cols, WOff = 0, Eps = eps };
        Run(_rmsnorm, _rmsnorm.Pipeline([_redWg]), [xb, Whole(W.Parts[0].Buf), db], &pc, (uint)X.Rows);
        _cs.EndOp();
    }

    public void MatMul(IWeight w, ITensor x, ITensor dst, IWeight? bias = null, bool accumulate = false)
    {
        var W = (VkWeight)w;
        var X = (VkTensor)x;
        var D = (VkTensor)dst;
        if (W.Cols != X.Cols || W.Rows != D.Cols || X.Rows != D.Rows)
            throw new ArgumentException($"matmul shape mismatch: {W.Name} [{W.Rows}, {W.Cols}] · x [{X.Rows}, {X.Cols}] → [{D.Rows}, {D.Cols}]");
        var B = (VkWeight?)bias;
        if (B != null && B.Cols != W.Rows) throw new ArgumentException("matmul: bias length does not match the rows");
        bool vec = IsVec(W, X.Rows);
        // a pending RmsNorm whose output is this x: apply it inside the matvec (reading the raw residual)
        var pn = _norm;
        bool fuseNorm = pn != null && vec && SameView(X, pn.D) && D.Buf != pn.X.Buf && D.Buf != pn.D.Buf;
        ResolveMat();
        ResolveStep();
        if (!fuseNorm) ResolveNorm();
        var f = new MatFuse();
        if (fuseNorm)
        {
            f.Norm = pn;
            f.WriteA = !pn!.Written;
            pn.Written = true;
        }
        // one token, no bias, no accumulation: deferred in turn, so that a following SwiGlu or SoftCap of dst can
        // become its epilogue
        if (_fuse && X.Rows == 1 && vec && B == null && !accumulate && W.Parts.Length == 1)
        {
            _mat = new PendingMat(W, X, D, f);
            return;
        }
        DispatchMat(W, X, D, B, accumulate, f);
    }

    private static bool IsVec(VkWeight W, int T) =>
        // one token: matvec. Few rows (the 2·NH gate rows): matvec per token too; a GEMM would run on one or two
        // workgroups (measured on the H100: 0.25 ms per call for the 16 x 4096 gate weight at 16 tokens).
        T == 1 || (W.Rows < 128 && T <= 65535);

    private static bool SameView(VkTensor a, VkTensor b) =>
        a.Buf == b.Buf && a.Offset == b.Offset && a.Rows == b.Rows && a.Cols == b.Cols && a.Stride == b.Stride;

    private struct MatFuse
    {
        public PendingNorm? Norm;
        public bool WriteA;
        public VkTensor? SwiGluOut;
        public float? Cap;
    }

    private void DispatchMat(VkWeight W, VkTensor X, VkTensor D, VkWeight? B, bool accumulate, MatFuse f)
    {
        int T = X.Rows;
        bool vec = IsVec(W, T);
        var pn = f.Norm;
        var XIn = pn != null ? pn.X : X;   // the raw residual when the norm is fused
        var (xb, xo) = Act(XIn);
        var (db, dOff) = Act(D);
        var reads = new VkBuf?[W.Parts.Length + 4];
        for (int i = 0; i < W.Parts.Length; i++) reads[i] = W.Parts[i].Buf;
        reads[^4] = XIn.Buf;
        reads[^3] = B?.Parts[0].Buf;
        reads[^2] = accumulate ? D.Buf : null;
        reads[^1] = pn?.W.Parts[0].Buf;
        VkBuf? aBuf = f.WriteA ? pn!.D.Buf : null;
        uint mode = (pn != null ? 1u : 0u) | (f.SwiGluOut != null ? 2u : 0u) | (f.Cap != null ? 4u : 0u);
        bool cm = !vec && _matmulCm != null;
        string name = (vec ? "matvec." : cm ? "matmul.coopmat." : "matmul.") + TypeName(W) + (pn != null ? "+norm" : "") + (f.SwiGluOut != null ? "+swiglu" : "") + (f.Cap != null ? "+softcap" : "");
        _cs.BeginOp(name, reads, [D.Buf, aBuf, f.SwiGluOut?.Buf]);
        if (mode != 0) FusedDispatches++;
        var (wg, nr) = _mv[W.WType];
        if (f.SwiGluOut != null && nr % 2 != 0) nr = Math.Max(2, nr + 1);
        var kernel = vec ? _matvec : cm ? _matmulCm! : _matmul;
        var pipe = vec ? _matvec.Pipeline([wg, nr, W.WType, mode]) : kernel.Pipeline([0, 0, W.WType]);
        var bb = B != null ? Whole(B.Parts[0].Buf) : Whole(_dummy);
        Binding nwb = Whole(_dummy), ab = Whole(_dummy), sb = Whole(_dummy);
        uint aOff = 0, aStride = 0, sOff = 0;
        if (pn != null) nwb = Whole(pn.W.Parts[0].Buf);
        if (f.WriteA) { (ab, aOff) = Act(pn!.D); aStride = (uint)pn.D.Stride; }
        if (f.SwiGluOut != null) (sb, sOff) = Act(f.SwiGluOut);
        bool firstPart = true;
        foreach (var p in W.Parts)
        {
            var pc = new MatPush
            {
                Rows = (uint)p.RowCount, Cols = (uint)W.Cols, WStride = p.WStride, ScaleBase = p.ScaleBase,
                XOff = xo, XStride = (uint)XIn.Stride, DOff = dOff + (uint)p.RowStart, DStride = (uint)D.Stride,
                BOff = (uint)p.RowStart, Flags = (accumulate ? 1u : 0u) | (B != null ? 2u : 0u) | (f.WriteA && firstPart ? 4u : 0u), NTok = (uint)T,
                AOff = aOff, AStride = aStride, SOff = sOff, Half = (uint)(W.Rows / 2), Eps = pn?.Eps ?? 0f, Cap = f.Cap ?? 0f,
            };
            firstPart = false;
            if (vec)
            {
                uint groups = f.SwiGluOut != null ? Groups(W.Rows / 2, nr / 2) : Groups(p.RowCount, nr);
                var (gx, gy) = Grid2(groups);
                Run(kernel, pipe, [Whole(p.Buf), Whole(p.Buf), xb, db, bb, nwb, ab, sb], &pc, gx, gy, (uint)T);
            }
            else if (cm)
                Run(kernel, pipe, [Whole(p.Buf), Whole(p.Buf), xb, db, bb], &pc, Groups(p.RowCount, 128), Groups(T, 64));
            else
                Run(kernel, pipe, [Whole(p.Buf), Whole(p.Buf), xb, db, bb], &pc, Groups(p.RowCount, 64), Groups(T, 64));
        }
        _cs.EndOp();
    }

    // ---- deferred ops ------------------------------------------------------------------------------------------------
    // Decode-step fusions without changing IBackend: an op that a following op may absorb is recorded lazily and
    // dispatched when the next op arrives, fused with it where the pair matches, on its own otherwise.
    //   RmsNorm(x → a), then MatMul(W, a) (one token): the matvec reads x and applies the norm itself (matvec.*+norm);
    //     the first such matvec also writes a for other readers, a second one (the gate matvec after qkvo) reads x too,
    //     so the two still run side by side. The pending norm ends at the first op that is not such a matvec.
    //   MatMul(W, a → gu) (one token, no bias/accumulation), then SwiGlu(gu → s): gate and up rows in pairs, s written by
    //     the matvec (+swiglu); then SoftCap(logits): the matvec caps its output (+softcap).
    //   MlstmCell (one token), then HeadNormGate(h): the step kernel's last workgroup per head applies the head norm.
    // Every other entry point dispatches whatever is pending first (ResolveAll), so the order of effects is unchanged.
    // Fusion is on by default; XLSTM_VK_FUSE=0 or Fusion = false turns it off (every op dispatched as called).

    private sealed class PendingNorm(VkTensor x, VkWeight w, VkTensor d, float eps)
    {
        public readonly VkTensor X = x, D = d;
        public readonly VkWeight W = w;
        public readonly float Eps = eps;
        /// <summary>A matvec has been given the job of writing D.</summary>
        public bool Written;
    }

    private sealed record PendingMat(VkWeight W, VkTensor X, VkTensor D, MatFuse F);
    private sealed record PendingStep(ModelConfig C, VkTensor Q, VkTensor G, VkState S, int Block, VkTensor H);

    private bool _fuse = Environment.GetEnvironmentVariable("XLSTM_VK_FUSE") != "0";
    /// <summary>Dispatches that absorbed a deferred op so far (tests).</summary>
    public long FusedDispatches { get; private set; }
    private PendingNorm? _norm;
    private PendingMat? _mat;
    private PendingStep? _stepPending;

    /// <summary>Decode-step fusions (deferred RmsNorm into the next matvec, SwiGLU and soft-cap as matvec epilogues, head
    /// norm in the step kernel). Default on (XLSTM_VK_FUSE=0: off).</summary>
    public bool Fusion
    {
        get => _fuse;
        set { ResolveAll(); _fuse = value; }
    }

    private void ResolveMat()
    {
        if (_mat == null) return;
        var m = _mat;
        _mat = null;
        DispatchMat(m.W, m.X, m.D, null, false, m.F);
    }

    private void ResolveStep()
    {
        if (_stepPending == null) return;
        var p = _stepPending;
        _stepPending = null;
        DispatchStep(p, null, null, null);
    }

    private void ResolveNorm()
    {
        if (_norm == null) return;
        var n = _norm;
        _norm = null;
        if (!n.Written) DispatchRmsNorm(n.X, n.W, n.D, n.Eps);
    }

    /// <summary>Dispatch everything pending, in order (the norm, if still pending, came before the others).</summary>
    private void ResolveAll()
    {
        if (_norm != null && !_norm.Written) ResolveNorm();
        ResolveMat();
        ResolveStep();
        ResolveNorm();
    }

    private VkBuf Scratch(ModelConfig c)
    {
        ulong need = (ulong)c.Heads * (64 * 64 + 256) * 4;
        if (_scratch == null || _scratch.Size < need) _scratch = _mem.Create(need, MemKind.Device);
        return _scratch;
    }

    /// <summary>Rows of C per step workgroup (XLSTM_VK_STEP_ROWS overrides, 4..256, for sweeps).</summary>
    private static readonly int StepRows = int.TryParse(Environment.GetEnvironmentVariable("XLSTM_VK_STEP_ROWS"), out var r) && r is >= 4 and <= 256 ? r : 32;

    /// <summary>Row splits of the step kernel: about 32 rows of C per workgroup (7B: 8 splits of 32 rows).</summary>
    private static (uint Splits, uint RowsPerSplit) StepSplits(ModelConfig c)
    {
        uint splits = (uint)Math.Clamp((c.DQk + StepRows - 1) / StepRows, 1, 64);
        return (splits, (uint)((c.DQk + splits - 1) / splits));
    }

    private VkBuf Partials(ModelConfig c)
    {
        ulong need = (ulong)c.Heads * StepSplits(c).Splits * (ulong)c.DV * 4;
        if (_partials == null || _partials.Size < need) _partials = _mem.Create(need, MemKind.Device);
        return _partials;
    }

    private VkBuf Counters(ModelConfig c)
    {
        ulong need = (ulong)c.Heads * 4;
        if (_counters == null || _counters.Size < need)
        {
            _counters = _mem.Create(Math.Max(need, 256), MemKind.Device);
            var cb = _cs.BeginOp("fill", [], [_counters]);
            _cx.Vk.CmdFillBuffer(cb, _counters.Handle, 0, Vk.WholeSize, 0);
            _cs.EndOp();
        }
        return _counters;
    }

    public void MlstmCell(ModelConfig c, ITensor qkvo, ITensor gates, IStateBuffer state, int block, ITensor h)
    {
        var Q = (VkTensor)qkvo;
        var G = (VkTensor)gates;
        var H = (VkTensor)h;
        var S = (VkState)state;
        int T = Q.Rows, NH = c.Heads, dqk = c.DQk, dv = c.DV;
        if (Q.Cols != c.QkvoDim || G.Cols != 2 * NH || H.Cols != c.VDim || G.Rows != T || H.Rows != T) throw new ArgumentException("mlstm: shape mismatch");
        if ((uint)block >= (uint)c.Blocks) throw new ArgumentOutOfRangeException(nameof(block));
        ResolveAll();
        if (T == 1)
        {
            var p = new PendingStep(c, Q, G, S, block, H);
            // deferred: a following HeadNormGate of h becomes the step kernel's epilogue
            if (_fuse && dv <= 1024) _stepPending = p;
            else DispatchStep(p, null, null, null);
            return;
        }
        var (qb, qo) = Act(Q);
        var (gb, go) = Act(G);
        var (hb, ho) = Act(H);
        var sb = StateBlock(S, block);
        uint nOff = (uint)(NH * dqk * dv), mOff = nOff + (uint)(NH * dqk);
        var scr = Scratch(c);
        int L = Math.Min(c.ChunkSize, ChunkMax);
        for (int t0 = 0; t0 < T; t0 += L)
        {
            int len = Math.Min(L, T - t0);
            uint qRow = qo + (uint)(t0 * Q.Stride);
            _cs.BeginOp("mlstm.chunk.gates", [Q.Buf, G.Buf, S.Buf], [S.Buf, scr]);
            var pg = new ChunkGatesPush
            {
                QOff = qRow, KOff = qRow + (uint)c.QkDim, RowStride = (uint)Q.Stride, GOff = go + (uint)(t0 * G.Stride), GStride = (uint)G.Stride,
                Len = (uint)len, NH = (uint)NH, Dqk = (uint)dqk, NOff = nOff, MOff = mOff, Cap = c.GateSoftCap, Eps = c.CellEps,
            };
            Run(_cgates, _cgates.Pipeline([]), [qb, gb, sb, Whole(scr)], &pg, (uint)NH);
            _cs.EndOp();

            _cs.BeginOp("mlstm.chunk.out", [Q.Buf, S.Buf, scr], [H.Buf]);
            var po = new ChunkOutPush
            {
                QOff = qRow, VOff = qRow + 2u * (uint)c.QkDim, RowStride = (uint)Q.Stride, HOff = ho + (uint)(t0 * H.Stride), HStride = (uint)H.Stride,
                Len = (uint)len, Dqk = (uint)dqk, Dv = (uint)dv,
            };
            Run(_cout, _cout.Pipeline([]), [qb, sb, Whole(scr), hb], &po, Groups(dv, 64), (uint)NH);
            _cs.EndOp();

            _cs.BeginOp("mlstm.chunk.state", [Q.Buf, scr, S.Buf], [S.Buf]);
            var ps = new ChunkStatePush
            {
                KOff = qRow + (uint)c.QkDim, VOff = qRow + 2u * (uint)c.QkDim, RowStride = (uint)Q.Stride, Len = (uint)len, Dqk = (uint)dqk, Dv = (uint)dv,
            };
            Run(_cstate, _cstate.Pipeline([]), [qb, sb, Whole(scr)], &ps, Groups(dv, 64), Groups(dqk, 64), (uint)NH);
            _cs.EndOp();
        }
    }

    /// <summary>The one-token step kernel; with <paramref name="nw"/> and <paramref name="gd"/> it also applies HeadNormGate.</summary>
    private void DispatchStep(PendingStep p, VkWeight? nw, VkTensor? gd, float? normEps)
    {
        var c = p.C;
        var (Q, G, H, S) = (p.Q, p.G, p.H, p.S);
        int NH = c.Heads, dqk = c.DQk, dv = c.DV;
        var (qb, qo) = Act(Q);
        var (gb, go) = Act(G);
        var (hb, ho) = Act(H);
        var sb = StateBlock(S, p.Block);
        uint nOff = (uint)(NH * dqk * dv), mOff = nOff + (uint)(NH * dqk);
        var cnt = Counters(c);
        var (splits, rowsPerSplit) = StepSplits(c);
        var part = Partials(c);
        bool fused = nw != null && gd != null;
        Binding nwb = Whole(_dummy), gdb = Whole(_dummy);
        uint gdOff = 0;
        if (fused)
        {
            nwb = Whole(nw!.Parts[0].Buf);
            (gdb, gdOff) = Act(gd!);
        }
        if (fused) FusedDispatches++;
        _cs.BeginOp(fused ? "mlstm.step+headnorm" : "mlstm.step", [Q.Buf, G.Buf, S.Buf, cnt, nw?.Parts[0].Buf], [S.Buf, H.Buf, cnt, part, gd?.Buf]);
        var pc = new StepPush
        {
            QOff = qo, KOff = qo + (uint)c.QkDim, VOff = qo + 2u * (uint)c.QkDim, GOff = go, HOff = ho, NH = (uint)NH, Dqk = (uint)dqk, Dv = (uint)dv,
            NOff = nOff, MOff = mOff, CntOff = 0, Splits = splits, RowsPerSplit = rowsPerSplit, Cap = c.GateSoftCap, Eps = c.CellEps,
            Fuse = fused ? 1u : 0u, OOff = qo + (uint)c.OOffset, GdOff = gdOff, NormEps = normEps ?? 0f,
        };
        Run(_step, _step.Pipeline([]), [qb, gb, sb, hb, Whole(cnt), Whole(part), nwb, gdb], &pc, Groups(dv, 256), splits, (uint)NH);
        _cs.EndOp();
    }

    public void HeadNormGate(ModelConfig c, ITensor h, ITensor qkvo, IWeight w, ITensor dst)
    {
        var H = (VkTensor)h;
        var Q = (VkTensor)qkvo;
        var W = (VkWeight)w;
        var D = (VkTensor)dst;
        if (H.Cols != c.VDim || D.Cols != c.VDim || W.Cols != c.VDim || Q.Rows != H.Rows || D.Rows != H.Rows) throw new ArgumentException("headnorm: shape mismatch");
        var ps = _stepPending;
        if (ps != null && SameView(ps.H, H) && SameView(ps.Q, Q) && ps.C.Heads == c.Heads && ps.C.DV == c.DV && W.Parts.Length == 1
            && D.Buf != ps.Q.Buf && D.Buf != ps.H.Buf && D.Buf != ps.G.Buf && D.Buf != ps.S.Buf)
        {
            _stepPending = null;
            ResolveAll();
            DispatchStep(ps, W, D, c.NormEps);
            return;
        }
        ResolveAll();
        var (hb, ho) = Act(H);
        var (qb, qo) = Act(Q);
        var (db, dOff) = Act(D);
        _cs.BeginOp("headnorm", [H.Buf, Q.Buf, W.Parts[0].Buf], [D.Buf]);
        var pc = new HeadNormPush
        {
            HOff = ho, HStride = (uint)H.Stride, OOff = qo + (uint)c.OOffset, OStride = (uint)Q.Stride, DOff = dOff, DStride = (uint)D.Stride,
            Dv = (uint)c.DV, WOff = 0, Eps = c.NormEps,
        };
        Run(_headnorm, _headnorm.Pipeline([_redWg]), [hb, qb, Whole(W.Parts[0].Buf), db], &pc, (uint)c.Heads, (uint)H.Rows);
        _cs.EndOp();
    }

    public void SwiGlu(ITensor gateUp, ITensor dst)
    {
        var G = (VkTensor)gateUp;
        var D = (VkTensor)dst;
        if (G.Cols != 2 * D.Cols || G.Rows != D.Rows) throw new ArgumentException("swiglu: shape mismatch");
        var pm = _mat;
        if (pm != null && SameView(pm.D, G) && G.Rows == 1 && pm.F.Cap == null && pm.W.Rows % 2 == 0
            && D.Buf != pm.D.Buf && D.Buf != pm.X.Buf && (pm.F.Norm == null || D.Buf != pm.F.Norm.X.Buf && D.Buf != pm.F.Norm.D.Buf))
        {
            _mat = null;
            ResolveAll();
            DispatchMat(pm.W, pm.X, pm.D, null, false, pm.F with { SwiGluOut = D });
            return;
        }
        ResolveAll();
        var (gb, go) = Act(G);
        var (db, dOff) = Act(D);
        _cs.BeginOp("swiglu", [G.Buf], [D.Buf]);
        var pc = new SwiGluPush { GOff = go, GStride = (uint)G.Stride, DOff = dOff, DStride = (uint)D.Stride, F = (uint)D.Cols, NTok = (uint)D.Rows };
        Run(_swiglu, _swiglu.Pipeline([]), [gb, db], &pc, Groups(D.Cols, 256), (uint)D.Rows);
        _cs.EndOp();
    }

    public void SoftCap(ITensor x, float cap)
    {
        var X = (VkTensor)x;
        var pm = _mat;
        if (pm != null && SameView(pm.D, X) && pm.F.SwiGluOut == null)
        {
            _mat = null;
            ResolveAll();
            DispatchMat(pm.W, pm.X, pm.D, null, false, pm.F with { Cap = cap });
            return;
        }
        ResolveAll();
        var (xb, xo) = Act(X);
        _cs.BeginOp("softcap", [X.Buf], [X.Buf]);
        var pc = new SoftCapPush { XOff = xo, XStride = (uint)X.Stride, Cols = (uint)X.Cols, NTok = (uint)X.Rows, Cap = cap };
        Run(_softcap, _softcap.Pipeline([]), [xb], &pc, Groups(X.Cols, 256), (uint)X.Rows);
        _cs.EndOp();
    }

    public void Argmax(ITensor x, int validCols, IIndexBuffer dst)
    {
        var X = (VkTensor)x;
        var I = (VkIndices)dst;
        if (X.Rows > I.Capacity) throw new ArgumentException("argmax: index buffer too small");
        if (validCols <= 0 || validCols > X.Cols) throw new ArgumentOutOfRangeException(nameof(validCols));
        ResolveAll();
        var (xb, xo) = Act(X);
        _cs.BeginOp("argmax", [X.Buf], [I.Buf]);
        var pc = new ArgmaxPush { XOff = xo, XStride = (uint)X.Stride, ValidCols = (uint)validCols, OOff = 0 };
        Run(_argmax, _argmax.Pipeline([_redWg]), [xb, Whole(I.Buf)], &pc, (uint)X.Rows);
        _cs.EndOp();
    }

    // ---- lifetime ----------------------------------------------------------------------------------------------------

    private void DisposeResources()
    {
        try
        {
            if (_cs != null) ResolveAll();
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
        if (Environment.GetEnvironmentVariable("XLSTM_VK_STATS") == "1")
            try { _cs.Flush(); Console.Error.Write(StatsReport()); } catch (InvalidOperationException) { }
        DisposeResources();
        if (_ownsContext) _cx.Dispose();
    }
}
