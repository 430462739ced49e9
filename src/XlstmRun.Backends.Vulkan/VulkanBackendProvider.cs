using Silk.NET.Vulkan;
using XlstmRun.Model;

namespace XlstmRun.Backends.Vulkan;

/// <summary>The Vulkan backend: every Vulkan device, software ones (lavapipe) included; <c>auto</c> takes its hardware GPUs.</summary>
public sealed class VulkanBackendProvider : IBackendProvider
{
    public string Name => "vulkan";
    public bool AutoSelectable => true;

    public IReadOnlyList<BackendDevice> Devices(out string? whyNone)
    {
        var list = VulkanContext.Enumerate(out var err);
        whyNone = list.Count == 0 ? err ?? "no Vulkan device" : null;
        return list.Select(d => new BackendDevice(Name, d.Index, d.Name, ClassOf(d.Type), d.Describe())).ToList();
    }

    private static DeviceClass ClassOf(PhysicalDeviceType t) => t switch
    {
        PhysicalDeviceType.DiscreteGpu => DeviceClass.DiscreteGpu,
        PhysicalDeviceType.IntegratedGpu => DeviceClass.IntegratedGpu,
        PhysicalDeviceType.VirtualGpu => DeviceClass.VirtualGpu,
        PhysicalDeviceType.Cpu => DeviceClass.SoftwareRenderer,
        _ => DeviceClass.Other,
    };

    /// <summary>The options record of a backend created from <paramref name="s"/>: the flags, then the XLSTM_VK_*
    /// environment (a malformed value is an <see cref="ArgumentException"/> naming it).</summary>
    public static VulkanOptions Options(BackendSettings s) => VulkanOptions.FromEnvironment(s.Profile, s.Float32) with { Log = s.Log };

    public IBackend Create(BackendSettings settings)
    {
        var options = Options(settings);
        try
        {
            return VulkanBackend.Create(settings.Device, hardwareOnly: false, options);
        }
        catch (VulkanUnavailableException e)
        {
            throw new BackendUnavailableException(e.Message, e);
        }
    }

    public void Write(IBackend backend, ITensor destination, ReadOnlySpan<float> source) => ((VulkanBackend)backend).Write(destination, source);
}
