using XlstmRun.Backends.Vulkan;

namespace XlstmRun.Cli;

/// <summary>Enumerates compute devices for `info --devices`.</summary>
public static class DeviceList
{
    public static IEnumerable<string> Describe()
    {
        yield return $"cpu: {new Backends.Cpu.CpuBackend().Device}";
        var vk = VulkanContext.Enumerate(out var err);
        if (vk.Count == 0) yield return $"vulkan: none ({err})";
        foreach (var d in vk) yield return d.Describe();
        foreach (var l in Backends.OpenCL.OpenClBackend.DescribeDevices()) yield return l;
        var auto = vk.Where(d => d.IsHardware).OrderBy(d => d.Type == Silk.NET.Vulkan.PhysicalDeviceType.DiscreteGpu ? 0 : 1).ThenBy(d => d.Index).FirstOrDefault();
        yield return auto != null
            ? $"--backend auto uses vulkan {auto.Index} ({auto.Name})"
            : "--backend auto uses the cpu (no hardware Vulkan GPU; --backend vulkan takes a software device)";
    }
}
