using Silk.NET.Vulkan;
using VkBuffer = Silk.NET.Vulkan.Buffer;

namespace XlstmRun.Backends.Vulkan;

public enum MemKind
{
    /// <summary>Device-local (weights, activations, state).</summary>
    Device,
    /// <summary>Host-visible, coherent, written by the host (staging, token ids).</summary>
    Upload,
    /// <summary>Host-visible, coherent, preferably cached, read by the host (readback, argmax ids).</summary>
    Readback,
}

/// <summary>A buffer and where its memory lies. <see cref="Mapped"/> is non-null when the host can access it directly.</summary>
public sealed unsafe class VkBuf
{
    private static long _nextId;
    public VkBuf(VkBuffer handle, ulong size, DeviceMemory memory, ulong memOffset, byte* mapped, bool dedicated)
    {
        Handle = handle; Size = size; Memory = memory; MemOffset = memOffset; Mapped = mapped; Dedicated = dedicated;
        Id = Interlocked.Increment(ref _nextId);
    }

    public VkBuffer Handle { get; }
    public ulong Size { get; }
    public DeviceMemory Memory { get; }
    public ulong MemOffset { get; }
    public byte* Mapped { get; }
    public bool IsMapped => Mapped != null;
    public bool Dedicated { get; }
    public long Id { get; }
    /// <summary>Bytes of the sub-allocation (not dedicated).</summary>
    public ulong SubSize { get; init; }
}

/// <summary>
/// Buffer memory: a dedicated allocation for every buffer of 4 MiB or more (weights, prefill activations), sub-allocations of 16 MiB blocks
/// for the small ones. No allocation exceeds maxMemoryAllocationSize. Released dedicated buffers free their memory;
/// released sub-allocations are reused by later buffers of the same size. Host-visible memory is mapped persistently.
/// </summary>
public sealed unsafe class Allocator : IDisposable
{
    // Small buffers (activations of a decode step, counters, scratch) share 16 MiB blocks; the rest get their own
    // allocation, freed when released: decode memory stays close to weights + state.
    private const ulong DedicatedMin = 4UL << 20;
    private const ulong BlockSize = 16UL << 20;

    private sealed class Block
    {
        public DeviceMemory Memory;
        public ulong Size, Used;
        public byte* Mapped;
        public int TypeIndex;
    }

    private readonly VulkanContext _context;
    private readonly List<Block> _blocks = new();
    private readonly List<(DeviceMemory Mem, bool Mapped, ulong Size, bool Device)> _dedicated = new();
    private readonly List<VkBuf> _buffers = new();
    private readonly int[] _typeFor = new int[3];

    /// <param name="mapDeviceMemory">Map host-visible device-local memory (false: staging copies, as on a discrete GPU).</param>
    public Allocator(VulkanContext cx, bool mapDeviceMemory = true)
    {
        _context = cx;
        // Probe the memory-type bits of a storage buffer once.
        var probe = CreateHandle(256, out var req);
        cx.Vk.DestroyBuffer(cx.Device, probe, null);
        uint bits = req.MemoryTypeBits;
        _typeFor[(int)MemKind.Device] = cx.FindMemoryType(bits, MemoryPropertyFlags.DeviceLocalBit, 0, MemoryPropertyFlags.HostVisibleBit);
        if (_typeFor[(int)MemKind.Device] < 0) _typeFor[(int)MemKind.Device] = cx.FindMemoryType(bits, 0);
        var hv = MemoryPropertyFlags.HostVisibleBit | MemoryPropertyFlags.HostCoherentBit;
        _typeFor[(int)MemKind.Upload] = cx.FindMemoryType(bits, hv, 0, MemoryPropertyFlags.DeviceLocalBit);
        _typeFor[(int)MemKind.Readback] = cx.FindMemoryType(bits, hv, MemoryPropertyFlags.HostCachedBit, MemoryPropertyFlags.DeviceLocalBit);
        if (_typeFor[(int)MemKind.Upload] < 0 || _typeFor[(int)MemKind.Readback] < 0)
            throw new VulkanUnavailableException($"{cx.Info.Name}: no host-visible coherent memory type");
        var df = cx.MemoryProperties.MemoryTypes[_typeFor[(int)MemKind.Device]].PropertyFlags;
        DeviceIsHostVisible = (df & hv) == hv;
        MapDevice = DeviceIsHostVisible && mapDeviceMemory;
    }

