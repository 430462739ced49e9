using Silk.NET.Vulkan;
using XlstmRun.Model;

namespace XlstmRun.Backends.Vulkan;

/// <summary>
/// Device memory bandwidth: two device-local buffers, the source filled with a non-zero pattern, copied into the other
/// by vkCmdCopyBuffer and by a compute shader (16-byte loads and stores, shaders/copy.comp, when the buffer fits one
/// binding); each copy between two timestamps (host clock around a submission where the queue has none). Rate = 2 ×
/// bytes / time (read + write); the best of the passes after one warm-up, the better of the two methods.
/// </summary>
internal sealed unsafe class DeviceProbe
{
    private readonly VulkanContext _context;
    private readonly Allocator _mem;
    private readonly Kernel _copy;

    public DeviceProbe(VulkanContext cx, Allocator mem, Kernel copy)
    {
        _context = cx;
        _mem = mem;
        _copy = copy;
    }

    public BandwidthProbeResult Measure(long bytes, int passes)
    {
        if (bytes < 1 << 20) throw new ArgumentOutOfRangeException(nameof(bytes), "at least 1 MiB");
        passes = Math.Max(1, passes);
        ulong size = Math.Min((ulong)bytes, _context.MaxAllocation) & ~0xFFFFUL;
        VkBuf? src = null, dst = null;
        while (true)
        {
            try
            {
                src = _mem.Create(size, MemKind.Device);
                dst = _mem.Create(size, MemKind.Device);
                break;
            }
            catch (InsufficientMemoryException) when (size > 32UL << 20)
            {
                if (src != null) _mem.Release(src);
                src = null;
                size /= 2;
            }
        }
        var vk = _context.Vk;
        CommandPool pool = default;
        QueryPool qp = default;
        DescriptorPool dp = default;
        Fence fence = default;
        try
        {
            var cpci = new CommandPoolCreateInfo { SType = StructureType.CommandPoolCreateInfo, QueueFamilyIndex = _context.QueueFamily, Flags = CommandPoolCreateFlags.ResetCommandBufferBit };
            _context.Check(vk.CreateCommandPool(_context.Device, &cpci, null, &pool), "vkCreateCommandPool");
            var ai = new CommandBufferAllocateInfo { SType = StructureType.CommandBufferAllocateInfo, CommandPool = pool, Level = CommandBufferLevel.Primary, CommandBufferCount = 1 };
            CommandBuffer cb;
            _context.Check(vk.AllocateCommandBuffers(_context.Device, &ai, &cb), "vkAllocateCommandBuffers");
            var fci = new FenceCreateInfo { SType = StructureType.FenceCreateInfo };
            _context.Check(vk.CreateFence(_context.Device, &fci, null, &fence), "vkCreateFence");
            uint nq = 2 * (uint)(passes + 1);
            if (_context.Timestamps)
            {
                var qpci = new QueryPoolCreateInfo { SType = StructureType.QueryPoolCreateInfo, QueryType = QueryType.Timestamp, QueryCount = nq };
                _context.Check(vk.CreateQueryPool(_context.Device, &qpci, null, &qp), "vkCreateQueryPool");
            }
            // descriptor set of the shader copy (its own pool: the buffers are gone after the probe)
            bool shader = size <= _context.MaxBinding;
            DescriptorSet set = default;
            if (shader)
            {
                var ps = new DescriptorPoolSize { Type = DescriptorType.StorageBuffer, DescriptorCount = 2 };
                var dpci = new DescriptorPoolCreateInfo { SType = StructureType.DescriptorPoolCreateInfo, MaxSets = 1, PoolSizeCount = 1, PPoolSizes = &ps };
                _context.Check(vk.CreateDescriptorPool(_context.Device, &dpci, null, &dp), "vkCreateDescriptorPool");
                var layout = _copy.SetLayout;
                var dsai = new DescriptorSetAllocateInfo { SType = StructureType.DescriptorSetAllocateInfo, DescriptorPool = dp, DescriptorSetCount = 1, PSetLayouts = &layout };
                DescriptorSet set0;
                _context.Check(vk.AllocateDescriptorSets(_context.Device, &dsai, &set0), "vkAllocateDescriptorSets");
                set = set0;
                var infos = stackalloc DescriptorBufferInfo[2];
                infos[0] = new DescriptorBufferInfo { Buffer = src!.Handle, Offset = 0, Range = size };
                infos[1] = new DescriptorBufferInfo { Buffer = dst!.Handle, Offset = 0, Range = size };
                var w = stackalloc WriteDescriptorSet[2];
                for (int i = 0; i < 2; i++)
                    w[i] = new WriteDescriptorSet { SType = StructureType.WriteDescriptorSet, DstSet = set, DstBinding = (uint)i, DescriptorCount = 1, DescriptorType = DescriptorType.StorageBuffer, PBufferInfo = &infos[i] };
                vk.UpdateDescriptorSets(_context.Device, 2, w, 0, null);
            }

            // fill the source once (not timed): 1.0f everywhere
            Submit(cb, fence, c => vk.CmdFillBuffer(c, src.Handle, 0, size, 0x3F800000u));
            double copyBest = Time(cb, fence, qp, passes, c =>
            {
                var region = new BufferCopy { SrcOffset = 0, DstOffset = 0, Size = size };
                vk.CmdCopyBuffer(c, src.Handle, dst!.Handle, 1, &region);
            });
            double shaderBest = 0;
            if (shader)
            {
                uint n = (uint)(size / 16);
                uint groups = Math.Min(65535u, Math.Max(1u, n / 256 / 4));
                var pipe = _copy.Pipeline([]);
                shaderBest = Time(cb, fence, qp, passes, c =>
                {
                    var s = set;
                    vk.CmdBindPipeline(c, PipelineBindPoint.Compute, pipe);
                    vk.CmdBindDescriptorSets(c, PipelineBindPoint.Compute, _copy.Layout, 0, 1, &s, 0, null);
                    var pc = stackalloc uint[2];
                    pc[0] = n;
                    pc[1] = groups * 256;
                    vk.CmdPushConstants(c, _copy.Layout, ShaderStageFlags.ComputeBit, 0, 8, pc);
                    vk.CmdDispatch(c, groups, 1, 1);
                });
            }
            double gbCopy = 2.0 * size / copyBest / 1e9, gbShader = shaderBest > 0 ? 2.0 * size / shaderBest / 1e9 : 0;
            string timing = _context.Timestamps ? "timestamps" : "host clock";
            string method = $"{size >> 20} MiB device-to-device copy, read + write, best of {passes} ({timing}): vkCmdCopyBuffer {gbCopy:F1} GB/s" +
                            (shader ? $", shader copy {gbShader:F1} GB/s" : "");
            return new BandwidthProbeResult(Math.Max(gbCopy, gbShader), (long)size, method);
        }
        finally
        {
            vk.DeviceWaitIdle(_context.Device);
            if (dp.Handle != 0) vk.DestroyDescriptorPool(_context.Device, dp, null);
            if (qp.Handle != 0) vk.DestroyQueryPool(_context.Device, qp, null);
            if (fence.Handle != 0) vk.DestroyFence(_context.Device, fence, null);
            if (pool.Handle != 0) vk.DestroyCommandPool(_context.Device, pool, null);
            _mem.Release(src);
            if (dst != null) _mem.Release(dst);
        }
    }

