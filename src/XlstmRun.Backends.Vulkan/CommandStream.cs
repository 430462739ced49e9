using System.Text;
using Silk.NET.Vulkan;

namespace XlstmRun.Backends.Vulkan;

/// <summary>
/// Records ops into command buffers and submits them. Eager ops go into a command buffer that is submitted at the next
/// synchronisation point, or, once it holds <see cref="EagerChunkOps"/> ops, without waiting (the device runs the first
/// part of a long prompt while the host records the rest; each further piece twice as long as the one before, until the
/// next synchronisation point; at most <see cref="MaxInFlight"/> submissions in flight, the eager buffers a small ring).
/// <see cref="Replay"/> records a keyed command buffer once and resubmits it.
/// Barriers: one global memory barrier (between the stages of the ops on either side with <see cref="PreciseBarriers"/>,
/// else compute and transfer), inserted only when an op touches a buffer that an earlier op since the last barrier wrote
/// (read-after-write, write-after-write) or read (write-after-read); ops in a group (<see cref="BeginGroup"/>) are not
/// checked against each other. Each command buffer
/// starts with a full barrier (ordering against earlier submissions) and ends with a device-to-host barrier.
/// With profiling on, a timestamp follows every op; the time between consecutive timestamps is charged to the op.
/// </summary>
public sealed unsafe class CommandStream : IDisposable
{
    private sealed class Recording
    {
        public CommandBuffer Cb;
        public bool Open, HasWork, InFlight;
        public int OpCount;
        public PipelineStageFlags Pending;   // stages of the ops recorded since the last barrier
        public readonly HashSet<long> Dirty = new(), Reads = new();
        public QueryPool Pool;
        public uint Queries;
        public readonly List<string> Ops = new();
        public string Phase = "";
    }

    private const uint QueryCap = 4096;
    private readonly VulkanContext _context;
    private readonly Vk _vk;
    private readonly CommandPool _pool;
    private const int MaxInFlight = 2;
    private Recording _eager;                                  // the eager buffer being recorded (a member of the ring)
    private readonly List<Recording> _eagerRing = new();
    private Recording _target;
    private readonly Dictionary<string, Recording> _replays = new();
    private readonly Queue<(List<Recording> Recs, Fence Fence)> _flights = new();
    private readonly Stack<Fence> _freeFences = new();
    private string? _opName;
    private readonly Dictionary<(string Phase, string Op), (long Count, double Ns)> _prof = new();
    private readonly Dictionary<string, long> _submits = new();
    // wall-clock statistics (host side): eager batches from their first recorded op to completion, replayed steps from
    // submission to completion, and the period between consecutive replay submissions (the decode rate)
    private long _eagerStart = -1, _replaySubmitted = -1, _lastReplay = -1;
    private double _eagerWallMs;
    private long _eagerBatches;
    private readonly List<double> _replayLatencyMs = new(), _replayPeriodMs = new();

    public CommandStream(VulkanContext cx, bool profile)
    {
        _context = cx;
        _vk = cx.Vk;
        Profiling = profile && cx.Timestamps;
        var cpci = new CommandPoolCreateInfo { SType = StructureType.CommandPoolCreateInfo, QueueFamilyIndex = cx.QueueFamily, Flags = CommandPoolCreateFlags.ResetCommandBufferBit };
        CommandPool pool;
        cx.Check(_vk.CreateCommandPool(cx.Device, &cpci, null, &pool), "vkCreateCommandPool");
        _pool = pool;
        _eager = NewRecording("eager");
        _eagerRing.Add(_eager);
        _target = _eager;
    }

    public bool Profiling { get; }
    /// <summary>Eager ops per submission of a long recording (0: submit only at synchronisation points).</summary>
    public int EagerChunkOps { get; set; }
    /// <summary>Barriers name only the stages involved (compute shaders unless a transfer op is on either side) instead of
    /// compute and transfer always.</summary>
    public bool PreciseBarriers { get; set; }
    private int _chunkOps;   // the current piece's length (EagerChunkOps, doubling per piece; 0 = not started)
    /// <summary>Barriers recorded so far (all recordings).</summary>
    public long Barriers { get; private set; }
    public bool IsRecordingReplay => _target != _eager;

