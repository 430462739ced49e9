using XlstmRun.Backends;
using XlstmRun.Backends.Cpu;
using XlstmRun.Backends.OpenCL;
using XlstmRun.Backends.Vulkan;
using XlstmRun.Formats;
using XlstmRun.Model;

namespace XlstmRun.Conformance;

/// <summary>How devices are listed: CPU threads, and whether to add the variants the tests exercise on top of the defaults.</summary>
public sealed record DeviceOptions(int Threads = 0, bool Variants = false);

/// <summary>
/// One backend as the conformance checks see it: its provider (name, devices, creation, tensor writer) and how its
/// devices are listed for the checks (each device with default settings, plus the kernel variants the checks exercise
/// for the backends that have them). <see cref="BackendCatalog.Kinds"/> has one per registered provider.
/// </summary>
public sealed record BackendKind(IBackendProvider Provider, Func<DeviceOptions, (List<ConformanceDevice> Devices, string? WhyNone)> Enumerate)
{
    public string Name => Provider.Name;
    public void Write(IBackend be, ITensor t, ReadOnlySpan<float> v) => Provider.Write(be, t, v);
}

/// <summary>
/// A device (or a variant of one) that backends can be created on. Creating a backend is cheap after the first time:
/// a Vulkan device keeps its context (pipelines are built once) until <see cref="Dispose"/>.
/// </summary>
public sealed class ConformanceDevice : IDisposable
{
    private readonly Func<ConformanceDevice, IBackend> _create;
    private readonly Action<ConformanceDevice>? _dispose;
    internal object? State;

    public ConformanceDevice(string id, BackendKind kind, string description, Func<ConformanceDevice, IBackend> create,
        Action<ConformanceDevice>? dispose = null, IReadOnlyList<GgmlType>? types = null)
    {
        Id = id; Kind = kind; Description = description; _create = create; _dispose = dispose; Types = types;
    }

    /// <summary>Short name used in tables and test names: cpu, cpu-int8, vulkan:0, opencl:0, opencl:0:wg, …</summary>
    public string Id { get; }
    public BackendKind Kind { get; }
    public string Backend => Kind.Name;
    public string Description { get; internal set; }
    /// <summary>Weight types this device is checked with (null: all).</summary>
    public IReadOnlyList<GgmlType>? Types { get; }
    public bool IsCpuBaseline => Id == "cpu";

    public IBackend Create() => _create(this);
    public void Write(IBackend be, ITensor t, ReadOnlySpan<float> v) => Kind.Write(be, t, v);
    public bool Checks(GgmlType t) => Types == null || Types.Contains(t);
    public override string ToString() => Id;
    public void Dispose()
    {
        _dispose?.Invoke(this);
        State = null;
    }
}

public static class BackendCatalog
{
    /// <summary>Every backend of the project: one per provider of <see cref="BackendProviders.All"/>. A backend without
    /// its own listing below is checked on each of its devices with default settings.</summary>
    public static readonly BackendKind[] Kinds = BackendProviders.All.Select(p => new BackendKind(p, p.Name switch
    {
        "cpu" => CpuDevices,
        "vulkan" => VulkanDevices,
        "opencl" => OpenClDevices,
        _ => o => ProviderDevices(p, o),
    })).ToArray();

    public static BackendKind Kind(string name) =>
        Kinds.FirstOrDefault(k => k.Name == name) ?? throw new BadInputException($"unknown backend '{name}' (expected {string.Join(", ", Kinds.Select(k => k.Name))})");

    /// <summary>
    /// The precision column that applies to <paramref name="be"/> running <paramref name="weights"/>. F32 weights are always
    /// float32 (the precision policy: F32 weights run F32 arithmetic end to end on every backend).
    /// </summary>
    public static ActivationPrecision PrecisionOf(IBackend be, GgmlType weights)
    {
        if (weights == GgmlType.F32) return ActivationPrecision.Float32;
        // a forward pass uses both the one-token path (decode) and the many-token path (prefill): the looser column applies
        var a = be.MatMulActivations(weights, 1);
        var b = be.MatMulActivations(weights, 256);
        static int Rank(ActivationPrecision p) => p switch { ActivationPrecision.Int8 => 2, ActivationPrecision.Float16 => 1, _ => 0 };
        return Rank(a) >= Rank(b) ? a : b;
    }

    /// <summary>Every device of the selected backends (all when <paramref name="backends"/> is null), and a line for each backend without one.</summary>
    public static (List<ConformanceDevice> Devices, List<string> Missing) Enumerate(DeviceOptions o, IEnumerable<string>? backends = null)
    {
        var want = backends?.ToHashSet();
        var devs = new List<ConformanceDevice>();
        var missing = new List<string>();
        foreach (var k in Kinds)
        {
            if (want != null && !want.Contains(k.Name)) continue;
            var (d, why) = k.Enumerate(o);
            devs.AddRange(d);
            if (d.Count == 0) missing.Add($"{k.Name}: {why ?? "no device"}");
        }
        return (devs, missing);
    }

