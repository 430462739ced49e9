using Silk.NET.OpenCL;
using XlstmRun.Model;

namespace XlstmRun.Backends.OpenCL;

/// <summary>Options of the OpenCL backend: the device, and for tests the weight-part limit and the kernel family
/// (see the <see cref="OpenClBackend(int, long, bool?)"/> parameters).</summary>
public sealed record OpenClOptions(int Device = -1, long MaxWeightPartBytes = 0, bool? WorkGroupKernels = null)
{
    public static OpenClOptions From(BackendSettings s) => new(s.Device);
}

/// <summary>The OpenCL backend: every device of every platform, in order (not chosen by <c>auto</c>).</summary>
public sealed class OpenClBackendProvider : IBackendProvider
{
    public string Name => "opencl";
    public bool AutoSelectable => false;

    public IReadOnlyList<BackendDevice> Devices(out string? whyNone)
    {
        whyNone = null;
        try
        {
            var api = ClNative.TryGetApi(out var err);
            if (api == null) whyNone = err;
            else if (ClNative.Platforms(api).Length == 0) whyNone = "no OpenCL platform found (no ICD driver installed, e.g. pocl-opencl-icd)";
            else
            {
                var devices = ClNative.AllDevices(api);
                if (devices.Count == 0) whyNone = "no OpenCL device found on any platform";
                return devices.Select(d => new BackendDevice(Name, d.Index, d.Name,
                    d.IsGpu ? DeviceClass.Other : (d.Type & DeviceType.Cpu) != 0 ? DeviceClass.Cpu : DeviceClass.Other, d.Describe())).ToList();
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            whyNone = e.Message;
        }
        return [];
    }

    public IBackend Create(BackendSettings settings)
    {
        var o = OpenClOptions.From(settings);
        try
        {
            return new OpenClBackend(o.Device, o.MaxWeightPartBytes, o.WorkGroupKernels);
        }
        catch (InvalidOperationException e)
        {
            throw new BackendUnavailableException(e.Message.Split('\n')[0], e);
        }
    }

    public void Write(IBackend backend, ITensor destination, ReadOnlySpan<float> source) => ((OpenClBackend)backend).Write(destination, source);
}