    private void Submit(CommandBuffer cb, Fence fence, Action<CommandBuffer> record)
    {
        var vk = _context.Vk;
        var bi = new CommandBufferBeginInfo { SType = StructureType.CommandBufferBeginInfo, Flags = CommandBufferUsageFlags.OneTimeSubmitBit };
        _context.Check(vk.BeginCommandBuffer(cb, &bi), "vkBeginCommandBuffer");
        record(cb);
        _context.Check(vk.EndCommandBuffer(cb), "vkEndCommandBuffer");
        var si = new SubmitInfo { SType = StructureType.SubmitInfo, CommandBufferCount = 1, PCommandBuffers = &cb };
        _context.Check(vk.QueueSubmit(_context.Queue, 1, &si, fence), "vkQueueSubmit");
        _context.Check(vk.WaitForFences(_context.Device, 1, &fence, true, ulong.MaxValue), "vkWaitForFences");
        _context.Check(vk.ResetFences(_context.Device, 1, &fence), "vkResetFences");
    }

    /// <summary>Seconds of the fastest of <paramref name="passes"/> runs of <paramref name="op"/> after one warm-up.</summary>
    private double Time(CommandBuffer cb, Fence fence, QueryPool qp, int passes, Action<CommandBuffer> op)
    {
        var vk = _context.Vk;
        var mb = new MemoryBarrier
        {
            SType = StructureType.MemoryBarrier,
            SrcAccessMask = AccessFlags.TransferWriteBit | AccessFlags.ShaderWriteBit,
            DstAccessMask = AccessFlags.TransferReadBit | AccessFlags.TransferWriteBit | AccessFlags.ShaderReadBit | AccessFlags.ShaderWriteBit,
        };
        var stages = PipelineStageFlags.TransferBit | PipelineStageFlags.ComputeShaderBit;
        double best = double.MaxValue;
        if (qp.Handle != 0)
        {
            uint nq = 2 * (uint)(passes + 1);
            Submit(cb, fence, c =>
            {
                var m = mb;
                vk.CmdResetQueryPool(c, qp, 0, nq);
                for (uint i = 0; i <= passes; i++)
                {
                    vk.CmdPipelineBarrier(c, stages, stages, 0, 1, &m, 0, null, 0, null);
                    // both at the bottom of the pipe: the first marks the end of everything before (the barrier waited)
                    vk.CmdWriteTimestamp(c, PipelineStageFlags.BottomOfPipeBit, qp, 2 * i);
                    op(c);
                    vk.CmdWriteTimestamp(c, PipelineStageFlags.BottomOfPipeBit, qp, 2 * i + 1);
                }
            });
            var ts = new ulong[nq];
            fixed (ulong* p = ts)
                _context.Check(vk.GetQueryPoolResults(_context.Device, qp, 0, nq, (nuint)(8 * nq), p, 8, QueryResultFlags.Result64Bit | QueryResultFlags.ResultWaitBit), "vkGetQueryPoolResults");
            for (int i = 1; i <= passes; i++) best = Math.Min(best, (ts[2 * i + 1] - ts[2 * i]) * (double)_context.TimestampPeriodNs * 1e-9);
        }
        else
        {
            for (int i = 0; i <= passes; i++)
            {
                long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                Submit(cb, fence, c => { var m = mb; vk.CmdPipelineBarrier(c, stages, stages, 0, 1, &m, 0, null, 0, null); op(c); });
                double t = System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds;
                if (i > 0) best = Math.Min(best, t);
            }
        }
        return Math.Max(best, 1e-9);
    }
}