    // ---- per-backend device listings ----------------------------------------------------------------------------------

    /// <summary>Each device of a provider, with default settings.</summary>
    private static (List<ConformanceDevice>, string?) ProviderDevices(IBackendProvider provider, DeviceOptions o)
    {
        var kind = Kinds.First(k => k.Provider == provider);
        var list = provider.Devices(out var why);
        var res = list.Select(d => new ConformanceDevice($"{provider.Name}:{d.Index}", kind, d.Description,
            _ => provider.Create(new BackendSettings(Device: d.Index, Threads: o.Threads)))).ToList();
        return (res, res.Count == 0 ? why ?? $"no {provider.Name} device" : null);
    }

    private static (List<ConformanceDevice>, string?) CpuDevices(DeviceOptions o)
    {
        var kind = Kinds.First(k => k.Name == "cpu");
        int threads = o.Threads > 0 ? o.Threads : Environment.ProcessorCount;
        // the float path is the baseline every other backend is compared with; the default 8-bit path for Q8_0/Q4_0 too
        var f = new ConformanceDevice("cpu", kind, "", _ => new CpuBackend(threads, int8Activations: false));
        var i8 = new ConformanceDevice("cpu-int8", kind, "", _ => new CpuBackend(threads, int8Activations: true), types: GgmlTypes.QuantizedTypes);
        using (var be = new CpuBackend(threads, int8Activations: false)) f.Description = be.Device + ", float activations";
        i8.Description = f.Description.Replace(", float activations", ", 8-bit activations for Q8_0/Q4_0");
        return ([f, i8], null);
    }

    private static (List<ConformanceDevice>, string?) VulkanDevices(DeviceOptions o)
    {
        var kind = Kinds.First(k => k.Name == "vulkan");
        var list = VulkanContext.Enumerate(out var err);
        var res = new List<ConformanceDevice>();
        foreach (var info in list)
        {
            // default settings; --precision f32 (float32 activations in every product); on request the shared-memory-only
            // shader variants, the int8-activation matvecs forced on (a device that has them unaccelerated, lavapipe) and the
            // emulated cooperative-matrix GEMM (a device without cooperative matrices)
            var variants = new List<(string Suffix, bool NoSub, Func<VulkanOptions> Options)>
            {
                ("", false, () => VulkanOptions.FromEnvironment()),
                (":f32", false, () => VulkanOptions.FromEnvironment(float32: true)),
            };
            if (o.Variants)
            {
                variants.Add((":nosubgroups", true, () => VulkanOptions.FromEnvironment()));
                if (info.IntDot && !info.IntDotAccelerated) variants.Add((":intdot", false, () => VulkanOptions.FromEnvironment() with { IntDot = true }));
                if (!info.CoopMatNv) variants.Add((":coopmat-emu", false, () => VulkanOptions.FromEnvironment() with { EmulateCoopMat = new GemmTile(2, 2, 2, 2, 4) }));
            }
            foreach (var (suffix, noSub, options) in variants)
                res.Add(new ConformanceDevice($"vulkan:{info.Index}{suffix}", kind, info.Describe(), self =>
                {
                    // one context per device entry, kept until the entry is disposed: pipelines are built once
                    var cx = (VulkanContext)(self.State ??= VulkanContext.Create(info.Index, noSubgroups: noSub));
                    var be = new VulkanBackend(cx, ownsContext: false, options());
                    self.Description = be.Device;
                    return be;
                }, self => (self.State as VulkanContext)?.Dispose(), types: suffix == ":intdot" ? GgmlTypes.QuantizedTypes : null));
        }
        return (res, res.Count == 0 ? err ?? "no Vulkan device" : null);
    }

    private static (List<ConformanceDevice>, string?) OpenClDevices(DeviceOptions o)
    {
        var kind = Kinds.First(k => k.Name == "opencl");
        var res = new List<ConformanceDevice>();
        var devices = kind.Provider.Devices(out var why);
        foreach (var d in devices)
        {
            int index = d.Index;
            string description = d.Description[(d.Description.IndexOf(": ", StringComparison.Ordinal) + 2)..];
            res.Add(new ConformanceDevice($"opencl:{index}", kind, description, self =>
            {
                var be = new OpenClBackend(index);
                self.Description = be.Device;
                return be;
            }));
            // on a CPU device the register-blocked kernels run by default; the GPU (work-group) kernels are checked there too
            if (d.Class == DeviceClass.Cpu && o.Variants)
                res.Add(new ConformanceDevice($"opencl:{index}:wg", kind, description + ", work-group kernels", self =>
                {
                    var be = new OpenClBackend(index, 0, workGroupKernels: true);
                    self.Description = be.Device;
                    return be;
                }));
        }
        return (res, res.Count == 0 ? why ?? "no OpenCL device" : null);
    }
}
