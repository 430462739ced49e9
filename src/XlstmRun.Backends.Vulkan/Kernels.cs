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
    private readonly VulkanContext _context;
    private readonly ShaderModule _module;
    private readonly Dictionary<(UInt128, ulong), Pipeline> _pipelines = new();

    public string Name { get; }
    public int Bindings { get; }
    public uint PushBytes { get; }
    public DescriptorSetLayout SetLayout { get; }
    public PipelineLayout Layout { get; }

    public Kernel(VulkanContext cx, string name, int bindings, uint pushBytes)
    {
        _context = cx;
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

    /// <summary>The pipeline for specialization constants (constant_id i = spec[i]; at most 12, each &lt; 2^16).</summary>
    public Pipeline Pipeline(ReadOnlySpan<uint> spec)
    {
        if (spec.Length > 12) throw new ArgumentException("at most 12 specialization constants");
        UInt128 lo = 0;
        ulong hi = 0;
        for (int i = 0; i < spec.Length; i++)
        {
            if (spec[i] > 0xFFFF) throw new ArgumentOutOfRangeException(nameof(spec), "specialization constants must be < 65536");
            if (i < 8) lo |= (UInt128)spec[i] << (16 * i);
            else hi |= (ulong)spec[i] << (16 * (i - 8));
        }
        var key = (lo, hi);
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
            if (_context.PipelineStats) cpci.Flags = PipelineCreateFlags.CreateCaptureStatisticsBitKhr;
            Pipeline pipe;
            _context.Check(_context.Vk.CreateComputePipelines(_context.Device, default, 1, &cpci, null, &pipe), $"vkCreateComputePipelines({Name})");
            if (_context.PipelineStats) PrintStatistics(pipe, spec);
            _pipelines[key] = pipe;
            return pipe;
        }
        finally
        {
            SilkMarshal.Free((nint)entry);
        }
    }

    /// <summary>The driver's statistics of a pipeline's executables (VK_KHR_pipeline_executable_properties) on stderr.</summary>
    private void PrintStatistics(Pipeline pipe, ReadOnlySpan<uint> spec)
    {
        var vk = _context.Vk;
        var fProps = vk.GetDeviceProcAddr(_context.Device, "vkGetPipelineExecutablePropertiesKHR");
        var fStats = vk.GetDeviceProcAddr(_context.Device, "vkGetPipelineExecutableStatisticsKHR");
        if ((nint)fProps.Handle == 0 || (nint)fStats.Handle == 0) return;
        var getProps = (delegate* unmanaged<Device, PipelineInfoKHR*, uint*, PipelineExecutablePropertiesKHR*, Result>)fProps.Handle;
        var getStats = (delegate* unmanaged<Device, PipelineExecutableInfoKHR*, uint*, PipelineExecutableStatisticKHR*, Result>)fStats.Handle;
        var pi = new PipelineInfoKHR { SType = StructureType.PipelineInfoKhr, Pipeline = pipe };
        uint nExe = 0;
        if (getProps(_context.Device, &pi, &nExe, null) != Result.Success) return;
        var line = new System.Text.StringBuilder($"pipeline {Name} [{string.Join(",", spec.ToArray())}]:");
        for (uint e = 0; e < nExe; e++)
        {
            var ei = new PipelineExecutableInfoKHR { SType = StructureType.PipelineExecutableInfoKhr, Pipeline = pipe, ExecutableIndex = e };
            uint n = 0;
            if (getStats(_context.Device, &ei, &n, null) != Result.Success || n == 0) continue;
            var stats = new PipelineExecutableStatisticKHR[n];
            for (int i = 0; i < n; i++) stats[i].SType = StructureType.PipelineExecutableStatisticKhr;
            fixed (PipelineExecutableStatisticKHR* st = stats)
                if (getStats(_context.Device, &ei, &n, st) != Result.Success) continue;
            for (int i = 0; i < n; i++)
            {
                var st = stats[i];
                string name = SilkMarshal.PtrToString((nint)st.Name) ?? "?";
                string? v = st.Format switch
                {
                    PipelineExecutableStatisticFormatKHR.Bool32Khr => st.Value.B32.ToString(),
                    PipelineExecutableStatisticFormatKHR.Int64Khr => st.Value.I64.ToString(),
                    PipelineExecutableStatisticFormatKHR.Uint64Khr => st.Value.U64.ToString(),
                    _ => st.Value.F64.ToString("G4"),
                };
                line.Append($" {name}={v};");
            }
        }
        Console.Error.WriteLine(line.ToString());
    }

    public void Dispose()
    {
        foreach (var p in _pipelines.Values) _context.Vk.DestroyPipeline(_context.Device, p, null);
        _context.Vk.DestroyPipelineLayout(_context.Device, Layout, null);
        _context.Vk.DestroyDescriptorSetLayout(_context.Device, SetLayout, null);
        _context.Vk.DestroyShaderModule(_context.Device, _module, null);
        _pipelines.Clear();
    }
}

/// <summary>
/// Descriptor sets of one backend, cached by (kernel, bindings): a replayed command buffer and a repeated op reuse the
/// same set, so an op costs no host work beyond recording. Bindings are keyed by the buffer's identity (<see cref="VkBuf.Id"/>,
/// never reused), not by its Vulkan handle, which the driver may hand out again after a buffer is destroyed; when a buffer
/// is released (<see cref="Forget"/>) the sets that name it go back to a spare list of their kernel and are rewritten for
/// the next bindings, so transient buffers (prefill activations) neither leak sets nor leave stale ones.
/// </summary>
public sealed unsafe class DescriptorCache : IDisposable
{
    private readonly VulkanContext _context;
    private readonly Dictionary<DescKey, DescriptorSet> _sets = new();
    // sets per buffer: hash sets, since a long-lived buffer (a weight, the state) is named by thousands of sets and a
    // released activation's sets are removed from each of their other buffers' (a list made that quadratic: seconds
    // per prompt in `batch --parallel 64` on the H200)
    private readonly Dictionary<long, HashSet<DescKey>> _byBuffer = new();
    private readonly Dictionary<Kernel, Stack<DescriptorSet>> _spare = new();
    private readonly List<DescriptorPool> _pools = new();
    private const uint SetsPerPool = 256;