    private Recording NewRecording(string phase)
    {
        var ai = new CommandBufferAllocateInfo { SType = StructureType.CommandBufferAllocateInfo, CommandPool = _pool, Level = CommandBufferLevel.Primary, CommandBufferCount = 1 };
        CommandBuffer cb;
        _context.Check(_vk.AllocateCommandBuffers(_context.Device, &ai, &cb), "vkAllocateCommandBuffers");
        var r = new Recording { Cb = cb, Phase = phase };
        if (Profiling)
        {
            var qpci = new QueryPoolCreateInfo { SType = StructureType.QueryPoolCreateInfo, QueryType = QueryType.Timestamp, QueryCount = QueryCap };
            QueryPool qp;
            _context.Check(_vk.CreateQueryPool(_context.Device, &qpci, null, &qp), "vkCreateQueryPool");
            r.Pool = qp;
        }
        return r;
    }

    private static readonly PipelineStageFlags Work = PipelineStageFlags.ComputeShaderBit | PipelineStageFlags.TransferBit;

    private void Begin(Recording r, bool oneTime)
    {
        var bi = new CommandBufferBeginInfo { SType = StructureType.CommandBufferBeginInfo, Flags = oneTime ? CommandBufferUsageFlags.OneTimeSubmitBit : 0 };
        _context.Check(_vk.BeginCommandBuffer(r.Cb, &bi), "vkBeginCommandBuffer");
        var mb = new MemoryBarrier { SType = StructureType.MemoryBarrier, SrcAccessMask = AccessFlags.MemoryWriteBit, DstAccessMask = AccessFlags.MemoryReadBit | AccessFlags.MemoryWriteBit };
        _vk.CmdPipelineBarrier(r.Cb, PipelineStageFlags.AllCommandsBit, PipelineStageFlags.AllCommandsBit, 0, 1, &mb, 0, null, 0, null);
        r.Open = true;
        r.HasWork = false;
        if (r == _eager && _eagerStart < 0) _eagerStart = System.Diagnostics.Stopwatch.GetTimestamp();
        r.OpCount = 0;
        r.Pending = 0;
        r.Dirty.Clear();
        r.Reads.Clear();
        r.Ops.Clear();
        r.Queries = 0;
        if (Profiling)
        {
            _vk.CmdResetQueryPool(r.Cb, r.Pool, 0, QueryCap);
            _vk.CmdWriteTimestamp(r.Cb, PipelineStageFlags.BottomOfPipeBit, r.Pool, r.Queries++);
        }
    }

    private void End(Recording r)
    {
        var mb = new MemoryBarrier { SType = StructureType.MemoryBarrier, SrcAccessMask = AccessFlags.ShaderWriteBit | AccessFlags.TransferWriteBit, DstAccessMask = AccessFlags.HostReadBit };
        _vk.CmdPipelineBarrier(r.Cb, Work, PipelineStageFlags.HostBit, 0, 1, &mb, 0, null, 0, null);
        _context.Check(_vk.EndCommandBuffer(r.Cb), "vkEndCommandBuffer");
        r.Open = false;
    }

    /// <summary>Start an op that reads <paramref name="reads"/> and writes <paramref name="writes"/> (by compute shaders, or
    /// by transfer commands when <paramref name="transfer"/>); returns the command buffer to record it into. Call
    /// <see cref="EndOp"/> after recording.</summary>
    public CommandBuffer BeginOp(string name, ReadOnlySpan<VkBuf?> reads, ReadOnlySpan<VkBuf?> writes, bool transfer = false)
    {
        var r = _target;
        if (Profiling && r.Queries + 1 >= QueryCap)
        {
            if (r == _eager) Flush();
            else throw new InvalidOperationException("too many ops in one replayed command buffer for the profiler");
        }
        if (r == _eager && r.Open && EagerChunkOps > 0 && r.OpCount >= Math.Max(_chunkOps, EagerChunkOps))
        {
            _chunkOps = 2 * Math.Max(_chunkOps, EagerChunkOps);
            // submit what is recorded and go on in another buffer of the ring
            End(r);
            while (_flights.Count >= MaxInFlight) WaitOldest();
            Submit([r]);
            r = _target = _eager = FreeEager();
        }
        if (!r.Open)
        {
            if (r == _eager && r.InFlight) r = _target = _eager = FreeEager();
            Begin(r, r == _eager);
        }
        r.OpCount++;
        bool need = false;
        foreach (var b in reads) if (b != null && r.Dirty.Contains(b.Id)) need = true;
        foreach (var b in writes) if (b != null && (r.Dirty.Contains(b.Id) || r.Reads.Contains(b.Id))) need = true;
        var stage = transfer ? PipelineStageFlags.TransferBit : PipelineStageFlags.ComputeShaderBit;
        if (need)
        {
            var src = PreciseBarriers && r.Pending != 0 ? r.Pending : Work;
            var dst = PreciseBarriers ? stage : Work;
            var mb = new MemoryBarrier
            {
                SType = StructureType.MemoryBarrier,
                SrcAccessMask = Access(src, write: true),
                DstAccessMask = Access(dst, write: false) | Access(dst, write: true),
            };
            _vk.CmdPipelineBarrier(r.Cb, src, dst, 0, 1, &mb, 0, null, 0, null);
            r.Dirty.Clear();
            r.Reads.Clear();
            r.Pending = 0;
            Barriers++;
        }
        r.Pending |= stage;
        foreach (var b in reads) if (b != null) (_grouped ? _groupReads : r.Reads).Add(b.Id);
        foreach (var b in writes) if (b != null) (_grouped ? _groupDirty : r.Dirty).Add(b.Id);
        r.HasWork = true;
        _opName = name;
        return r.Cb;
    }

