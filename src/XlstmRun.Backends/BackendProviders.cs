using XlstmRun.Backends.Cpu;
using XlstmRun.Backends.OpenCL;
using XlstmRun.Backends.Vulkan;
using XlstmRun.Formats;
using XlstmRun.Model;

namespace XlstmRun.Backends;

/// <summary>
/// Every backend of the project, registered once. <c>--backend</c> (and its accepted values), <c>auto</c>,
/// <c>info --devices</c> and the conformance suite read this list: a new backend is one more provider here.
/// </summary>
public static class BackendProviders
{
    /// <summary>The providers, in the order devices are listed. The CPU provider is <c>auto</c>'s fallback.</summary>
    public static readonly IReadOnlyList<IBackendProvider> All =
    [
        new CpuBackendProvider(),
        new VulkanBackendProvider(),
        new OpenClBackendProvider(),
    ];

    /// <summary>What --backend accepts: "auto" and every provider's name.</summary>
    public static IReadOnlyList<string> Names { get; } = ["auto", .. All.Select(p => p.Name)];

    /// <summary>The CPU provider (auto's fallback).</summary>
    public static IBackendProvider Cpu => Find("cpu");

    /// <summary>The provider named <paramref name="name"/>; an unknown name is a bad-input error listing the known ones.</summary>
    public static IBackendProvider Find(string name) =>
        All.FirstOrDefault(p => p.Name == name)
        ?? throw new BadInputException($"unknown backend '{name}' (expected {string.Join(", ", Names.SkipLast(1))} or {Names[^1]})");

    /// <summary>
    /// The device <c>auto</c> takes: the first hardware GPU of an auto-selectable provider, discrete GPUs before integrated
    /// ones, in provider and device order; null: the CPU.
    /// </summary>
    public static BackendDevice? AutoDevice()
    {
        var candidates = new List<(int Provider, BackendDevice Device)>();
        for (int i = 0; i < All.Count; i++)
            if (All[i].AutoSelectable)
                candidates.AddRange(All[i].Devices(out _).Where(d => d.IsHardwareGpu).Select(d => (i, d)));
        return candidates.OrderBy(c => c.Device.Class == DeviceClass.DiscreteGpu ? 0 : 1).ThenBy(c => c.Provider).ThenBy(c => c.Device.Index)
            .Select(c => c.Device).FirstOrDefault();
    }

    /// <summary>
    /// A backend by name. auto: the <see cref="AutoDevice"/> when it opens, else the CPU (the reason goes to the
    /// settings' log). A named backend that cannot run here, or a malformed backend setting, is a bad-input error.
    /// </summary>
    public static IBackend Create(string name, BackendSettings settings)
    {
        if (name == "auto")
        {
            var device = AutoDevice();
            if (device == null)
            {
                settings.Log?.Invoke("auto: using the CPU (no hardware GPU)");
                return Cpu.Create(settings);
            }
            try
            {
                return Find(device.Backend).Create(settings with { Device = settings.Device >= 0 ? settings.Device : device.Index });
            }
            catch (Exception e) when (e is BackendUnavailableException or InvalidOperationException or InsufficientMemoryException)
            {
                settings.Log?.Invoke($"auto: using the CPU ({e.Message})");
                return Cpu.Create(settings);
            }
            catch (ArgumentException e)
            {
                throw new BadInputException(e.Message);
            }
        }
        var provider = Find(name);
        try
        {
            return provider.Create(settings);
        }
        catch (BackendUnavailableException e)
        {
            throw new BadInputException($"--backend {name}: {e.Message}");
        }
        catch (ArgumentException e)
        {
            throw new BadInputException(e.Message);
        }
    }

    /// <summary>Lines for <c>info --devices</c>: every device of every provider (or why it has none), then what auto takes.</summary>
    public static IEnumerable<string> Describe()
    {
        foreach (var p in All)
        {
            var devices = p.Devices(out var why);
            if (devices.Count == 0) yield return $"{p.Name}: none ({why})";
            foreach (var d in devices) yield return d.Description;
        }
        var auto = AutoDevice();
        yield return auto != null
            ? $"--backend auto uses {auto.Backend} {auto.Index} ({auto.Name})"
            : "--backend auto uses the cpu (no hardware GPU; --backend vulkan takes a software device)";
    }
}
