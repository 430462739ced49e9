using System.Reflection;
using Silk.NET.Core.Native;
using Silk.NET.Vulkan;
using VkBuffer = Silk.NET.Vulkan.Buffer;

namespace XlstmRun.Backends.Vulkan;

/// <summary>One storage-buffer binding: a range of a buffer.</summary>
public readonly record struct Binding(VkBuf Buf, ulong Offset, ulong Range)
{
    public static Binding Whole(VkBuf b) => new(b, 0, b.Size);
}

/// <summary>
/// A compute shader (embedded SPIR-V) with its descriptor-set layout (N storage buffers), pipeline layout (push
/// constants) and one pipeline per set of specialization constants. Shared by every backend on the context.
/// </summary>
public sealed unsafe class Kernel : IDisposable
{
    private readonly VulkanContext _cx;
    private readonly ShaderModule _module;
    private readonly Dictionary<UInt128, Pipeline> _pipelines = new();

    public string Name { get; }
    public int Bindings { get; }
    public uint PushBytes { get; }
    public DescriptorSetLayout SetLayout { get; }
    public PipelineLayout Layout { get; }

    public Kernel(VulkanContext cx, string name, int bindings, uint pushBytes)
    {
        _cx = cx;
        Name = name;
        Bindings = bindings;
        PushBytes = pushBytes;
        var code = LoadSpirv(name + (cx.UseSubgroups ? "" : ".nosg"));
        fixed (byte* p = code)
        {
            var smci = new ShaderModuleCreateInfo { SType = StructureType.ShaderModuleCreateInfo, CodeSize = (nuint)code.Length, PCode = (uint*)p };
            ShaderModule m;
            cx.Check(cx.Vk.CreateShaderModule(cx.Device, &smci, null, &m), $"vkCreateShaderModule({name})");
            _module = m;
        }
        var lb = stackalloc DescriptorSetLayoutBinding[bindings];
        for (int i = 0; i < bindings; i++)
            lb[i] = new DescriptorSetLayoutBinding { Binding = (uint)i, DescriptorType = DescriptorType.StorageBuffer, DescriptorCount = 1, StageFlags = ShaderStageFlags.ComputeBit };
        var dslci = new DescriptorSetLayoutCreateInfo { SType = StructureType.DescriptorSetLayoutCreateInfo, BindingCount = (uint)bindings, PBindings = lb };
        DescriptorSetLayout dsl;
        cx.Check(cx.Vk.CreateDescriptorSetLayout(cx.Device, &dslci, null, &dsl), "vkCreateDescriptorSetLayout");
        SetLayout = dsl;
        var pcr = new PushConstantRange { StageFlags = ShaderStageFlags.ComputeBit, Offset = 0, Size = pushBytes };
        var plci = new PipelineLayoutCreateInfo
        {
            SType = StructureType.PipelineLayoutCreateInfo,
            SetLayoutCount = 1,
            PSetLayouts = &dsl,
            PushConstantRangeCount = pushBytes > 0 ? 1u : 0u,
            PPushConstantRanges = &pcr,
        };
        PipelineLayout pl;
        cx.Check(cx.Vk.CreatePipelineLayout(cx.Device, &plci, null, &pl), "vkCreatePipelineLayout");
        Layout = pl;
    }

    public static byte[] LoadSpirv(string name)
    {
        var asm = typeof(Kernel).Assembly;
        using var s = asm.GetManifestResourceStream("shaders/" + name + ".spv")
            ?? throw new InvalidOperationException($"embedded shader shaders/{name}.spv is missing (the build compiles shaders/*.comp with glslc)");
        var b = new byte[s.Length];
        s.ReadExactly(b);
        return b;
    }

    /// <summary>The pipeline for specialization constants (constant_id i = spec[i]; at most 8, each &lt; 2^16).</summary>
    public Pipeline Pipeline(ReadOnlySpan<uint> spec)
    {
        if (spec.Length > 8) throw new ArgumentException("at most 8 specialization constants");
        UInt128 key = 0;
        for (int i = 0; i < spec.Length; i++)
        {
            if (spec[i] > 0xFFFF) throw new ArgumentOutOfRangeException(nameof(spec), "specialization constants must be < 65536");
            key |= (UInt128)spec[i] << (16 * i);
        }
        if (_pipelines.TryGetValue(key, out var p)) return p;
        var entries = stackalloc SpecializationMapEntry[Math.Max(1, spec.Length)];
        var data = stackalloc uint[Math.Max(1, spec.Length)];
        for (int i = 0; i < spec.Length; i++)
        {
            entries[i] = new SpecializationMapEntry { ConstantID = (uint)i, Offset = (uint)(4 * i), Size = 4 };
            data[i] = spec[i];
        }
        var si = new SpecializationInfo { MapEntryCount = (uint)spec.Length, PMapEntries = entries, DataSize = (nuint)(4 * spec.Length), PData = data };
        var entry = (byte*)SilkMarshal.StringToPtr("main");
        try
        {
            var stage = new PipelineShaderStageCreateInfo
            {
                SType = StructureType.PipelineShaderStageCreateInfo,
                Stage = ShaderStageFlags.ComputeBit,
                Module = _module,
                PName = entry,
                PSpecializationInfo = spec.Length > 0 ? &si : null,
            };
            var cpci = new ComputePipelineCreateInfo { SType = StructureType.ComputePipelineCreateInfo, Stage = stage, Layout = Layout };
            Pipeline pipe;
            _cx.Check(_cx.Vk.CreateComputePipelines(_cx.Device, default, 1, &cpci, null, &pipe), $"vkCreateComputePipelines({Name})");
            _pipelines[key] = pipe;
            return pipe;
        }
        finally
        {
            SilkMarshal.Free((nint)entry);
        }
    }