    // a group of ops on disjoint memory (BeginGroup): their reads and writes, checked against each other only after EndGroup
    private bool _grouped;
    private readonly HashSet<long> _groupDirty = new(), _groupReads = new();

    /// <summary>The ops until <see cref="EndGroup"/> touch disjoint memory (the caller's promise): no barrier between them,
    /// only against what came before; what they read and write counts for the ops after the group.</summary>
    public void BeginGroup()
    {
        if (_grouped) throw new InvalidOperationException("nested op group");
        _grouped = true;
        _groupDirty.Clear();
        _groupReads.Clear();
    }

    public void EndGroup()
    {
        if (!_grouped) throw new InvalidOperationException("no op group");
        _grouped = false;
        _target.Dirty.UnionWith(_groupDirty);
        _target.Reads.UnionWith(_groupReads);
    }

    private static AccessFlags Access(PipelineStageFlags stages, bool write) =>
        ((stages & PipelineStageFlags.ComputeShaderBit) != 0 ? (write ? AccessFlags.ShaderWriteBit : AccessFlags.ShaderReadBit) : 0) |
        ((stages & PipelineStageFlags.TransferBit) != 0 ? (write ? AccessFlags.TransferWriteBit : AccessFlags.TransferReadBit) : 0);

    public void EndOp()
    {
        var r = _target;
        if (Profiling)
        {
            _vk.CmdWriteTimestamp(r.Cb, PipelineStageFlags.BottomOfPipeBit, r.Pool, r.Queries++);
            r.Ops.Add(_opName!);
        }
        _opName = null;
    }

    public void Dispatch(Kernel k, Pipeline p, DescriptorSet set, void* push, uint gx, uint gy = 1, uint gz = 1)
    {
        var cb = _target.Cb;
        _vk.CmdBindPipeline(cb, PipelineBindPoint.Compute, p);
        _vk.CmdBindDescriptorSets(cb, PipelineBindPoint.Compute, k.Layout, 0, 1, &set, 0, null);
        if (k.PushBytes > 0) _vk.CmdPushConstants(cb, k.Layout, ShaderStageFlags.ComputeBit, 0, k.PushBytes, push);
        _vk.CmdDispatch(cb, gx, gy, gz);
    }

    /// <summary>An eager buffer that is not in flight (waiting for the oldest submission when the ring is full).</summary>
    private Recording FreeEager()
    {
        while (true)
        {
            foreach (var e in _eagerRing)
                if (!e.InFlight) return e;
            if (_eagerRing.Count <= MaxInFlight)
            {
                var n = NewRecording("eager");
                _eagerRing.Add(n);
                return n;
            }
            WaitOldest();
        }
    }

    /// <summary>Called before every submission (the uploader submits its pending copies, so they come first).</summary>
    public Action? BeforeSubmit { get; set; }

    /// <summary>Submit <paramref name="recs"/> (in this order) with a fence of its own and remember them as in flight.</summary>
    private void Submit(List<Recording> recs)
    {
        BeforeSubmit?.Invoke();
        var cbs = stackalloc CommandBuffer[recs.Count];
        for (int i = 0; i < recs.Count; i++) cbs[i] = recs[i].Cb;
        Fence fence;
        if (!_freeFences.TryPop(out fence))
        {
            var fci = new FenceCreateInfo { SType = StructureType.FenceCreateInfo };
            _context.Check(_vk.CreateFence(_context.Device, &fci, null, &fence), "vkCreateFence");
        }
        var si = new SubmitInfo { SType = StructureType.SubmitInfo, CommandBufferCount = (uint)recs.Count, PCommandBuffers = cbs };
        _context.Check(_vk.QueueSubmit(_context.Queue, 1, &si, fence), "vkQueueSubmit");
        foreach (var r in recs) r.InFlight = true;
        _flights.Enqueue((recs, fence));
    }

