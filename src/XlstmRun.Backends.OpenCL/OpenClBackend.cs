using Silk.NET.OpenCL;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;

namespace XlstmRun.Backends.OpenCL;

/// <summary>
/// The OpenCL backend: float32 activations and state in device buffers, weights uploaded once in their GGUF encoding
/// (split by rows to respect CL_DEVICE_MAX_MEM_ALLOC_SIZE) and decoded inside the kernels. Ops are enqueued on one in-order
/// queue; the blocking reads are the synchronisation points. Kernels are OpenCL C 1.2 (Kernels/*.cl, embedded), built
/// once per backend; half values are only loaded (vload_half), never used in arithmetic.
/// </summary>
public sealed unsafe class OpenClBackend : IBackend
{
    private static readonly string[] KernelFiles = ["0_common.cl", "1_matmul.cl", "2_elementwise.cl", "3_mlstm.cl"];

    private readonly CL _cl;
    private readonly ClDeviceInfo _dev;
    private nint _context, _queue, _program;
    private readonly Dictionary<string, nint> _kernels = new(StringComparer.Ordinal);
    private readonly List<nint> _mems = new();
    private readonly nint _dummy;
    private nint _scratch;
    private long _scratchFloats;
    private bool _disposed;

    /// <summary>Work-group size of the reduction kernels (a power of two) and edge of the matmul tiles.</summary>
    public int ReductionSize { get; }
    public int Tile { get; }
    /// <summary>Largest device buffer a weight part may use (the device's maximum allocation unless lowered).</summary>
    public long MaxWeightPartBytes { get; }
    /// <summary>
    /// Matrix products with work-group kernels (a local-memory reduction per output row for one token, TILE×TILE
    /// local-memory tiles for many): the default on GPUs. Otherwise register-blocked kernels without barriers (4 rows ×
    /// 1 or 4 tokens per work-item, float4 over K): the default on CPU devices, where PoCL runs work-items as loops.
    /// </summary>
    public bool WorkGroupKernels { get; }

    /// <param name="deviceIndex">-1: the first GPU, else the first CPU device, else the first device; otherwise the index
    /// into <see cref="OpenClBackendProvider.Devices"/>' list (all devices of all platforms, in order).</param>
    public OpenClBackend(int deviceIndex = -1) : this(deviceIndex, 0) { }

