using XlstmRun.Conformance;
using XlstmRun.Formats;
using XlstmRun.Tests.Support;

namespace XlstmRun.Tests.Conformance;

/// <summary>
/// What the conformance suites share for the whole test run: the devices of every backend (from the one list,
/// <see cref="BackendCatalog.Kinds"/>, with the kernel variants), the fixtures, and one session (converted files, CPU baselines).
/// </summary>
public static class Shared
{
    public const int Threads = 2;
    public static readonly GgmlType[] AllTypes = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0];

    private static readonly Lazy<(List<ConformanceDevice> Devices, List<string> Missing)> Listing =
        new(() => BackendCatalog.Enumerate(new DeviceOptions(Threads, Variants: true)));

    public static IReadOnlyList<ConformanceDevice> Devices => Listing.Value.Devices;
    public static IReadOnlyList<string> Missing => Listing.Value.Missing;
    public static ConformanceDevice Device(string id) => Devices.First(d => d.Id == id);
    /// <summary>A device with its default settings (cpu, cpu-int8, vulkan:N, opencl:N), not a kernel variant (vulkan:N:…, opencl:N:wg).</summary>
    public static bool IsBase(ConformanceDevice d) => d.Id.Count(c => c == ':') <= 1;

    private static readonly Dictionary<string, Fixture> FixtureByName = TestPaths.FixtureNames.ToDictionary(n => n, n => new Fixture(TestPaths.Fixture(n)));
    public static Fixture Fixture(string name) => FixtureByName[name];

    /// <summary>
    /// CI time: lavapipe runs a decode step in tens of milliseconds (hundreds on a loaded machine) and PoCL in a few, so
    /// the devices other than the CPU engine feed only the first prompt tokens one per call: 160 at F32 on Vulkan (all of
    /// tiny-f32's and tiny-fused's), 32 at other types and for the Vulkan variants, 300 on OpenCL (tiny-long has 1500).
    /// The CPU engine feeds whole prompts; `xlstm-run check` on a real GPU feeds everything.
    /// </summary>
    public static int? StepLimit(ConformanceDevice d, GgmlType t) => d.Backend switch
    {
        "vulkan" => t == GgmlType.F32 && !d.Id.EndsWith(":nosubgroups", StringComparison.Ordinal) ? 160 : 32,
        "opencl" => 300,
        _ => null,
    };

    public static readonly ConformanceSession Session = new(Threads, Models.Store)
    {
        StepLimit = (d, t, _) => StepLimit(d, t),
    };
}