    /// <summary>Device-local buffers are mapped (host-visible device memory, not disabled for tests).</summary>
    public bool MapDevice { get; }

    /// <summary>Device memory is also host-visible and coherent (a CPU device or a unified-memory GPU): upload and read
    /// back through the mapping, without staging copies.</summary>
    public bool DeviceIsHostVisible { get; }

    public ulong DeviceBytes
    {
        get => _deviceBytes;
        private set
        {
            _deviceBytes = value;
            if (value > PeakDeviceBytes) PeakDeviceBytes = value;
        }
    }
    private ulong _deviceBytes;

    /// <summary>Most device-local memory allocated at once (since <see cref="ResetPeak"/>).</summary>
    public ulong PeakDeviceBytes { get; private set; }

    public void ResetPeak() => PeakDeviceBytes = _deviceBytes;

    // Released sub-allocations, reused by a later buffer of the same memory type and size (the activation buffers of a
    // prefill come and go with the same sizes).
    private readonly List<(Block Blk, ulong Offset, ulong Size)> _free = new();

    private VkBuffer CreateHandle(ulong size, out MemoryRequirements req)
    {
        var bci = new BufferCreateInfo
        {
            SType = StructureType.BufferCreateInfo,
            Size = size,
            Usage = BufferUsageFlags.StorageBufferBit | BufferUsageFlags.TransferSrcBit | BufferUsageFlags.TransferDstBit,
            SharingMode = SharingMode.Exclusive,
        };
        VkBuffer b;
        _context.Check(_context.Vk.CreateBuffer(_context.Device, &bci, null, &b), "vkCreateBuffer");
        MemoryRequirements r;
        _context.Vk.GetBufferMemoryRequirements(_context.Device, b, &r);
        req = r;
        return b;
    }

    private DeviceMemory AllocateMemory(ulong size, int type, bool map, out byte* mapped)
    {
        if (size > _context.MaxAllocation) throw new InvalidOperationException($"allocation of {size} bytes exceeds maxMemoryAllocationSize {_context.MaxAllocation}");
        var mai = new MemoryAllocateInfo { SType = StructureType.MemoryAllocateInfo, AllocationSize = size, MemoryTypeIndex = (uint)type };
        DeviceMemory m;
        var r = _context.Vk.AllocateMemory(_context.Device, &mai, null, &m);
        if (r is Result.ErrorOutOfDeviceMemory or Result.ErrorOutOfHostMemory)
            throw new InsufficientMemoryException($"out of Vulkan memory allocating {size / 1048576.0:F1} MiB ({DeviceBytes / 1048576.0:F0} MiB in use on {_context.Info.Name})");
        _context.Check(r, "vkAllocateMemory");
        mapped = null;
        var f = _context.MemoryProperties.MemoryTypes[type].PropertyFlags;
        if (map && (f & MemoryPropertyFlags.HostVisibleBit) != 0)
        {
            void* p;
            _context.Check(_context.Vk.MapMemory(_context.Device, m, 0, size, 0, &p), "vkMapMemory");
            mapped = (byte*)p;
        }
        if (type == _typeFor[(int)MemKind.Device]) DeviceBytes += size;
        return m;
    }

