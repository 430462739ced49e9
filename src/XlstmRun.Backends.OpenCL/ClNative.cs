using System.Text;
using Silk.NET.OpenCL;

namespace XlstmRun.Backends.OpenCL;

/// <summary>Loads the OpenCL API (libOpenCL through Silk.NET) and wraps the few queries the backend needs.</summary>
internal static unsafe class ClNative
{
    private static readonly object Lock = new();
    private static CL? _api;
    private static string? _loadError;

    /// <summary>The OpenCL API, or an exception with a one-line reason when the loader library is missing.</summary>
    public static CL Api
    {
        get
        {
            var api = TryGetApi(out var err);
            return api ?? throw new InvalidOperationException(err);
        }
    }

    public static CL? TryGetApi(out string? error)
    {
        lock (Lock)
        {
            if (_api == null && _loadError == null) _api = Load(null, out _loadError);
            error = _loadError;
            return _api;
        }
    }

    /// <summary>Load the API from the default loader names (<paramref name="names"/> null) or from the given library names.</summary>
    internal static CL? Load(string[]? names, out string? error)
    {
        try
        {
            var api = names == null ? CL.GetApi() : new CL(CL.CreateDefaultContext(names));
            // Touch one entry point: a missing libOpenCL may only show up at the first call.
            uint n = 0;
            api.GetPlatformIDs(0, null, &n);
            error = null;
            return api;
        }
        catch (Exception e) when (e is FileNotFoundException or DllNotFoundException or EntryPointNotFoundException or TypeInitializationException or InvalidOperationException)
        {
            error = "no OpenCL loader library (libOpenCL.so.1) could be loaded; install an OpenCL ICD loader (e.g. ocl-icd-libopencl1) and a driver (e.g. pocl-opencl-icd)";
            return null;
        }
    }

    public static void Check(int err, string what)
    {
        if (err != 0) throw new InvalidOperationException($"OpenCL {what} failed: {ErrorName(err)} ({err})");
    }

    public static string ErrorName(int err) => err switch
    {
        -1 => "CL_DEVICE_NOT_FOUND",
        -2 => "CL_DEVICE_NOT_AVAILABLE",
        -3 => "CL_COMPILER_NOT_AVAILABLE",
        -4 => "CL_MEM_OBJECT_ALLOCATION_FAILURE",
        -5 => "CL_OUT_OF_RESOURCES",
        -6 => "CL_OUT_OF_HOST_MEMORY",
        -11 => "CL_BUILD_PROGRAM_FAILURE",
        -30 => "CL_INVALID_VALUE",
        -32 => "CL_INVALID_PLATFORM",
        -33 => "CL_INVALID_DEVICE",
        -34 => "CL_INVALID_CONTEXT",
        -36 => "CL_INVALID_COMMAND_QUEUE",
        -38 => "CL_INVALID_MEM_OBJECT",
        -44 => "CL_INVALID_PROGRAM",
        -45 => "CL_INVALID_PROGRAM_EXECUTABLE",
        -46 => "CL_INVALID_KERNEL_NAME",
        -48 => "CL_INVALID_KERNEL",
        -49 => "CL_INVALID_ARG_INDEX",
        -50 => "CL_INVALID_ARG_VALUE",
        -51 => "CL_INVALID_ARG_SIZE",
        -52 => "CL_INVALID_KERNEL_ARGS",
        -53 => "CL_INVALID_WORK_DIMENSION",
        -54 => "CL_INVALID_WORK_GROUP_SIZE",
        -55 => "CL_INVALID_WORK_ITEM_SIZE",
        -56 => "CL_INVALID_GLOBAL_OFFSET",
        -61 => "CL_INVALID_BUFFER_SIZE",
        -63 => "CL_INVALID_GLOBAL_WORK_SIZE",
        -1001 => "CL_PLATFORM_NOT_FOUND_KHR",
        _ => "OpenCL error",
    };

    public static nint[] Platforms(CL api)
    {
        uint n = 0;
        int err = api.GetPlatformIDs(0, null, &n);
        if (err == -1001 || n == 0) return [];
        Check(err, "clGetPlatformIDs");
        var p = new nint[n];
        fixed (nint* pp = p) Check(api.GetPlatformIDs(n, pp, null), "clGetPlatformIDs");
        return p;
    }

