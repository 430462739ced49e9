using XlstmRun.Backends.Cpu;
using XlstmRun.Backends.OpenCL;
using XlstmRun.Backends.Vulkan;
using XlstmRun.Formats;
using XlstmRun.Model;

namespace XlstmRun.Cli;

/// <summary>Chooses and creates the compute backend named on the command line.</summary>
public static class BackendFactory
{
    /// <summary>
    /// cpu: the CPU engine. opencl: OpenCL device <paramref name="device"/> (default: the first GPU, else the CPU device).
    /// vulkan: the Vulkan device <paramref name="device"/> (default: the best one, a software device
    /// such as lavapipe included); a missing loader, driver or device is a one-line error. auto: a hardware Vulkan GPU
    /// (discrete or integrated) when there is one, else the CPU engine, silently (XLSTM_DEBUG=1 tells why).
    /// <paramref name="profile"/> turns on per-op timing (Vulkan: GPU timestamps; CPU: wall time per op class).
    /// <paramref name="float32"/> (--precision f32): float32 activations in every matrix product (docs/precision.md).
    /// </summary>
    public static IBackend Create(string name, int device, int threads, bool profile = false, bool float32 = false)
    {
        VulkanOptions VkOptions()
        {
            try
            {
                return VulkanOptions.FromEnvironment(profile, float32);
            }
            catch (ArgumentException e)
            {
                throw new BadInputException(e.Message);
            }
        }
        switch (name)
        {
            case "cpu":
                return new CpuBackend(threads, int8Activations: !float32, profile: profile);
            case "auto":
                try
                {
                    return VulkanBackend.Create(device, hardwareOnly: true, VkOptions());
                }
                catch (Exception e) when (e is VulkanUnavailableException or InvalidOperationException or InsufficientMemoryException)
                {
                    if (Environment.GetEnvironmentVariable("XLSTM_DEBUG") == "1") Console.Error.WriteLine($"auto: using the CPU ({e.Message})");
                    return new CpuBackend(threads, int8Activations: !float32, profile: profile);
                }
            case "vulkan":
                try
                {
                    return VulkanBackend.Create(device, hardwareOnly: false, VkOptions());
                }
                catch (VulkanUnavailableException e)
                {
                    throw new BadInputException($"--backend vulkan: {e.Message}");
                }
            case "opencl":
                try
                {
                    return new OpenClBackend(device);
                }
                catch (InvalidOperationException e)
                {
                    throw new BadInputException($"--backend opencl: {e.Message.Split('\n')[0]}");
                }
            default:
                throw new BadInputException($"unknown backend '{name}' (expected auto, vulkan, opencl or cpu)");
        }
    }
}