    public VkBuf Create(ulong size, MemKind kind)
    {
        size = Math.Max(16, (size + 15) & ~15UL);
        var handle = CreateHandle(size, out var req);
        int type = _typeFor[(int)kind];
        if ((req.MemoryTypeBits & (1u << type)) == 0) throw new InvalidOperationException("buffer cannot use the chosen memory type");
        VkBuf buf;
        if (req.Size >= DedicatedMin || kind != MemKind.Device)
        {
            var mem = AllocateMemory(req.Size, type, kind != MemKind.Device || MapDevice, out var mapped);
            _dedicated.Add((mem, mapped != null, req.Size, type == _typeFor[(int)MemKind.Device]));
            _context.Check(_context.Vk.BindBufferMemory(_context.Device, handle, mem, 0), "vkBindBufferMemory");
            buf = new VkBuf(handle, size, mem, 0, mapped, true);
        }
        else
        {
            ulong align = Math.Max(req.Alignment, 256);
            int fi = _free.FindIndex(f => f.Blk.TypeIndex == type && f.Size == req.Size && f.Offset % align == 0);
            if (fi >= 0)
            {
                var (fb, fo, _) = _free[fi];
                _free.RemoveAt(fi);
                _context.Check(_context.Vk.BindBufferMemory(_context.Device, handle, fb.Memory, fo), "vkBindBufferMemory");
                buf = new VkBuf(handle, size, fb.Memory, fo, fb.Mapped != null ? fb.Mapped + fo : null, false) { SubSize = req.Size };
                _buffers.Add(buf);
                return buf;
            }
            Block? blk = null;
            foreach (var b in _blocks)
                if (b.TypeIndex == type && ((b.Used + align - 1) & ~(align - 1)) + req.Size <= b.Size) { blk = b; break; }
            if (blk == null)
            {
                ulong bs = Math.Min(BlockSize, _context.MaxAllocation);
                blk = new Block { TypeIndex = type, Size = bs };
                blk.Memory = AllocateMemory(bs, type, MapDevice, out blk.Mapped);
                _blocks.Add(blk);
            }
            ulong off = (blk.Used + align - 1) & ~(align - 1);
            blk.Used = off + req.Size;
            _context.Check(_context.Vk.BindBufferMemory(_context.Device, handle, blk.Memory, off), "vkBindBufferMemory");
            buf = new VkBuf(handle, size, blk.Memory, off, blk.Mapped != null ? blk.Mapped + off : null, false) { SubSize = req.Size };
        }
        _buffers.Add(buf);
        return buf;
    }

    /// <summary>Destroy a buffer now; the device must no longer use it. A dedicated allocation is freed; a sub-allocation
    /// is kept for a later buffer of the same size.</summary>
    public void Release(VkBuf b)
    {
        if (!_buffers.Remove(b)) throw new InvalidOperationException("buffer not owned by this allocator");
        _context.Vk.DestroyBuffer(_context.Device, b.Handle, null);
        if (!b.Dedicated)
        {
            var blk = _blocks.First(x => x.Memory.Handle == b.Memory.Handle);
            _free.Add((blk, b.MemOffset, b.SubSize));
            return;
        }
        int i = _dedicated.FindIndex(d => d.Mem.Handle == b.Memory.Handle);
        if (i < 0) throw new InvalidOperationException("buffer not owned by this allocator");
        var d = _dedicated[i];
        _dedicated.RemoveAt(i);
        if (d.Mapped) _context.Vk.UnmapMemory(_context.Device, d.Mem);
        _context.Vk.FreeMemory(_context.Device, d.Mem, null);
        if (d.Device) DeviceBytes -= d.Size;
    }

    public void Dispose()
    {
        foreach (var b in _buffers) _context.Vk.DestroyBuffer(_context.Device, b.Handle, null);
        foreach (var (m, mapped, _, _) in _dedicated)
        {
            if (mapped) _context.Vk.UnmapMemory(_context.Device, m);
            _context.Vk.FreeMemory(_context.Device, m, null);
        }
        foreach (var b in _blocks)
        {
            if (b.Mapped != null) _context.Vk.UnmapMemory(_context.Device, b.Memory);
            _context.Vk.FreeMemory(_context.Device, b.Memory, null);
        }
        _buffers.Clear();
        _dedicated.Clear();
        _blocks.Clear();
        _free.Clear();
    }
}
