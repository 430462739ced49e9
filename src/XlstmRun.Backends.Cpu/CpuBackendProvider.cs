using XlstmRun.Model;

namespace XlstmRun.Backends.Cpu;

/// <summary>Options of the CPU backend, from <see cref="BackendSettings"/>: threads, 8-bit activations for quantized
/// weights unless --precision f32, wall time per op class (--profile).</summary>
public sealed record CpuOptions(int Threads, bool Int8Activations, bool Profile)
{
    public static CpuOptions From(BackendSettings s) => new(s.Threads, Int8Activations: !s.Float32, s.Profile);
}

/// <summary>The CPU backend: always one device, this machine's processor.</summary>
public sealed class CpuBackendProvider : IBackendProvider
{
    public string Name => "cpu";
    public bool AutoSelectable => false;

    public IReadOnlyList<BackendDevice> Devices(out string? whyNone)
    {
        whyNone = null;
        using var be = new CpuBackend();
        return [new BackendDevice(Name, 0, "CPU", DeviceClass.Cpu, $"cpu: {be.Device}")];
    }

    public IBackend Create(BackendSettings settings)
    {
        var o = CpuOptions.From(settings);
        return new CpuBackend(o.Threads, int8Activations: o.Int8Activations, profile: o.Profile);
    }

    public void Write(IBackend backend, ITensor destination, ReadOnlySpan<float> source) => source.CopyTo(((CpuTensor)destination).Span);
}