    /// <param name="deviceIndex">As in <see cref="OpenClBackend(int)"/>.</param>
    /// <param name="maxWeightPartBytes">If positive, weights are split into device buffers of at most this many bytes
    /// (below the device limit; used by tests to exercise the split path).</param>
    /// <param name="workGroupKernels">Force the matmul kernel family (see <see cref="WorkGroupKernels"/>); null: by device type.</param>
    public OpenClBackend(int deviceIndex, long maxWeightPartBytes, bool? workGroupKernels = null)
    {
        _cl = ClNative.Api;
        var devices = ClNative.AllDevices(_cl);
        if (devices.Count == 0)
            throw new InvalidOperationException(ClNative.Platforms(_cl).Length == 0
                ? "no OpenCL platform found (no ICD driver installed, e.g. pocl-opencl-icd)"
                : "no OpenCL device found on any platform");
        if (deviceIndex < 0)
            _dev = devices.FirstOrDefault(d => d.IsGpu) ?? devices.FirstOrDefault(d => (d.Type & DeviceType.Cpu) != 0) ?? devices[0];
        else if (deviceIndex < devices.Count) _dev = devices[deviceIndex];
        else throw new InvalidOperationException($"OpenCL device {deviceIndex} does not exist ({devices.Count} device(s): 0..{devices.Count - 1})");

        long maxAlloc = (long)Math.Min(_dev.MaxAlloc, long.MaxValue);
        MaxWeightPartBytes = maxWeightPartBytes > 0 ? Math.Min(maxWeightPartBytes, maxAlloc) : maxAlloc;
        int wg = (int)Math.Min(_dev.MaxWorkGroup, 64);
        ReductionSize = 1;
        while (ReductionSize * 2 <= wg) ReductionSize *= 2;
        Tile = _dev.MaxWorkGroup >= 256 ? 16 : _dev.MaxWorkGroup >= 64 ? 8 : 4;
        WorkGroupKernels = workGroupKernels ?? _dev.IsGpu;

        try
        {
            int err;
            nint dev = _dev.Device;
            nint* props = stackalloc nint[3];
            props[0] = (nint)(int)ContextProperties.Platform;
            props[1] = _dev.Platform;
            props[2] = 0;
            _context = _cl.CreateContext(props, 1, &dev, null, null, &err);
            ClNative.Check(err, "clCreateContext");
            _queue = _cl.CreateCommandQueue(_context, dev, CommandQueueProperties.None, &err);
            ClNative.Check(err, "clCreateCommandQueue");
            BuildProgram();
            _dummy = NewBuffer(16, MemFlags.ReadWrite, null);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Name => "opencl";
    public string Device => $"OpenCL: {_dev.PlatformName} / {_dev.Name} ({_dev.TypeName}, max allocation {_dev.MaxAlloc >> 20} MiB, {(WorkGroupKernels ? "work-group" : "register-blocked")} matmul)";

    // ---- setup ------------------------------------------------------------------------------------------------------
    private static string KernelSource()
    {
        var asm = typeof(OpenClBackend).Assembly;
        var sb = new System.Text.StringBuilder();
        // the weight types come from the table: 1_matmul.cl instantiates every kernel family once per type
        sb.Append("#define ALL_TYPES(M)").AppendJoin("", GgmlTypes.All.Select(t => $" M({t.Name})")).Append('\n');
        foreach (var f in KernelFiles)
        {
            using var s = asm.GetManifestResourceStream("XlstmRun.Backends.OpenCL." + f)
                ?? throw new InvalidOperationException($"embedded kernel source {f} is missing");
            using var r = new StreamReader(s);
            sb.Append(r.ReadToEnd()).Append('\n');
        }
        return sb.ToString();
    }

    private void BuildProgram()
    {
        int err;
        var src = KernelSource();
        _program = _cl.CreateProgramWithSource(_context, 1, [src], null, &err);
        ClNative.Check(err, "clCreateProgramWithSource");
        nint dev = _dev.Device;
        string opts = $"-cl-std=CL1.2 -D RED_LS={ReductionSize} -D TILE={Tile} -D TILE_K=32";
        err = _cl.BuildProgram(_program, 1, &dev, opts, null, null);
        if (err != 0)
        {
            nuint size = 0;
            _cl.GetProgramBuildInfo(_program, dev, ProgramBuildInfo.BuildLog, 0, null, &size);
            var buf = new byte[(int)size + 1];
            fixed (byte* p = buf) _cl.GetProgramBuildInfo(_program, dev, ProgramBuildInfo.BuildLog, size, p, null);
            string log = System.Text.Encoding.UTF8.GetString(buf).TrimEnd('\0').Trim();
            throw new InvalidOperationException($"OpenCL program build failed on {_dev.Name}: {ClNative.ErrorName(err)} ({err})\n{log}");
        }
        var names = new List<string> { "rmsnorm", "headnorm_gate", "swiglu", "softcap", "argmax_rows", "mlstm_step", "mlstm_step_post",
            "mlstm_chunk_prep", "mlstm_chunk_out", "mlstm_chunk_state" };
        // one kernel of each family per weight type of the table, named after the type (matvec_q8_0, …)
        foreach (var t in GgmlTypes.All)
        {
            string s = t.Name;
            names.Add("embed_" + s);
            names.Add("matvec_" + s);
            names.Add("matmul_" + s);
            names.Add("matvecr_" + s);
            names.Add("matmulr_" + s);
        }
        foreach (var n in names)
        {
            var k = _cl.CreateKernel(_program, n, &err);
            ClNative.Check(err, $"clCreateKernel({n})");
            _kernels[n] = k;
        }
    }

    private static string TypeSuffix(GgmlType t) => GgmlTypes.Name(t);

    private nint NewBuffer(long bytes, MemFlags flags, void* host)
    {
        if (bytes > (long)_dev.MaxAlloc)
            throw new InvalidOperationException($"OpenCL buffer of {bytes} bytes exceeds the device's maximum allocation ({_dev.MaxAlloc} bytes)");
        int err;
        var b = _cl.CreateBuffer(_context, flags, (nuint)Math.Max(bytes, 4), host, &err);
        ClNative.Check(err, $"clCreateBuffer({bytes} bytes)");
        _mems.Add(b);
        return b;
    }

    private nint ZeroBuffer(long bytes)
    {
        var b = NewBuffer(bytes, MemFlags.ReadWrite, null);
        float zero = 0;
        ClNative.Check(_cl.EnqueueFillBuffer(_queue, b, &zero, 4, 0, (nuint)Math.Max(bytes, 4), 0, null, null), "clEnqueueFillBuffer");
        return b;
    }

    // ---- storage ----------------------------------------------------------------------------------------------------
    public IWeight LoadWeight(TensorView t)
    {
        int cols = checked((int)t.Cols);
        int rows = checked((int)(t.Elements / t.Cols));
        TypeSuffix(t.Type);
        if (rows == 1)
        {
            var f = t.ToFloatArray();
            nint buf;
            fixed (float* p = f) buf = NewBuffer((long)f.Length * 4, MemFlags.ReadOnly | MemFlags.CopyHostPtr, p);
            return new ClWeight(t.Name, t.Type, GgmlType.F32, 1, cols, (long)cols * 4, [new ClWeightPart(buf, 0, 1)], buf);
        }
        long rowBytes = t.RowBytes;
        if (rowBytes > MaxWeightPartBytes)
            throw new InvalidOperationException($"weight {t.Name}: one row ({rowBytes} bytes) exceeds the OpenCL allocation limit ({MaxWeightPartBytes} bytes)");
        int perPart = (int)Math.Min(rows, MaxWeightPartBytes / rowBytes);
        var parts = new List<ClWeightPart>();
        for (int r0 = 0; r0 < rows; r0 += perPart)
        {
            int n = Math.Min(perPart, rows - r0);
            var buf = NewBuffer(n * rowBytes, MemFlags.ReadOnly | MemFlags.CopyHostPtr, t.Data + r0 * rowBytes);
            parts.Add(new ClWeightPart(buf, r0, n));
        }
        return new ClWeight(t.Name, t.Type, t.Type, rows, cols, rowBytes, parts.ToArray(), 0);
    }

    public ITensor Alloc(int rows, int cols) => new ClTensor(ZeroBuffer((long)rows * cols * 4), 0, rows, cols);

    public ITensor Rows(ITensor t, int row0, int rows)
    {
        var c = (ClTensor)t;
        if (row0 < 0 || rows < 0 || row0 + rows > c.Rows) throw new ArgumentOutOfRangeException(nameof(rows));
        return new ClTensor(c.Buffer, c.Offset + row0 * c.Cols, rows, c.Cols);
    }

    public ITokenBuffer AllocTokens(int capacity) => new ClTokens(ZeroBuffer((long)capacity * 4), capacity);
    public IIndexBuffer AllocIndices(int capacity) => new ClIndices(ZeroBuffer((long)capacity * 4), capacity);
    public IStateBuffer AllocState(ModelConfig config, int slots = 1) => slots == 1
        ? new ClState(config, ZeroBuffer(config.StateFloats * 4))
        : throw new NotSupportedException("the OpenCL backend holds one sequence per state (no multi-sequence engine)");
    public IStateBuffer StateSlot(IStateBuffer state, int slot) =>
        slot == 0 ? state : throw new ArgumentOutOfRangeException(nameof(slot), "the OpenCL backend holds one sequence per state");

    public void WriteTokens(ITokenBuffer dst, ReadOnlySpan<int> ids)
    {
        var t = (ClTokens)dst;
        if (ids.Length > t.Capacity) throw new ArgumentException($"{ids.Length} tokens exceed the buffer capacity {t.Capacity}");
        t.Count = ids.Length;
        if (ids.Length == 0) return;
        fixed (int* p = ids) ClNative.Check(_cl.EnqueueWriteBuffer(_queue, t.Buffer, true, 0, (nuint)(ids.Length * 4), p, 0, null, null), "clEnqueueWriteBuffer");
    }

    /// <summary>Upload floats into a tensor (not part of <see cref="IBackend"/>: for tests and tools).</summary>
    public void Write(ITensor dst, ReadOnlySpan<float> src)
    {
        var d = (ClTensor)dst;
        long n = (long)d.Rows * d.Cols;
        if (src.Length != n) throw new ArgumentException($"source holds {src.Length} floats, tensor has {n}");
        if (n == 0) return;
        fixed (float* p = src) ClNative.Check(_cl.EnqueueWriteBuffer(_queue, d.Buffer, true, (nuint)((long)d.Offset * 4), (nuint)(n * 4), p, 0, null, null), "clEnqueueWriteBuffer");
    }

    public void Read(ITensor src, Span<float> dst)
    {
        var s = (ClTensor)src;
        long n = (long)s.Rows * s.Cols;
        if (dst.Length < n) throw new ArgumentException($"destination holds {dst.Length} floats, tensor has {n}");
        if (n == 0) return;
        fixed (float* p = dst) ClNative.Check(_cl.EnqueueReadBuffer(_queue, s.Buffer, true, (nuint)((long)s.Offset * 4), (nuint)(n * 4), p, 0, null, null), "clEnqueueReadBuffer");
    }

    public void ReadIndices(IIndexBuffer src, Span<int> dst)
    {
        var s = (ClIndices)src;
        if (dst.Length > s.Capacity) throw new ArgumentException("destination larger than the index buffer");
        if (dst.Length == 0) return;
        fixed (int* p = dst) ClNative.Check(_cl.EnqueueReadBuffer(_queue, s.Buffer, true, 0, (nuint)(dst.Length * 4), p, 0, null, null), "clEnqueueReadBuffer");
    }

    public void ReadState(IStateBuffer src, Span<float> dst)
    {
        var s = (ClState)src;
        long n = s.Config.StateFloats;
        if (dst.Length < n) throw new ArgumentException($"destination holds {dst.Length} floats, state has {n}");
        fixed (float* p = dst) ClNative.Check(_cl.EnqueueReadBuffer(_queue, s.Buffer, true, 0, (nuint)(n * 4), p, 0, null, null), "clEnqueueReadBuffer");
    }

    public void WriteState(IStateBuffer dst, ReadOnlySpan<float> src)
    {
        var s = (ClState)dst;
        long n = s.Config.StateFloats;
        if (src.Length < n) throw new ArgumentException($"source holds {src.Length} floats, state has {n}");
        fixed (float* p = src) ClNative.Check(_cl.EnqueueWriteBuffer(_queue, s.Buffer, true, 0, (nuint)(n * 4), p, 0, null, null), "clEnqueueWriteBuffer");
    }

    public void ResetState(IStateBuffer dst)
    {
        var s = (ClState)dst;
        float zero = 0;
        ClNative.Check(_cl.EnqueueFillBuffer(_queue, s.Buffer, &zero, 4, 0, (nuint)(s.Config.StateFloats * 4), 0, null, null), "clEnqueueFillBuffer");
    }

    /// <summary>Runs <paramref name="record"/>: enqueueing the same kernels again costs little next to the kernels themselves.</summary>
    public void Replay(string key, Action record) => record();

    /// <summary>Waits until every enqueued op has finished.</summary>
    public void Finish() => ClNative.Check(_cl.Finish(_queue), "clFinish");

    // ---- kernel launch helpers --------------------------------------------------------------------------------------
    private readonly struct Arg
    {
        private readonly long _bits;
        private readonly byte _kind; // 0 buffer, 1 int, 2 float
        private Arg(long bits, byte kind) { _bits = bits; _kind = kind; }
        public static implicit operator Arg(nint mem) => new(mem, 0);
        public static implicit operator Arg(int v) => new(v, 1);
        public static implicit operator Arg(float v) => new(BitConverter.SingleToInt32Bits(v), 2);

        public int Set(CL cl, nint kernel, uint index)
        {
            if (_kind == 0) { nint m = (nint)_bits; return cl.SetKernelArg(kernel, index, (nuint)sizeof(nint), &m); }
            int v = (int)_bits;
            return cl.SetKernelArg(kernel, index, 4, &v);
        }
    }

    private void Launch(string name, ReadOnlySpan<long> global, ReadOnlySpan<long> local, params ReadOnlySpan<Arg> args)
    {
        var k = _kernels[name];
        for (int i = 0; i < args.Length; i++) ClNative.Check(args[i].Set(_cl, k, (uint)i), $"clSetKernelArg({name}, {i})");
        for (int i = 0; i < global.Length; i++) if (global[i] == 0) return;
        nuint* g = stackalloc nuint[3];
        nuint* l = stackalloc nuint[3];
        for (int i = 0; i < global.Length; i++)
        {
            g[i] = (nuint)global[i];
            if (!local.IsEmpty) l[i] = (nuint)local[i];
        }
        ClNative.Check(_cl.EnqueueNdrangeKernel(_queue, k, (uint)global.Length, null, g, local.IsEmpty ? null : l, 0, null, null), $"clEnqueueNDRangeKernel({name})");
    }

    private static long RoundUp(long n, long m) => (n + m - 1) / m * m;

    // ---- ops --------------------------------------------------------------------------------------------------------
    public void Embed(IWeight table, ITokenBuffer ids, ITensor dst)
    {
        var w = (ClWeight)table;
        var t = (ClTokens)ids;
        var d = (ClTensor)dst;
        if (d.Cols != w.Cols) throw new ArgumentException($"embed: table has {w.Cols} columns, destination {d.Cols}");
        if (d.Rows > t.Capacity) throw new ArgumentException("embed: more rows than token capacity");
        string kn = "embed_" + TypeSuffix(w.KernelType);
        foreach (var p in w.Parts)
            Launch(kn, [d.Cols, d.Rows], default, p.Buffer, (int)w.RowBytes, p.Row0, p.Rows, d.Cols, t.Buffer, d.Buffer, d.Offset, d.Rows);
    }

    public void RmsNorm(ITensor x, IWeight w, ITensor dst, float eps)
    {
        var X = (ClTensor)x;
        var D = (ClTensor)dst;
        var W = (ClWeight)w;
        if (X.Rows != D.Rows || X.Cols != D.Cols || W.Cols != X.Cols || W.Floats == 0) throw new ArgumentException("rmsnorm: shape mismatch");
        Launch("rmsnorm", [(long)X.Rows * ReductionSize], [ReductionSize], X.Buffer, X.Offset, W.Floats, D.Buffer, D.Offset, X.Cols, eps);
    }

    public void MatMul(IWeight w, ITensor x, ITensor dst, IWeight? bias = null, bool accumulate = false)
    {
        var W = (ClWeight)w;
        var X = (ClTensor)x;
        var D = (ClTensor)dst;
        if (W.Cols != X.Cols || W.Rows != D.Cols || X.Rows != D.Rows)
            throw new ArgumentException($"matmul shape mismatch: {W.Name} [{W.Rows}, {W.Cols}] · x [{X.Rows}, {X.Cols}] → [{D.Rows}, {D.Cols}]");
        nint b = _dummy;
        if (bias != null)
        {
            var B = (ClWeight)bias;
            if (B.Floats == 0 || B.Cols != W.Rows) throw new ArgumentException($"matmul: bias {B.Name} does not match {W.Name}");
            b = B.Floats;
        }
        int hasBias = bias != null ? 1 : 0, acc = accumulate ? 1 : 0;
        string s = TypeSuffix(W.KernelType);
        foreach (var p in W.Parts)
        {
            if (!WorkGroupKernels)
            {
                int tb = X.Rows == 1 ? 1 : 4;
                Launch((X.Rows == 1 ? "matvecr_" : "matmulr_") + s, [(p.Rows + 3) / 4, (X.Rows + tb - 1) / tb], default,
                    p.Buffer, (int)W.RowBytes, W.Cols, p.Rows, X.Buffer, X.Offset, X.Rows, D.Buffer, D.Offset, D.Cols, p.Row0, b, hasBias, acc);
            }
            else if (X.Rows == 1)
                Launch("matvec_" + s, [(long)p.Rows * ReductionSize], [ReductionSize],
                    p.Buffer, (int)W.RowBytes, W.Cols, p.Rows, X.Buffer, X.Offset, D.Buffer, D.Offset, p.Row0, b, hasBias, acc);
            else
                Launch("matmul_" + s, [RoundUp(p.Rows, Tile), RoundUp(X.Rows, Tile)], [Tile, Tile],
                    p.Buffer, (int)W.RowBytes, W.Cols, p.Rows, X.Buffer, X.Offset, X.Rows, D.Buffer, D.Offset, D.Cols, p.Row0, b, hasBias, acc);
        }
    }

    public void MlstmCell(ModelConfig c, ITensor qkvo, ITensor gates, IStateBuffer state, int block, ITensor h)
    {
        var Q = (ClTensor)qkvo;
        var G = (ClTensor)gates;
        var H = (ClTensor)h;
        var S = (ClState)state;
        int T = Q.Rows, NH = c.Heads, dqk = c.DQk, dv = c.DV, L = c.ChunkSize;
        if (Q.Cols != c.QkvoDim || G.Cols != 2 * NH || H.Cols != c.VDim || G.Rows != T || H.Rows != T)
            throw new ArgumentException("mlstm: shape mismatch");
        if (T == 0) return;
        int soff = checked((int)(block * c.StateFloatsPerBlock));
        float cap = c.GateSoftCap, scale = 1f / MathF.Sqrt(dqk), eps = c.CellEps;
        if (T == 1)
        {
            Launch("mlstm_step", [dv, NH], default, Q.Buffer, Q.Offset, c.QkDim, G.Buffer, G.Offset, S.Buffer, soff, NH, dqk, dv, cap, scale, eps, H.Buffer, H.Offset);
            Launch("mlstm_step_post", [NH], default, Q.Buffer, Q.Offset, c.QkDim, G.Buffer, G.Offset, S.Buffer, soff, NH, dqk, dv, cap);
            return;
        }
        long need = (long)NH * (6L * L + (long)L * L + 4); // SCR_HEAD(L) in 3_mlstm.cl
        if (need > _scratchFloats)
        {
            _scratch = ZeroBuffer(need * 4);
            _scratchFloats = need;
        }
        for (int t0 = 0; t0 < T; t0 += L)
        {
            int len = Math.Min(L, T - t0);
            Launch("mlstm_chunk_prep", [ReductionSize, NH], [ReductionSize, 1], Q.Buffer, Q.Offset, Q.Cols, c.QkDim, G.Buffer, G.Offset,
                S.Buffer, soff, NH, dqk, dv, cap, scale, eps, _scratch, L, t0, len);
            Launch("mlstm_chunk_out", [dv, len, NH], default, Q.Buffer, Q.Offset, Q.Cols, c.QkDim, S.Buffer, soff, NH, dqk, dv, scale,
                _scratch, L, t0, len, H.Buffer, H.Offset);
            Launch("mlstm_chunk_state", [dv + 1, dqk, NH], default, Q.Buffer, Q.Offset, Q.Cols, c.QkDim, S.Buffer, soff, NH, dqk, dv,
                _scratch, L, t0, len);
        }
    }

    public void HeadNormGate(ModelConfig c, ITensor h, ITensor qkvo, IWeight w, ITensor dst)
    {
        var H = (ClTensor)h;
        var Q = (ClTensor)qkvo;
        var W = (ClWeight)w;
        var D = (ClTensor)dst;
        if (H.Cols != c.VDim || D.Cols != c.VDim || Q.Cols != c.QkvoDim || H.Rows != D.Rows || Q.Rows != H.Rows || W.Floats == 0 || W.Cols != c.VDim)
            throw new ArgumentException("headnorm: shape mismatch");
        Launch("headnorm_gate", [(long)H.Rows * c.Heads * ReductionSize], [ReductionSize], H.Buffer, H.Offset, Q.Buffer, Q.Offset, Q.Cols, c.OOffset,
            W.Floats, D.Buffer, D.Offset, c.Heads, c.DV, c.NormEps);
    }

    public void SwiGlu(ITensor gateUp, ITensor dst)
    {
        var G = (ClTensor)gateUp;
        var D = (ClTensor)dst;
        if (G.Cols != 2 * D.Cols || G.Rows != D.Rows) throw new ArgumentException("swiglu: shape mismatch");
        Launch("swiglu", [D.Cols, D.Rows], default, G.Buffer, G.Offset, D.Buffer, D.Offset, D.Cols, D.Rows);
    }

    public void SoftCap(ITensor x, float cap)
    {
        var X = (ClTensor)x;
        int n = checked(X.Rows * X.Cols);
        Launch("softcap", [n], default, X.Buffer, X.Offset, n, cap);
    }

    public void Argmax(ITensor x, int validCols, IIndexBuffer dst)
    {
        var X = (ClTensor)x;
        var D = (ClIndices)dst;
        if (X.Rows > D.Capacity) throw new ArgumentException("argmax: more rows than index capacity");
        if (validCols < 1 || validCols > X.Cols) throw new ArgumentOutOfRangeException(nameof(validCols));
        Launch("argmax_rows", [(long)X.Rows * ReductionSize], [ReductionSize], X.Buffer, X.Offset, X.Cols, validCols, D.Buffer);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_queue != 0) _cl.Finish(_queue);
        foreach (var k in _kernels.Values) _cl.ReleaseKernel(k);
        _kernels.Clear();
        foreach (var m in _mems) _cl.ReleaseMemObject(m);
        _mems.Clear();
        if (_program != 0) _cl.ReleaseProgram(_program);
        if (_queue != 0) _cl.ReleaseCommandQueue(_queue);
        if (_context != 0) _cl.ReleaseContext(_context);
        _program = _queue = _context = 0;
    }
}
