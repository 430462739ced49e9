using XlstmRun.Backends.Cpu;
using XlstmRun.Formats;
using XlstmRun.Model;

namespace XlstmRun.Cli;

/// <summary>Chooses and creates the compute backend named on the command line.</summary>
public static class BackendFactory
{
    public static IBackend Create(string name, int device, int threads)
    {
        switch (name)
        {
            case "cpu":
                return new CpuBackend(threads);
            case "auto":
                return new CpuBackend(threads);
            case "vulkan":
            case "opencl":
                throw new BadInputException($"the {name} backend is not available in this build");
            default:
                throw new BadInputException($"unknown backend '{name}' (expected auto, vulkan, opencl or cpu)");
        }
    }
}
