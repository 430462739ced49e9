using Silk.NET.Vulkan;
using XlstmRun.Backends.Vulkan;
using Xunit;

namespace XlstmRun.Tests.Vulkan;

/// <summary>All Vulkan tests share one device and run one at a time (one queue).</summary>
[CollectionDefinition("vulkan", DisableParallelization = true)]
public sealed class VulkanCollection { }

/// <summary>
/// The device the Vulkan tests run on: the software (CPU-type) device, lavapipe, when there is one (so results do not
/// depend on the machine's GPU), else the first device. No device is a test failure, not a skip: CI installs lavapipe.
/// </summary>
public static class VulkanTestDevice
{
    private static readonly Lazy<VulkanContext> Main = new(() => Open(false));
    private static readonly Lazy<VulkanContext> NoSubgroups = new(() => Open(true));

    private static VulkanContext Open(bool noSubgroups)
    {
        var list = VulkanContext.Enumerate(out var err);
        if (list.Count == 0)
            throw new InvalidOperationException($"no Vulkan device for the tests: {err} (CI and `make test` install lavapipe: mesa-vulkan-drivers + libvulkan1)");
        var cpu = list.FirstOrDefault(d => d.Type == PhysicalDeviceType.Cpu) ?? list[0];
        return VulkanContext.Create(cpu.Index, noSubgroups: noSubgroups);
    }

    public static VulkanContext Context => Main.Value;

    /// <summary>A backend on the shared device (with subgroup reductions, or the shared-memory-only shader variants).</summary>
    public static VulkanBackend NewBackend(bool noSubgroups = false, VulkanOptions? options = null) =>
        new(noSubgroups ? NoSubgroups.Value : Main.Value, ownsContext: false, options);

    /// <summary>Options that exercise the int8-activation matvecs (lavapipe has the feature, unaccelerated).</summary>
    public static readonly VulkanOptions IntDot = new() { IntDot = true };

    /// <summary>Options that run the prefill GEMM through the emulated cooperative-matrix kernel, with a tile that fits
    /// lavapipe's 32 KiB of shared memory (64 × 64, two K groups per step). VecTokens = 1: every product of two or more
    /// tokens takes the GEMM (by default up to 64 tokens run as matvecs).</summary>
    public static readonly VulkanOptions EmulatedCoopMat = new() { EmulateCoopMat = new GemmTile(2, 2, 2, 2, 4), VecTokens = 1 };

    /// <summary>Options under which device memory is not mapped (uploads and reads go through staging copies) and no
    /// binding may exceed <paramref name="maxBinding"/> bytes (weights are split into several buffers).</summary>
    public static VulkanOptions Limits(bool noDirectMapping = false, ulong? maxBinding = null) =>
        new() { MapDeviceMemory = !noDirectMapping, MaxBindingBytes = maxBinding };
}