    /// <summary>Wait for every submission in flight, collect their timestamps and recycle the eager buffers.</summary>
    public void Wait()
    {
        while (_flights.Count > 0) WaitOldest();
        _chunkOps = 0;
    }

    private bool IsEager(Recording r) => _eagerRing.Contains(r);

    /// <summary>Wait for the oldest submission in flight.</summary>
    private void WaitOldest()
    {
        var (recs, fence) = _flights.Dequeue();
        var r = _vk.WaitForFences(_context.Device, 1, &fence, true, ulong.MaxValue);
        if (r == Result.ErrorDeviceLost) throw new InvalidOperationException("Vulkan device lost (the GPU stopped or a kernel faulted)");
        _context.Check(r, "vkWaitForFences");
        _vk.ResetFences(_context.Device, 1, &fence);
        _freeFences.Push(fence);
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        foreach (var rec in recs)
        {
            rec.InFlight = false;
            if (IsEager(rec))
            {
                // an eager batch ends when nothing eager is pending any more
                if (_eagerStart >= 0 && !_eager.Open && !_flights.Any(f => f.Recs.Exists(IsEager)))
                {
                    _eagerWallMs += System.Diagnostics.Stopwatch.GetElapsedTime(_eagerStart, now).TotalMilliseconds;
                    _eagerBatches++;
                    _eagerStart = -1;
                }
            }
            else if (_replaySubmitted >= 0)
            {
                _replayLatencyMs.Add(System.Diagnostics.Stopwatch.GetElapsedTime(_replaySubmitted, now).TotalMilliseconds);
                _replaySubmitted = -1;
            }
            if (Profiling) Collect(rec);
            _submits[rec.Phase] = _submits.GetValueOrDefault(rec.Phase) + 1;
            if (IsEager(rec))
            {
                _vk.ResetCommandBuffer(rec.Cb, 0);
                rec.HasWork = false;
            }
        }
    }

    /// <summary>Submit the eager ops recorded so far (if any) and wait for everything to finish.</summary>
    public void Flush()
    {
        if (_target != _eager) throw new InvalidOperationException("a synchronising call inside a replay recording");
        if (_eager.Open)
        {
            End(_eager);
            while (_flights.Count >= MaxInFlight) WaitOldest();
            Submit([_eager]);
        }
        Wait();
    }

    public bool Idle => _flights.Count == 0 && !_eager.Open;

    /// <summary>Record <paramref name="record"/> once per key into its own command buffer, then submit it (after any
    /// pending eager ops) without waiting.</summary>
    public void Replay(string key, Action record)
    {
        if (_target != _eager) throw new InvalidOperationException("nested replay");
        if (!_replays.TryGetValue(key, out var rec))
        {
            Wait();
            rec = NewRecording("decode");
            _target = rec;
            try
            {
                Begin(rec, false);
                record();
                End(rec);
            }
            finally
            {
                _target = _eager;
            }
            _replays[key] = rec;
        }
        Wait();
        var list = new List<Recording>(2);
        if (_eager.Open)
        {
            End(_eager);
            list.Add(_eager);
        }
        list.Add(rec);
        Submit(list);
        long t = System.Diagnostics.Stopwatch.GetTimestamp();
        if (_lastReplay >= 0) _replayPeriodMs.Add(System.Diagnostics.Stopwatch.GetElapsedTime(_lastReplay, t).TotalMilliseconds);
        _lastReplay = _replaySubmitted = t;
    }

    /// <summary>Start the wall-clock statistics afresh (after loading).</summary>
    public void ResetStats()
    {
        _eagerWallMs = 0;
        _eagerBatches = 0;
        _replayLatencyMs.Clear();
        _replayPeriodMs.Clear();
        _lastReplay = -1;
    }

    /// <summary>Forget the replay period chain (call when something else than decode steps happened in between).</summary>
    public void BreakReplayChain() => _lastReplay = -1;

