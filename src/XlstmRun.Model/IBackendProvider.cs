namespace XlstmRun.Model;

/// <summary>
/// What the command line asks of any backend, parsed once (flags; each provider adds its own environment settings).
/// </summary>
/// <param name="Device">Device index within the backend (see <c>xlstm-run info --devices</c>); -1: the backend's choice.</param>
/// <param name="Threads">CPU threads (0: all cores).</param>
/// <param name="Profile">Per-op device timing (<see cref="IProfilingBackend"/>), where the backend has it.</param>
/// <param name="Float32">--precision f32: float32 activations in every matrix product.</param>
/// <param name="Log">Where the backend reports diagnostics (fallbacks, statistics); null: nowhere. Only the CLI writes
/// to the console: it passes a writer to stderr.</param>
public sealed record BackendSettings(int Device = -1, int Threads = 0, bool Profile = false, bool Float32 = false, Action<string>? Log = null);

/// <summary>What kind of device a backend runs on; <c>auto</c> prefers hardware GPUs, discrete first.</summary>
public enum DeviceClass { DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu, SoftwareRenderer, Other }

/// <summary>One device a backend can run on.</summary>
/// <param name="Backend">The provider's name.</param>
/// <param name="Index">The index <see cref="BackendSettings.Device"/> selects it by.</param>
/// <param name="Name">The device's name.</param>
/// <param name="Class">Its kind.</param>
/// <param name="Description">One line with its capabilities, for <c>info --devices</c>.</param>
public sealed record BackendDevice(string Backend, int Index, string Name, DeviceClass Class, string Description)
{
    public bool IsHardwareGpu => Class is DeviceClass.DiscreteGpu or DeviceClass.IntegratedGpu;
}

/// <summary>A backend cannot run here (no driver, no device, a device that lacks a needed feature): one line saying why.</summary>
public sealed class BackendUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A backend as the rest of the program sees it: its name, the devices it has on this machine, and how to create it.
/// Every provider is registered once, in <c>XlstmRun.Backends.BackendProviders.All</c>: <c>--backend</c>,
/// <c>info --devices</c>, <c>auto</c> and the conformance suite all read that list.
/// </summary>
public interface IBackendProvider
{
    /// <summary>The name --backend takes (cpu, vulkan, …).</summary>
    string Name { get; }

    /// <summary>Whether <c>--backend auto</c> may choose this backend's hardware GPUs (the CPU backend is auto's fallback).</summary>
    bool AutoSelectable { get; }

    /// <summary>The devices on this machine; none with <paramref name="whyNone"/> saying why (missing driver, …).</summary>
    IReadOnlyList<BackendDevice> Devices(out string? whyNone);

    /// <summary>A backend with these settings (the device in <see cref="BackendSettings.Device"/>). Throws
    /// <see cref="BackendUnavailableException"/> when it cannot run here, <see cref="ArgumentException"/> for a malformed
    /// setting of the backend's own (an environment variable).</summary>
    IBackend Create(BackendSettings settings);

    /// <summary>Writes host floats into a tensor of a backend this provider created (tests and checks).</summary>
    void Write(IBackend backend, ITensor destination, ReadOnlySpan<float> source);
}
