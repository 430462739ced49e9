namespace XlstmRun.Model;

/// <summary>
/// Optional interface of a backend with device memory of its own (a GPU): what it has allocated, for `bench` and the
/// memory goal (weights + state + a small working set). Checked with <c>is</c>.
/// </summary>
public interface IDeviceMemory
{
    /// <summary>Device memory allocated now (weights, activations, state, scratch).</summary>
    long DeviceBytes { get; }
    /// <summary>Most device memory allocated at once since the last <see cref="ResetPeak"/>.</summary>
    long PeakDeviceBytes { get; }
    /// <summary>Device memory holding the weights.</summary>
    long WeightBytes { get; }
    void ResetPeak();
    /// <summary>The driver's own count of this process's device-heap usage (VK_EXT_memory_budget), if it has one.</summary>
    long? DriverReportedBytes();
}
