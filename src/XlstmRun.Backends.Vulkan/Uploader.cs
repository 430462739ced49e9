using Silk.NET.Vulkan;

namespace XlstmRun.Backends.Vulkan;

/// <summary>
/// Host → device writes. Where device memory is host-visible (a CPU device, unified memory) the bytes are written
/// straight into the mapping. Otherwise they are packed into one of two host-visible staging buffers and copied with
/// vkCmdCopyBuffer; while one staging buffer is being copied the host fills the other.
/// </summary>
public sealed unsafe class Uploader : IDisposable
{
    public delegate void Fill(byte* dst);

    private sealed class Slot
    {
        public VkBuf Staging = null!;
        public CommandBuffer Cb;
        public Fence Fence;
        public bool Busy;
        public ulong Used;
        public readonly List<(VkBuf Dst, BufferCopy Region)> Copies = new();
    }

    private readonly VulkanContext _context;
    private readonly Allocator _mem;
    private readonly CommandPool _pool;
    private readonly Slot[] _slots = new Slot[2];
    private int _cur;
    public ulong StagingSize { get; }

    public Uploader(VulkanContext cx, Allocator mem, ulong stagingSize = 64UL << 20)
    {
        _context = cx;
        _mem = mem;
        StagingSize = stagingSize;
        var cpci = new CommandPoolCreateInfo { SType = StructureType.CommandPoolCreateInfo, QueueFamilyIndex = cx.QueueFamily, Flags = CommandPoolCreateFlags.ResetCommandBufferBit };
        CommandPool pool;
        cx.Check(cx.Vk.CreateCommandPool(cx.Device, &cpci, null, &pool), "vkCreateCommandPool");
        _pool = pool;
    }

    private Slot GetSlot(int i)
    {
        if (_slots[i] != null) return _slots[i];
        var s = new Slot { Staging = _mem.Create(StagingSize, MemKind.Upload) };
        var ai = new CommandBufferAllocateInfo { SType = StructureType.CommandBufferAllocateInfo, CommandPool = _pool, Level = CommandBufferLevel.Primary, CommandBufferCount = 1 };
        CommandBuffer cb;
        _context.Check(_context.Vk.AllocateCommandBuffers(_context.Device, &ai, &cb), "vkAllocateCommandBuffers");
        s.Cb = cb;
        var fci = new FenceCreateInfo { SType = StructureType.FenceCreateInfo };
        Fence f;
        _context.Check(_context.Vk.CreateFence(_context.Device, &fci, null, &f), "vkCreateFence");
        s.Fence = f;
        return _slots[i] = s;
    }

    private void WaitSlot(Slot s)
    {
        if (!s.Busy) return;
        var f = s.Fence;
        _context.Check(_context.Vk.WaitForFences(_context.Device, 1, &f, true, ulong.MaxValue), "vkWaitForFences");
        _context.Vk.ResetFences(_context.Device, 1, &f);
        _context.Vk.ResetCommandBuffer(s.Cb, 0);
        s.Busy = false;
    }

    private void SubmitSlot(Slot s)
    {
        if (s.Copies.Count == 0) return;
        var bi = new CommandBufferBeginInfo { SType = StructureType.CommandBufferBeginInfo, Flags = CommandBufferUsageFlags.OneTimeSubmitBit };
        _context.Check(_context.Vk.BeginCommandBuffer(s.Cb, &bi), "vkBeginCommandBuffer");
        foreach (var (dst, region) in s.Copies)
        {
            var r = region;
            _context.Vk.CmdCopyBuffer(s.Cb, s.Staging.Handle, dst.Handle, 1, &r);
        }
        _context.Check(_context.Vk.EndCommandBuffer(s.Cb), "vkEndCommandBuffer");
        var cb = s.Cb;
        var si = new SubmitInfo { SType = StructureType.SubmitInfo, CommandBufferCount = 1, PCommandBuffers = &cb };
        _context.Check(_context.Vk.QueueSubmit(_context.Queue, 1, &si, s.Fence), "vkQueueSubmit");
        s.Busy = true;
        s.Copies.Clear();
        s.Used = 0;
    }

    /// <summary>Write <paramref name="len"/> bytes at <paramref name="dstOffset"/> of <paramref name="dst"/>, produced by
    /// <paramref name="fill"/> into a host pointer. The copy may still be pending when this returns (see <see cref="Finish"/>);
    /// ops submitted later are ordered after it.</summary>
    public void Write(VkBuf dst, ulong dstOffset, ulong len, Fill fill)
    {
        if (len == 0) return;
        if (dst.Mapped != null)
        {
            fill(dst.Mapped + dstOffset);
            return;
        }
        if (len > StagingSize) throw new ArgumentException($"upload piece of {len} bytes exceeds the staging buffer");
        var s = GetSlot(_cur);
        WaitSlot(s);
        ulong off = (s.Used + 15) & ~15UL;
        if (off + len > StagingSize)
        {
            SubmitSlot(s);
            _cur ^= 1;
            s = GetSlot(_cur);
            WaitSlot(s);
            off = 0;
        }
        fill(s.Staging.Mapped + off);
        s.Copies.Add((dst, new BufferCopy { SrcOffset = off, DstOffset = dstOffset, Size = len }));
        s.Used = off + len;
    }

    /// <summary>Submit what is packed and wait until every copy has landed.</summary>
    public void Finish()
    {
        foreach (var i in new[] { _cur, _cur ^ 1 })
            if (_slots[i] != null) SubmitSlot(_slots[i]);
        foreach (var s in _slots)
            if (s != null) WaitSlot(s);
    }

    /// <summary>Submit what is packed without waiting (ops submitted afterwards are ordered after these copies).</summary>
    public void Submit()
    {
        var s = _slots[_cur];
        if (s == null || s.Copies.Count == 0) return;
        SubmitSlot(s);
        _cur ^= 1;
    }

    public void Dispose()
    {
        try { Finish(); } catch (InvalidOperationException) { }
        foreach (var s in _slots)
            if (s != null) _context.Vk.DestroyFence(_context.Device, s.Fence, null);
        _context.Vk.DestroyCommandPool(_context.Device, _pool, null);
    }
}