    public void Dispose()
    {
        foreach (var p in _pipelines.Values) _cx.Vk.DestroyPipeline(_cx.Device, p, null);
        _cx.Vk.DestroyPipelineLayout(_cx.Device, Layout, null);
        _cx.Vk.DestroyDescriptorSetLayout(_cx.Device, SetLayout, null);
        _cx.Vk.DestroyShaderModule(_cx.Device, _module, null);
        _pipelines.Clear();
    }
}

/// <summary>
/// Descriptor sets of one backend, cached by (kernel, bindings): a replayed command buffer and a repeated op reuse the
/// same set, so an op costs no host work beyond recording. Freed with the backend (the buffers they point to go too).
/// </summary>
public sealed unsafe class DescriptorCache : IDisposable
{
    private readonly VulkanContext _cx;
    private readonly Dictionary<DescKey, DescriptorSet> _sets = new();
    private readonly List<DescriptorPool> _pools = new();
    private const uint SetsPerPool = 256;

    public DescriptorCache(VulkanContext cx) { _cx = cx; }

    public int Count => _sets.Count;

    private sealed class DescKey : IEquatable<DescKey>
    {
        private readonly ulong[] _v;
        private readonly int _hash;
        private readonly Kernel _k;
        public DescKey(Kernel k, ReadOnlySpan<Binding> b)
        {
            _k = k;
            _v = new ulong[b.Length * 3];
            var h = new HashCode();
            h.Add(k);
            for (int i = 0; i < b.Length; i++)
            {
                _v[3 * i] = b[i].Buf.Handle.Handle;
                _v[3 * i + 1] = b[i].Offset;
                _v[3 * i + 2] = b[i].Range;
                h.Add(_v[3 * i]); h.Add(_v[3 * i + 1]); h.Add(_v[3 * i + 2]);
            }
            _hash = h.ToHashCode();
        }
        public bool Equals(DescKey? o) => o != null && o._k == _k && _v.AsSpan().SequenceEqual(o._v);
        public override bool Equals(object? obj) => Equals(obj as DescKey);
        public override int GetHashCode() => _hash;
    }

    /// <summary>The descriptor set for these bindings (allocated and written once, then cached).</summary>
    public DescriptorSet Set(Kernel k, ReadOnlySpan<Binding> b)
    {
        if (b.Length != k.Bindings) throw new ArgumentException($"{k.Name}: {b.Length} bindings given, {k.Bindings} expected");
        var key = new DescKey(k, b);
        if (_sets.TryGetValue(key, out var set)) return set;
        for (int i = 0; i < b.Length; i++)
            if (b[i].Range > _cx.MaxBinding || b[i].Range == 0 || b[i].Offset % _cx.Limits.MinStorageBufferOffsetAlignment != 0)
                throw new InvalidOperationException($"{k.Name}: binding {i} (offset {b[i].Offset}, {b[i].Range} bytes) breaks the device limits");
        set = Allocate(k);
        var infos = stackalloc DescriptorBufferInfo[b.Length];
        var writes = stackalloc WriteDescriptorSet[b.Length];
        for (int i = 0; i < b.Length; i++)
        {
            infos[i] = new DescriptorBufferInfo { Buffer = b[i].Buf.Handle, Offset = b[i].Offset, Range = b[i].Range };
            writes[i] = new WriteDescriptorSet
            {
                SType = StructureType.WriteDescriptorSet, DstSet = set, DstBinding = (uint)i, DescriptorCount = 1,
                DescriptorType = DescriptorType.StorageBuffer, PBufferInfo = &infos[i],
            };
        }
        _cx.Vk.UpdateDescriptorSets(_cx.Device, (uint)b.Length, writes, 0, null);
        _sets[key] = set;
        return set;
    }

    private DescriptorSet Allocate(Kernel k)
    {
        var layout = k.SetLayout;
        if (_pools.Count > 0)
        {
            var ai = new DescriptorSetAllocateInfo { SType = StructureType.DescriptorSetAllocateInfo, DescriptorPool = _pools[^1], DescriptorSetCount = 1, PSetLayouts = &layout };
            DescriptorSet s;
            var r = _cx.Vk.AllocateDescriptorSets(_cx.Device, &ai, &s);
            if (r == Result.Success) return s;
            if (r != Result.ErrorOutOfPoolMemory && r != Result.ErrorFragmentedPool) _cx.Check(r, "vkAllocateDescriptorSets");
        }
        var size = new DescriptorPoolSize { Type = DescriptorType.StorageBuffer, DescriptorCount = SetsPerPool * 8 };
        var pci = new DescriptorPoolCreateInfo { SType = StructureType.DescriptorPoolCreateInfo, MaxSets = SetsPerPool, PoolSizeCount = 1, PPoolSizes = &size };
        DescriptorPool pool;
        _cx.Check(_cx.Vk.CreateDescriptorPool(_cx.Device, &pci, null, &pool), "vkCreateDescriptorPool");
        _pools.Add(pool);
        var ai2 = new DescriptorSetAllocateInfo { SType = StructureType.DescriptorSetAllocateInfo, DescriptorPool = pool, DescriptorSetCount = 1, PSetLayouts = &layout };
        DescriptorSet s2;
        _cx.Check(_cx.Vk.AllocateDescriptorSets(_cx.Device, &ai2, &s2), "vkAllocateDescriptorSets");
        return s2;
    }

    public void Dispose()
    {
        foreach (var p in _pools) _cx.Vk.DestroyDescriptorPool(_cx.Device, p, null);
        _pools.Clear();
        _sets.Clear();
    }
}