    public static nint[] Devices(CL api, nint platform, DeviceType type)
    {
        uint n = 0;
        int err = api.GetDeviceIDs(platform, type, 0, null, &n);
        if (err == -1 || n == 0) return [];
        Check(err, "clGetDeviceIDs");
        var d = new nint[n];
        fixed (nint* pd = d) Check(api.GetDeviceIDs(platform, type, n, pd, null), "clGetDeviceIDs");
        return d;
    }

    public static string PlatformString(CL api, nint platform, PlatformInfo what)
    {
        nuint size = 0;
        Check(api.GetPlatformInfo(platform, what, 0, null, &size), "clGetPlatformInfo");
        var buf = new byte[(int)size];
        fixed (byte* p = buf) Check(api.GetPlatformInfo(platform, what, size, p, null), "clGetPlatformInfo");
        return Encoding.UTF8.GetString(buf).TrimEnd('\0').Trim();
    }

    public static string DeviceString(CL api, nint device, DeviceInfo what)
    {
        nuint size = 0;
        Check(api.GetDeviceInfo(device, what, 0, null, &size), "clGetDeviceInfo");
        var buf = new byte[(int)size];
        fixed (byte* p = buf) Check(api.GetDeviceInfo(device, what, size, p, null), "clGetDeviceInfo");
        return Encoding.UTF8.GetString(buf).TrimEnd('\0').Trim();
    }

    public static ulong DeviceULong(CL api, nint device, DeviceInfo what)
    {
        ulong v = 0;
        Check(api.GetDeviceInfo(device, what, sizeof(ulong), &v, null), "clGetDeviceInfo");
        return v;
    }

    public static nuint DeviceSize(CL api, nint device, DeviceInfo what)
    {
        nuint v = 0;
        Check(api.GetDeviceInfo(device, what, (nuint)sizeof(nuint), &v, null), "clGetDeviceInfo");
        return v;
    }

    /// <summary>Every device of every platform, in platform order.</summary>
    public static List<ClDeviceInfo> AllDevices(CL api)
    {
        var list = new List<ClDeviceInfo>();
        foreach (var p in Platforms(api))
        {
            string pname = PlatformString(api, p, PlatformInfo.Name);
            foreach (var d in Devices(api, p, DeviceType.All))
            {
                var type = (DeviceType)DeviceULong(api, d, DeviceInfo.Type);
                string ext = DeviceString(api, d, DeviceInfo.Extensions);
                list.Add(new ClDeviceInfo(list.Count, p, d, pname, DeviceString(api, d, DeviceInfo.Name), type,
                    DeviceULong(api, d, DeviceInfo.GlobalMemSize), DeviceULong(api, d, DeviceInfo.MaxMemAllocSize),
                    (long)DeviceSize(api, d, DeviceInfo.MaxWorkGroupSize), DeviceULong(api, d, DeviceInfo.LocalMemSize),
                    ext.Contains("cl_khr_fp16", StringComparison.Ordinal)));
            }
        }
        return list;
    }
}

internal sealed record ClDeviceInfo(int Index, nint Platform, nint Device, string PlatformName, string Name, DeviceType Type,
    ulong GlobalMem, ulong MaxAlloc, long MaxWorkGroup, ulong LocalMem, bool Fp16)
{
    public bool IsGpu => (Type & DeviceType.Gpu) != 0;

    public string TypeName => (Type & DeviceType.Gpu) != 0 ? "GPU" : (Type & DeviceType.Cpu) != 0 ? "CPU"
        : (Type & DeviceType.Accelerator) != 0 ? "accelerator" : "other";

    public string Describe() =>
        $"opencl:{Index}: {PlatformName} / {Name} ({TypeName}), global memory {Mib(GlobalMem)}, max allocation {Mib(MaxAlloc)}, fp16 {(Fp16 ? "yes" : "no")}";

    private static string Mib(ulong b) => b >= 1UL << 30 ? $"{b / (double)(1UL << 30):0.##} GiB" : $"{b >> 20} MiB";
}