    private static double Median(List<double> v)
    {
        if (v.Count == 0) return 0;
        var a = v.ToArray();
        Array.Sort(a);
        return a.Length % 2 == 1 ? a[a.Length / 2] : 0.5 * (a[a.Length / 2 - 1] + a[a.Length / 2]);
    }

    /// <summary>Host wall-clock figures: eager batches (prefill), replayed steps (decode).</summary>
    public string StatsReport()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"vulkan wall clock: eager batches {_eagerBatches}, {_eagerWallMs:F1} ms from first op to completion; " +
                      $"replayed steps {_replayLatencyMs.Count}, submit→done median {Median(_replayLatencyMs):F3} ms, " +
                      $"step period median {Median(_replayPeriodMs):F3} ms ({(_replayPeriodMs.Count > 0 ? 1000.0 / Median(_replayPeriodMs) : 0):F1} steps/s over {_replayPeriodMs.Count} periods); barriers recorded {Barriers}");
        return sb.ToString();
    }

    private void Collect(Recording rec)
    {
        if (rec.Queries < 2) return;
        var ts = new ulong[rec.Queries];
        fixed (ulong* p = ts)
            _context.Check(_vk.GetQueryPoolResults(_context.Device, rec.Pool, 0, rec.Queries, (nuint)(8 * ts.Length), p, 8,
                QueryResultFlags.Result64Bit | QueryResultFlags.ResultWaitBit), "vkGetQueryPoolResults");
        string phase = IsEager(rec) ? "eager" : "decode";
        for (int i = 0; i < rec.Ops.Count; i++)
        {
            double ns = (ts[i + 1] - ts[i]) * (double)_context.TimestampPeriodNs;
            var k = (phase, rec.Ops[i]);
            var (c, t) = _prof.GetValueOrDefault(k);
            _prof[k] = (c + 1, t + ns);
        }
    }

    /// <summary>GPU time per op name (both phases) since the last <see cref="ResetProfile"/>.</summary>
    public IReadOnlyDictionary<string, (long Count, double Ns)> OpTimes()
    {
        var d = new Dictionary<string, (long Count, double Ns)>();
        foreach (var ((_, op), (c, ns)) in _prof)
        {
            var (c0, n0) = d.GetValueOrDefault(op);
            d[op] = (c0 + c, n0 + ns);
        }
        return d;
    }

    public void ResetProfile()
    {
        _prof.Clear();
        _submits.Clear();
    }

    /// <summary>The per-op GPU time table (aggregated per op name), or a note when timestamps are unavailable.</summary>
    public string ProfileReport()
    {
        var sb = new StringBuilder();
        if (!Profiling)
        {
            sb.AppendLine($"profile: {_context.Info.Name} has no timestamp queries on its compute queue");
            return sb.ToString();
        }
        foreach (var phase in new[] { "eager", "decode" })
        {
            var rows = _prof.Where(kv => kv.Key.Phase == phase).OrderByDescending(kv => kv.Value.Ns).ToList();
            if (rows.Count == 0) continue;
            double total = rows.Sum(r => r.Value.Ns);
            long subs = _submits.GetValueOrDefault(phase);
            sb.AppendLine(phase == "decode"
                ? $"GPU profile, replayed decode steps: {subs} steps, {total / 1e6:F3} ms GPU total, {total / 1e6 / Math.Max(1, subs):F4} ms per step"
                : $"GPU profile, eager ops (prefill, reads, resets): {subs} submissions, {total / 1e6:F3} ms GPU total");
            sb.AppendLine($"  {"op",-24} {"count",8} {"total ms",11} {"%",6} {"per step ms",12}");
            foreach (var (k, v) in rows)
                sb.AppendLine($"  {k.Op,-24} {v.Count,8} {v.Ns / 1e6,11:F3} {100 * v.Ns / total,6:F1} {(phase == "decode" ? (v.Ns / 1e6 / Math.Max(1, subs)).ToString("F4") : "-"),12}");
        }
        return sb.ToString();
    }

    public void Dispose()
    {
        try { Wait(); } catch (InvalidOperationException) { }
        _vk.DeviceWaitIdle(_context.Device);
        foreach (var r in _replays.Values.Concat(_eagerRing))
            if (r.Pool.Handle != 0) _vk.DestroyQueryPool(_context.Device, r.Pool, null);
        foreach (var f in _freeFences) _vk.DestroyFence(_context.Device, f, null);
        _vk.DestroyCommandPool(_context.Device, _pool, null);
    }
}