    public DescriptorCache(VulkanContext cx) { _context = cx; }

    public int Count => _sets.Count;

    private sealed class DescKey : IEquatable<DescKey>
    {
        private readonly ulong[] _v;
        private readonly int _hash;
        public readonly Kernel K;
        public readonly long[] Buffers;
        public DescKey(Kernel k, ReadOnlySpan<Binding> b)
        {
            K = k;
            _v = new ulong[b.Length * 3];
            Buffers = new long[b.Length];
            var h = new HashCode();
            h.Add(k);
            for (int i = 0; i < b.Length; i++)
            {
                Buffers[i] = b[i].Buf.Id;
                _v[3 * i] = (ulong)b[i].Buf.Id;
                _v[3 * i + 1] = b[i].Offset;
                _v[3 * i + 2] = b[i].Range;
                h.Add(_v[3 * i]); h.Add(_v[3 * i + 1]); h.Add(_v[3 * i + 2]);
            }
            _hash = h.ToHashCode();
        }
        public bool Equals(DescKey? o) => o != null && o.K == K && _v.AsSpan().SequenceEqual(o._v);
        public override bool Equals(object? obj) => Equals(obj as DescKey);
        public override int GetHashCode() => _hash;
    }

    /// <summary>The descriptor set for these bindings (written once, then cached).</summary>
    public DescriptorSet Set(Kernel k, ReadOnlySpan<Binding> b)
    {
        if (b.Length != k.Bindings) throw new ArgumentException($"{k.Name}: {b.Length} bindings given, {k.Bindings} expected");
        var key = new DescKey(k, b);
        if (_sets.TryGetValue(key, out var set)) return set;
        for (int i = 0; i < b.Length; i++)
            if (b[i].Range > _context.MaxBinding || b[i].Range == 0 || b[i].Offset % _context.Limits.MinStorageBufferOffsetAlignment != 0)
                throw new InvalidOperationException($"{k.Name}: binding {i} (offset {b[i].Offset}, {b[i].Range} bytes) breaks the device limits");
        set = _spare.TryGetValue(k, out var sp) && sp.Count > 0 ? sp.Pop() : Allocate(k);
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
        _context.Vk.UpdateDescriptorSets(_context.Device, (uint)b.Length, writes, 0, null);
        _sets[key] = set;
        foreach (var id in key.Buffers.Distinct())
        {
            if (!_byBuffer.TryGetValue(id, out var l)) _byBuffer[id] = l = new HashSet<DescKey>();
            l.Add(key);
        }
        return set;
    }

    /// <summary>Drop every set that names <paramref name="b"/> (about to be destroyed; the device must be done with the
    /// sets too): they become spares of their kernel.</summary>
    public void Forget(VkBuf b)
    {
        if (!_byBuffer.Remove(b.Id, out var keys)) return;
        foreach (var key in keys)
        {
            if (!_sets.Remove(key, out var set)) continue;
            if (!_spare.TryGetValue(key.K, out var sp)) _spare[key.K] = sp = new Stack<DescriptorSet>();
            sp.Push(set);
            foreach (var other in key.Buffers)
                if (other != b.Id && _byBuffer.TryGetValue(other, out var l)) l.Remove(key);
        }
    }

    private DescriptorSet Allocate(Kernel k)
    {
        var layout = k.SetLayout;
        if (_pools.Count > 0)
        {
            var ai = new DescriptorSetAllocateInfo { SType = StructureType.DescriptorSetAllocateInfo, DescriptorPool = _pools[^1], DescriptorSetCount = 1, PSetLayouts = &layout };
            DescriptorSet s;
            var r = _context.Vk.AllocateDescriptorSets(_context.Device, &ai, &s);
            if (r == Result.Success) return s;
            if (r != Result.ErrorOutOfPoolMemory && r != Result.ErrorFragmentedPool) _context.Check(r, "vkAllocateDescriptorSets");
        }
        var size = new DescriptorPoolSize { Type = DescriptorType.StorageBuffer, DescriptorCount = SetsPerPool * 16 };
        var pci = new DescriptorPoolCreateInfo { SType = StructureType.DescriptorPoolCreateInfo, MaxSets = SetsPerPool, PoolSizeCount = 1, PPoolSizes = &size };
        DescriptorPool pool;
        _context.Check(_context.Vk.CreateDescriptorPool(_context.Device, &pci, null, &pool), "vkCreateDescriptorPool");
        _pools.Add(pool);
        var ai2 = new DescriptorSetAllocateInfo { SType = StructureType.DescriptorSetAllocateInfo, DescriptorPool = pool, DescriptorSetCount = 1, PSetLayouts = &layout };
        DescriptorSet s2;
        _context.Check(_context.Vk.AllocateDescriptorSets(_context.Device, &ai2, &s2), "vkAllocateDescriptorSets");
        return s2;
    }

    public void Dispose()
    {
        foreach (var p in _pools) _context.Vk.DestroyDescriptorPool(_context.Device, p, null);
        _pools.Clear();
        _sets.Clear();
        _byBuffer.Clear();
        _spare.Clear();
    }
}
