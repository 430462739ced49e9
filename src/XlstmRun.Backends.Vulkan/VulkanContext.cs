using System.Runtime.InteropServices;
using Silk.NET.Core.Native;
using Silk.NET.Vulkan;

namespace XlstmRun.Backends.Vulkan;

/// <summary>Vulkan cannot be used here: no loader, no driver, no device, or the device lacks what the shaders need.</summary>
public sealed class VulkanUnavailableException : Exception
{
    public VulkanUnavailableException(string message) : base(message) { }
}

/// <summary>What `info --devices` shows about one Vulkan physical device.</summary>
public sealed record VulkanDeviceInfo(
    int Index, string Name, PhysicalDeviceType Type, string ApiVersion, string Driver, ulong DeviceLocalBytes,
    uint SubgroupSize, bool SubgroupArithmetic, bool Float16, bool Int8, bool Storage16, bool Storage8,
    bool CoopMatNv, bool CoopMatKhr, bool IntDot, bool IntDotAccelerated, bool Timestamps, ulong MaxStorageBufferRange, ulong MaxAllocation,
    uint SharedMemory, uint MaxInvocations, bool CoopMat2 = false)
{
    public bool IsHardware => Type is PhysicalDeviceType.DiscreteGpu or PhysicalDeviceType.IntegratedGpu;

    public static string TypeName(PhysicalDeviceType t) => t switch
    {
        PhysicalDeviceType.DiscreteGpu => "discrete GPU",
        PhysicalDeviceType.IntegratedGpu => "integrated GPU",
        PhysicalDeviceType.VirtualGpu => "virtual GPU",
        PhysicalDeviceType.Cpu => "CPU (software)",
        _ => "other",
    };

    public string Describe()
    {
        var feats = new List<string>();
        if (SubgroupArithmetic) feats.Add("subgroup-arith");
        if (Float16) feats.Add("fp16");
        if (Int8) feats.Add("int8");
        if (Storage16) feats.Add("16bit-storage");
        if (Storage8) feats.Add("8bit-storage");
        if (IntDot) feats.Add(IntDotAccelerated ? "int-dot(accelerated)" : "int-dot");
        if (CoopMatKhr) feats.Add("coopmat-khr");
        if (CoopMatNv) feats.Add("coopmat-nv");
        if (CoopMat2) feats.Add("coopmat2");
        if (Timestamps) feats.Add("timestamps");
        return $"vulkan {Index}: {Name} ({TypeName(Type)}), Vulkan {ApiVersion}, driver {Driver}, {DeviceLocalBytes / 1073741824.0:F1} GiB device memory, " +
               $"subgroup {SubgroupSize}, shared {SharedMemory / 1024} KiB, max binding {MaxStorageBufferRange / 1048576} MiB, max allocation {MaxAllocation / 1048576} MiB; " +
               string.Join(" ", feats);
    }
}

/// <summary>
/// One Vulkan logical device for compute: instance, chosen physical device, one compute queue, enabled features and the
/// memory types used for device, upload and readback buffers.
/// </summary>
public sealed unsafe class VulkanContext : IDisposable
{
    private static readonly object ApiLock = new();
    private static Vk? _api;
    private static string? _apiError;

    public Vk Vk { get; }
    public Instance Instance { get; }
    public PhysicalDevice Physical { get; }
    public Device Device { get; }
    public Queue Queue { get; }
    public uint QueueFamily { get; }
    public VulkanDeviceInfo Info { get; }
    public PhysicalDeviceLimits Limits { get; }
    public PhysicalDeviceMemoryProperties MemoryProperties { get; }
    /// <summary>Shaders with subgroup reductions (else the ".nosg" shared-memory variants).</summary>
    public bool UseSubgroups { get; }
    public bool FullSubgroups { get; }
    public bool Timestamps { get; }
    /// <summary>The prefill GEMM runs on VK_NV_cooperative_matrix (16×16×16, f16 × f16 → f32; see GemmSelection).</summary>
    public bool CoopMatNv { get; }
    /// <summary>Workgroup-scope cooperative matrices with tensor addressing (VK_NV_cooperative_matrix2) are enabled: the
    /// prefill GEMM may run shaders/cm2/matmul_cm2.comp (XLSTM_VK_COOPMAT2=0: not enabled).</summary>
    public bool CoopMat2 { get; }
    /// <summary>The largest workgroup a workgroup-scope cooperative matrix may span.</summary>
    public uint CoopMat2MaxWorkgroup { get; }
    public float TimestampPeriodNs { get; }
    /// <summary>shaderIntegerDotProduct is enabled (matvec_idot.comp can run); <see cref="IntDotAccelerated"/>: the device
    /// says packed 4×8-bit signed dot products are accelerated.</summary>
    public bool IntDot { get; }
    public bool IntDotAccelerated { get; }
    /// <summary>VK_EXT_memory_budget is enabled: <see cref="DeviceHeapUsage"/> reads the driver's count.</summary>
    public bool MemoryBudget { get; }
    /// <summary>Diagnosis (XLSTM_VK_PIPELINE_STATS=1, where the driver has VK_KHR_pipeline_executable_properties): every
    /// pipeline prints the driver's statistics for it (registers, shared memory, ...) to stderr when created.</summary>
    public bool PipelineStats { get; }

    /// <summary>The driver's count of this process's usage of the device-local heaps (VK_EXT_memory_budget), or null.</summary>
    public long? DeviceHeapUsage()
    {
        if (!MemoryBudget) return null;
        var budget = new PhysicalDeviceMemoryBudgetPropertiesEXT { SType = StructureType.PhysicalDeviceMemoryBudgetPropertiesExt };
        var mp = new PhysicalDeviceMemoryProperties2 { SType = StructureType.PhysicalDeviceMemoryProperties2, PNext = &budget };
        Vk.GetPhysicalDeviceMemoryProperties2(Physical, &mp);
        long used = 0;
        for (int i = 0; i < mp.MemoryProperties.MemoryHeapCount; i++)
            if ((mp.MemoryProperties.MemoryHeaps[i].Flags & MemoryHeapFlags.DeviceLocalBit) != 0) used += (long)budget.HeapUsage[i];
        return used;
    }
    public ulong MaxBinding { get; }
    public ulong MaxAllocation { get; }

    /// <summary>The Vulkan entry points (loader), or an exception saying why they are missing.</summary>
    public static Vk Api()
    {
        lock (ApiLock)
        {
            if (_api != null) return _api;
            if (_apiError != null) throw new VulkanUnavailableException(_apiError);
            try
            {
                _api = Vk.GetApi();
                return _api;
            }
            catch (Exception e) when (e is FileNotFoundException or DllNotFoundException or EntryPointNotFoundException or TypeInitializationException)
            {
                _apiError = "the Vulkan loader (libvulkan.so.1) was not found: install libvulkan1 and a Vulkan driver (e.g. mesa-vulkan-drivers)";
                throw new VulkanUnavailableException(_apiError);
            }
        }
    }

    /// <summary>The API version the instance asks for; features of a device are used up to min(this, device version).</summary>
    private static readonly uint AppApiVersion = Vk.Version13;

    private static Instance CreateInstance(Vk vk)
    {
        var appName = (byte*)SilkMarshal.StringToPtr("xlstm-run");
        try
        {
            var app = new ApplicationInfo
            {
                SType = StructureType.ApplicationInfo,
                PApplicationName = appName,
                PEngineName = appName,
                ApiVersion = AppApiVersion,
            };
            var ici = new InstanceCreateInfo { SType = StructureType.InstanceCreateInfo, PApplicationInfo = &app };
            Instance inst;
            var r = vk.CreateInstance(&ici, null, &inst);
            if (r == Result.ErrorIncompatibleDriver)
                throw new VulkanUnavailableException("no Vulkan driver found (vkCreateInstance: incompatible driver); install a Vulkan driver, e.g. mesa-vulkan-drivers, or set VK_DRIVER_FILES");
            if (r != Result.Success) throw new VulkanUnavailableException($"vkCreateInstance failed: {r}");
            return inst;
        }
        finally
        {
            SilkMarshal.Free((nint)appName);
        }
    }

    private static PhysicalDevice[] Physicals(Vk vk, Instance inst)
    {
        uint n = 0;
        vk.EnumeratePhysicalDevices(inst, &n, null);
        var arr = new PhysicalDevice[n];
        if (n > 0)
            fixed (PhysicalDevice* p = arr)
                vk.EnumeratePhysicalDevices(inst, &n, p);
        return arr;
    }

    private static HashSet<string> Extensions(Vk vk, PhysicalDevice pd)
    {
        uint n = 0;
        vk.EnumerateDeviceExtensionProperties(pd, (byte*)null, &n, null);
        var props = new ExtensionProperties[n];
        var set = new HashSet<string>(StringComparer.Ordinal);
        if (n == 0) return set;
        fixed (ExtensionProperties* p = props)
        {
            vk.EnumerateDeviceExtensionProperties(pd, (byte*)null, &n, p);
            for (int i = 0; i < n; i++) set.Add(SilkMarshal.PtrToString((nint)p[i].ExtensionName)!);
        }
        return set;
    }

    private static string Version(uint v) => $"{v >> 22}.{(v >> 12) & 0x3ff}.{v & 0xfff}";

    private readonly struct Probe
    {
        public readonly PhysicalDeviceProperties Props;
        public readonly PhysicalDeviceSubgroupProperties Subgroup;
        public readonly PhysicalDeviceMaintenance3Properties Maint3;
        public readonly PhysicalDeviceFeatures Core;
        public readonly bool F16, I8, S16, S8, SizeControl, FullSubgroups, CoopNvFeature, MemoryModel, IntDotFeature, IntDotAccelerated;
        /// <summary>VK_NV_cooperative_matrix2 with what matmul_cm2 uses: workgroup scope, flexible dimensions, tensor
        /// addressing, per-element operations (and VK_KHR_cooperative_matrix under it).</summary>
        public readonly bool CoopMat2;
        public readonly uint CoopMat2MaxWorkgroup;
        public readonly HashSet<string> Ext;
        public readonly PhysicalDeviceMemoryProperties Mem;

        public Probe(Vk vk, PhysicalDevice pd)
        {
            vk.GetPhysicalDeviceProperties(pd, out var props0);
            uint api = Math.Min(props0.ApiVersion, AppApiVersion);
            Ext = Extensions(vk, pd);
            var sg = new PhysicalDeviceSubgroupProperties { SType = StructureType.PhysicalDeviceSubgroupProperties };
            var m3 = new PhysicalDeviceMaintenance3Properties { SType = StructureType.PhysicalDeviceMaintenance3Properties, PNext = &sg };
            bool hasDot = api >= Vk.Version13 || Ext.Contains("VK_KHR_shader_integer_dot_product");
            var dotp = new PhysicalDeviceShaderIntegerDotProductProperties { SType = StructureType.PhysicalDeviceShaderIntegerDotProductProperties };
            if (hasDot) sg.PNext = &dotp;
            var p2 = new PhysicalDeviceProperties2 { SType = StructureType.PhysicalDeviceProperties2, PNext = &m3 };
            vk.GetPhysicalDeviceProperties2(pd, &p2);
            Props = p2.Properties;
            Subgroup = sg;
            Maint3 = m3;
            bool v12 = api >= Vk.Version12;
            bool has8 = v12 || Ext.Contains("VK_KHR_8bit_storage");
            bool hasF16 = v12 || Ext.Contains("VK_KHR_shader_float16_int8");
            bool hasSize = api >= Vk.Version13 || Ext.Contains("VK_EXT_subgroup_size_control");
            var s16 = new PhysicalDevice16BitStorageFeatures { SType = StructureType.PhysicalDevice16BitStorageFeatures };
            var s8 = new PhysicalDevice8BitStorageFeatures { SType = StructureType.PhysicalDevice8BitStorageFeatures };
            var f16 = new PhysicalDeviceShaderFloat16Int8Features { SType = StructureType.PhysicalDeviceShaderFloat16Int8Features };
            var sc = new PhysicalDeviceSubgroupSizeControlFeatures { SType = StructureType.PhysicalDeviceSubgroupSizeControlFeatures };
            var cm = new PhysicalDeviceCooperativeMatrixFeaturesNV { SType = StructureType.PhysicalDeviceCooperativeMatrixFeaturesNV };
            bool hasCm = Ext.Contains("VK_NV_cooperative_matrix");
            void* chain = &s16;
            if (hasCm) { cm.PNext = chain; chain = &cm; }
            bool hasMm = api >= Vk.Version12 || Ext.Contains("VK_KHR_vulkan_memory_model");
            var mm = new PhysicalDeviceVulkanMemoryModelFeatures { SType = StructureType.PhysicalDeviceVulkanMemoryModelFeatures };
            if (hasMm) { mm.PNext = chain; chain = &mm; }
            if (has8) { s8.PNext = chain; chain = &s8; }
            if (hasF16) { f16.PNext = chain; chain = &f16; }
            if (hasSize) { sc.PNext = chain; chain = &sc; }
            var dotf = new PhysicalDeviceShaderIntegerDotProductFeatures { SType = StructureType.PhysicalDeviceShaderIntegerDotProductFeatures };
            if (hasDot) { dotf.PNext = chain; chain = &dotf; }
            bool hasCm2 = Ext.Contains("VK_NV_cooperative_matrix2") && Ext.Contains("VK_KHR_cooperative_matrix");
            var cmk = new PhysicalDeviceCooperativeMatrixFeaturesKHR { SType = StructureType.PhysicalDeviceCooperativeMatrixFeaturesKhr };
            var cm2 = new PhysicalDeviceCooperativeMatrix2FeaturesNV { SType = StructureType.PhysicalDeviceCooperativeMatrix2FeaturesNV };
            if (hasCm2) { cmk.PNext = chain; cm2.PNext = &cmk; chain = &cm2; }
            var f2 = new PhysicalDeviceFeatures2 { SType = StructureType.PhysicalDeviceFeatures2, PNext = chain };
            vk.GetPhysicalDeviceFeatures2(pd, &f2);
            Core = f2.Features;
            S16 = s16.StorageBuffer16BitAccess;
            S8 = has8 && s8.StorageBuffer8BitAccess;
            F16 = hasF16 && f16.ShaderFloat16;
            I8 = hasF16 && f16.ShaderInt8;
            SizeControl = hasSize && sc.SubgroupSizeControl;
            FullSubgroups = hasSize && sc.ComputeFullSubgroups;
            CoopNvFeature = hasCm && cm.CooperativeMatrix;
            MemoryModel = hasMm && mm.VulkanMemoryModel;
            IntDotFeature = hasDot && dotf.ShaderIntegerDotProduct;
            IntDotAccelerated = IntDotFeature && dotp.IntegerDotProduct4x8BitPackedSignedAccelerated;
            CoopMat2 = hasCm2 && cmk.CooperativeMatrix && cm2.CooperativeMatrixWorkgroupScope && cm2.CooperativeMatrixFlexibleDimensions &&
                       cm2.CooperativeMatrixTensorAddressing && cm2.CooperativeMatrixPerElementOperations;
            if (CoopMat2)
            {
                var cm2p = new PhysicalDeviceCooperativeMatrix2PropertiesNV { SType = StructureType.PhysicalDeviceCooperativeMatrix2PropertiesNV };
                var pp2 = new PhysicalDeviceProperties2 { SType = StructureType.PhysicalDeviceProperties2, PNext = &cm2p };
                vk.GetPhysicalDeviceProperties2(pd, &pp2);
                CoopMat2MaxWorkgroup = cm2p.CooperativeMatrixWorkgroupScopeMaxWorkgroupSize;
            }
            vk.GetPhysicalDeviceMemoryProperties(pd, out var mem);
            Mem = mem;
        }

        /// <summary>The subgroup operations the USE_SUBGROUPS shader variants use: reductions, and the matvec's shuffles
        /// (its reduce-scatter).</summary>
        private const SubgroupFeatureFlags SubgroupOps = SubgroupFeatureFlags.BasicBit | SubgroupFeatureFlags.ArithmeticBit | SubgroupFeatureFlags.ShuffleBit;

        public bool SubgroupArithmetic =>
            (Subgroup.SupportedStages & ShaderStageFlags.ComputeBit) != 0 &&
            (Subgroup.SupportedOperations & SubgroupOps) == SubgroupOps &&
            Subgroup.SubgroupSize >= 4;

        public ulong DeviceLocalBytes
        {
            get
            {
                ulong best = 0;
                for (int i = 0; i < Mem.MemoryHeapCount; i++)
                    if ((Mem.MemoryHeaps[i].Flags & MemoryHeapFlags.DeviceLocalBit) != 0) best = Math.Max(best, Mem.MemoryHeaps[i].Size);
                return best;
            }
        }

        public VulkanDeviceInfo Info(Vk vk, PhysicalDevice pd, int index)
        {
            var p = Props;
            string name = SilkMarshal.PtrToString((nint)p.DeviceName) ?? "?";
            bool ts = p.Limits.TimestampComputeAndGraphics;
            if (!ts)
            {
                uint n = 0;
                vk.GetPhysicalDeviceQueueFamilyProperties(pd, &n, null);
                var q = new QueueFamilyProperties[n];
                fixed (QueueFamilyProperties* qp = q) vk.GetPhysicalDeviceQueueFamilyProperties(pd, &n, qp);
                ts = q.Any(f => (f.QueueFlags & QueueFlags.ComputeBit) != 0 && f.TimestampValidBits > 0);
            }
            return new VulkanDeviceInfo(index, name, p.DeviceType, Version(p.ApiVersion), DriverString(p), DeviceLocalBytes,
                Subgroup.SubgroupSize, SubgroupArithmetic, F16, I8, S16, S8,
                Ext.Contains("VK_NV_cooperative_matrix"), Ext.Contains("VK_KHR_cooperative_matrix"),
                IntDotFeature, IntDotAccelerated, ts,
                p.Limits.MaxStorageBufferRange, Maint3.MaxMemoryAllocationSize, p.Limits.MaxComputeSharedMemorySize,
                p.Limits.MaxComputeWorkGroupInvocations, CoopMat2);
        }

        private static string DriverString(PhysicalDeviceProperties p)
        {
            uint v = p.DriverVersion;
            if (p.VendorID == 0x10DE) return $"{v >> 22}.{(v >> 14) & 0xff}.{(v >> 6) & 0xff}"; // NVIDIA packing
            return Version(v);
        }
    }

    /// <summary>Every Vulkan device (index = `--device`), or the reason none can be listed.</summary>
    public static IReadOnlyList<VulkanDeviceInfo> Enumerate(out string? error)
    {
        error = null;
        try
        {
            var vk = Api();
            var inst = CreateInstance(vk);
            try
            {
                var pds = Physicals(vk, inst);
                if (pds.Length == 0) error = "the Vulkan loader found no device (is a Vulkan driver installed?)";
                return pds.Select((pd, i) => new Probe(vk, pd).Info(vk, pd, i)).ToList();
            }
            finally
            {
                vk.DestroyInstance(inst, null);
            }
        }
        catch (VulkanUnavailableException e)
        {
            error = e.Message;
            return [];
        }
    }

    /// <summary>
    /// Open device <paramref name="index"/> (enumeration order), or the best one when index &lt; 0: a discrete GPU, then an
    /// integrated one, then (only if <paramref name="hardwareOnly"/> is false) virtual and software (CPU) devices.
    /// <paramref name="noSubgroups"/> (or XLSTM_VK_NO_SUBGROUPS=1) selects the shared-memory-only shader variants.
    /// </summary>
    public static VulkanContext Create(int index = -1, bool hardwareOnly = false, bool noSubgroups = false)
    {
        var vk = Api();
        var inst = CreateInstance(vk);
        try
        {
            var pds = Physicals(vk, inst);
            if (pds.Length == 0) throw new VulkanUnavailableException("the Vulkan loader found no device (is a Vulkan driver installed?)");
            var probes = pds.Select(pd => new Probe(vk, pd)).ToArray();
            int pick;
            if (index >= 0)
            {
                if (index >= pds.Length) throw new VulkanUnavailableException($"--device {index}: there {(pds.Length == 1 ? "is only 1 Vulkan device" : $"are only {pds.Length} Vulkan devices")} (see 'xlstm-run info --devices')");
                pick = index;
                if (hardwareOnly && !probes[pick].Info(vk, pds[pick], pick).IsHardware)
                    throw new VulkanUnavailableException($"Vulkan device {index} is not a hardware GPU");
            }
            else
            {
                static int Rank(PhysicalDeviceType t) => t switch
                {
                    PhysicalDeviceType.DiscreteGpu => 0, PhysicalDeviceType.IntegratedGpu => 1, PhysicalDeviceType.VirtualGpu => 2,
                    PhysicalDeviceType.Cpu => 3, _ => 4,
                };
                pick = Enumerable.Range(0, pds.Length).OrderBy(i => Rank(probes[i].Props.DeviceType)).ThenBy(i => i).First();
                if (hardwareOnly && Rank(probes[pick].Props.DeviceType) > 1)
                    throw new VulkanUnavailableException("no hardware Vulkan GPU (only software or virtual devices)");
            }
            return new VulkanContext(vk, inst, pds[pick], probes[pick], pick, noSubgroups);
        }
        catch
        {
            vk.DestroyInstance(inst, null);
            throw;
        }
    }

    private VulkanContext(Vk vk, Instance inst, PhysicalDevice pd, Probe probe, int index, bool noSubgroups)
    {
        Vk = vk;
        Instance = inst;
        Physical = pd;
        Info = probe.Info(vk, pd, index);
        Limits = probe.Props.Limits;
        MemoryProperties = probe.Mem;
        if (probe.Props.ApiVersion < Vk.Version11) throw new VulkanUnavailableException($"{Info.Name}: Vulkan {Info.ApiVersion} is too old (1.1 needed)");
        if (Limits.MaxComputeWorkGroupInvocations < 256) throw new VulkanUnavailableException($"{Info.Name}: compute workgroups of 256 invocations are not supported");
        if (Limits.MaxComputeSharedMemorySize < 28 * 1024) throw new VulkanUnavailableException($"{Info.Name}: {Limits.MaxComputeSharedMemorySize} bytes of shared memory (28 KiB needed)");

        // queue: a compute-capable family; prefer one with timestamps
        uint n = 0;
        vk.GetPhysicalDeviceQueueFamilyProperties(pd, &n, null);
        var fams = new QueueFamilyProperties[n];
        fixed (QueueFamilyProperties* fp = fams) vk.GetPhysicalDeviceQueueFamilyProperties(pd, &n, fp);
        int fam = -1;
        for (int i = 0; i < n; i++)
            if ((fams[i].QueueFlags & QueueFlags.ComputeBit) != 0 && (fam < 0 || (fams[fam].TimestampValidBits == 0 && fams[i].TimestampValidBits > 0)))
                fam = i;
        if (fam < 0) throw new VulkanUnavailableException($"{Info.Name}: no compute queue");
        QueueFamily = (uint)fam;
        Timestamps = fams[fam].TimestampValidBits > 0;
        TimestampPeriodNs = Limits.TimestampPeriod;

        bool noSg = noSubgroups || Environment.GetEnvironmentVariable("XLSTM_VK_NO_SUBGROUPS") == "1";
        UseSubgroups = probe.SubgroupArithmetic && !noSg;
        FullSubgroups = probe.FullSubgroups;
        MaxBinding = Limits.MaxStorageBufferRange;
        MaxAllocation = probe.Maint3.MaxMemoryAllocationSize > 0 ? probe.Maint3.MaxMemoryAllocationSize : 1UL << 30;
        bool coopShape = probe.CoopNvFeature && CoopMat16x16x16F16F32(vk, inst, pd);
        // glslang's GL_NV_cooperative_matrix code uses the Vulkan memory model: that feature is needed too
        CoopMatNv = GemmSelection.CoopMatUsable(probe.CoopNvFeature && probe.MemoryModel, coopShape, probe.F16, UseSubgroups, probe.Subgroup.SubgroupSize,
            Environment.GetEnvironmentVariable("XLSTM_VK_COOPMAT"));

        IntDot = probe.IntDotFeature;
        IntDotAccelerated = probe.IntDotAccelerated;
        // features to enable where present (only the integer dot product and cooperative matrices are used by shaders)
        uint api = Math.Min(probe.Props.ApiVersion, AppApiVersion);
        var exts = new List<string>();
        var s16 = new PhysicalDevice16BitStorageFeatures { SType = StructureType.PhysicalDevice16BitStorageFeatures, StorageBuffer16BitAccess = probe.S16 };
        var s8 = new PhysicalDevice8BitStorageFeatures { SType = StructureType.PhysicalDevice8BitStorageFeatures, StorageBuffer8BitAccess = probe.S8 };
        var f16 = new PhysicalDeviceShaderFloat16Int8Features { SType = StructureType.PhysicalDeviceShaderFloat16Int8Features, ShaderFloat16 = probe.F16, ShaderInt8 = probe.I8 };
        var sc = new PhysicalDeviceSubgroupSizeControlFeatures { SType = StructureType.PhysicalDeviceSubgroupSizeControlFeatures, SubgroupSizeControl = probe.SizeControl, ComputeFullSubgroups = probe.FullSubgroups };
        void* chain = null;
        if (probe.S16) { s16.PNext = chain; chain = &s16; }
        if (probe.S8) { s8.PNext = chain; chain = &s8; if (api < Vk.Version12) exts.Add("VK_KHR_8bit_storage"); }
        if (probe.F16 || probe.I8) { f16.PNext = chain; chain = &f16; if (api < Vk.Version12) exts.Add("VK_KHR_shader_float16_int8"); }
        if (probe.SizeControl) { sc.PNext = chain; chain = &sc; if (api < Vk.Version13) exts.Add("VK_EXT_subgroup_size_control"); }
        var dot = new PhysicalDeviceShaderIntegerDotProductFeatures { SType = StructureType.PhysicalDeviceShaderIntegerDotProductFeatures, ShaderIntegerDotProduct = true };
        if (IntDot) { dot.PNext = chain; chain = &dot; if (api < Vk.Version13) exts.Add("VK_KHR_shader_integer_dot_product"); }
        MemoryBudget = probe.Ext.Contains("VK_EXT_memory_budget");
        if (MemoryBudget) exts.Add("VK_EXT_memory_budget");
        var cm = new PhysicalDeviceCooperativeMatrixFeaturesNV { SType = StructureType.PhysicalDeviceCooperativeMatrixFeaturesNV, CooperativeMatrix = true };
        var mm = new PhysicalDeviceVulkanMemoryModelFeatures { SType = StructureType.PhysicalDeviceVulkanMemoryModelFeatures, VulkanMemoryModel = true };
        CoopMat2 = probe.CoopMat2 && probe.MemoryModel && probe.F16 && UseSubgroups && Environment.GetEnvironmentVariable("XLSTM_VK_COOPMAT2") != "0";
        CoopMat2MaxWorkgroup = probe.CoopMat2MaxWorkgroup;
        if (CoopMatNv)
        {
            cm.PNext = chain; chain = &cm; exts.Add("VK_NV_cooperative_matrix");
        }
        if (CoopMatNv || CoopMat2)
        {
            mm.PNext = chain; chain = &mm; if (api < Vk.Version12) exts.Add("VK_KHR_vulkan_memory_model");
        }
        var cmk = new PhysicalDeviceCooperativeMatrixFeaturesKHR { SType = StructureType.PhysicalDeviceCooperativeMatrixFeaturesKhr, CooperativeMatrix = true };
        var cm2 = new PhysicalDeviceCooperativeMatrix2FeaturesNV
        {
            SType = StructureType.PhysicalDeviceCooperativeMatrix2FeaturesNV, CooperativeMatrixWorkgroupScope = true, CooperativeMatrixFlexibleDimensions = true,
            CooperativeMatrixTensorAddressing = true, CooperativeMatrixPerElementOperations = true,
        };
        if (CoopMat2)
        {
            cmk.PNext = chain; chain = &cmk; exts.Add("VK_KHR_cooperative_matrix");
            cm2.PNext = chain; chain = &cm2; exts.Add("VK_NV_cooperative_matrix2");
        }
        var pes = new PhysicalDevicePipelineExecutablePropertiesFeaturesKHR { SType = StructureType.PhysicalDevicePipelineExecutablePropertiesFeaturesKhr, PipelineExecutableInfo = true };
        PipelineStats = Environment.GetEnvironmentVariable("XLSTM_VK_PIPELINE_STATS") == "1" && probe.Ext.Contains("VK_KHR_pipeline_executable_properties");
        if (PipelineStats) { pes.PNext = chain; chain = &pes; exts.Add("VK_KHR_pipeline_executable_properties"); }
        var core = new PhysicalDeviceFeatures { ShaderInt16 = probe.Core.ShaderInt16, ShaderInt64 = probe.Core.ShaderInt64 };
        var f2 = new PhysicalDeviceFeatures2 { SType = StructureType.PhysicalDeviceFeatures2, PNext = chain, Features = core };

        float prio = 1f;
        var qci = new DeviceQueueCreateInfo { SType = StructureType.DeviceQueueCreateInfo, QueueFamilyIndex = QueueFamily, QueueCount = 1, PQueuePriorities = &prio };
        var extPtrs = (byte**)SilkMarshal.StringArrayToPtr(exts);
        try
        {
            var dci = new DeviceCreateInfo
            {
                SType = StructureType.DeviceCreateInfo,
                PNext = &f2,
                QueueCreateInfoCount = 1,
                PQueueCreateInfos = &qci,
                EnabledExtensionCount = (uint)exts.Count,
                PpEnabledExtensionNames = extPtrs,
            };
            Device dev;
            var r = vk.CreateDevice(pd, &dci, null, &dev);
            if (r != Result.Success) throw new VulkanUnavailableException($"{Info.Name}: vkCreateDevice failed: {r}");
            Device = dev;
        }
        finally
        {
            SilkMarshal.Free((nint)extPtrs);
        }
        Queue q;
        vk.GetDeviceQueue(Device, QueueFamily, 0, &q);
        Queue = q;
    }

    /// <summary>Whether the device lists the 16×16×16 f16 × f16 + f32 → f32 subgroup-scope shape (VK_NV_cooperative_matrix).</summary>
    private static bool CoopMat16x16x16F16F32(Vk vk, Instance inst, PhysicalDevice pd)
    {
        var fn = vk.GetInstanceProcAddr(inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
        if ((nint)fn.Handle == 0) return false;
        var f = (delegate* unmanaged<PhysicalDevice, uint*, CooperativeMatrixPropertiesNV*, Result>)fn.Handle;
        uint n = 0;
        if (f(pd, &n, null) != Result.Success || n == 0) return false;
        var props = new CooperativeMatrixPropertiesNV[n];
        for (int i = 0; i < n; i++) props[i].SType = StructureType.CooperativeMatrixPropertiesNV;
        fixed (CooperativeMatrixPropertiesNV* pp = props)
            if (f(pd, &n, pp) != Result.Success) return false;
        foreach (var p in props)
            // VK_COMPONENT_TYPE_FLOAT16_NV = 0, FLOAT32_NV = 1, VK_SCOPE_SUBGROUP_NV = 3
            if (p.MSize == 16 && p.NSize == 16 && p.KSize == 16 && (int)p.AType == 0 && (int)p.BType == 0 &&
                (int)p.CType == 1 && (int)p.DType == 1 && (int)p.Scope == 3)
                return true;
        return false;
    }

    public void Check(Result r, string what)
    {
        if (r != Result.Success) throw new InvalidOperationException($"Vulkan: {what} failed: {r}");
    }

    /// <summary>Index of a memory type allowed by <paramref name="bits"/> with <paramref name="need"/> flags, preferring
    /// <paramref name="want"/> and avoiding <paramref name="avoid"/>; -1 if none.</summary>
    public int FindMemoryType(uint bits, MemoryPropertyFlags need, MemoryPropertyFlags want = 0, MemoryPropertyFlags avoid = 0)
    {
        int best = -1, bestScore = int.MinValue;
        var mp = MemoryProperties;
        for (int i = 0; i < mp.MemoryTypeCount; i++)
        {
            if ((bits & (1u << i)) == 0) continue;
            var f = mp.MemoryTypes[i].PropertyFlags;
            if ((f & need) != need) continue;
            int score = 0;
            if ((f & want) == want) score += 2;
            if ((f & avoid) == 0) score += 1;
            if (score > bestScore) { best = i; bestScore = score; }
        }
        return best;
    }

    private readonly Dictionary<string, Kernel> _kernels = new();

    /// <summary>The kernel (shader module, layouts, pipelines) named <paramref name="name"/>, created once per context.</summary>
    public Kernel Kernel(string name, int bindings, uint pushBytes)
    {
        lock (_kernels)
        {
            if (_kernels.TryGetValue(name, out var k)) return k;
            k = new Kernel(this, name, bindings, pushBytes);
            _kernels[name] = k;
            return k;
        }
    }

    public void Dispose()
    {
        Vk.DeviceWaitIdle(Device);
        foreach (var k in _kernels.Values) k.Dispose();
        _kernels.Clear();
        Vk.DestroyDevice(Device, null);
        Vk.DestroyInstance(Instance, null);
    }
}

/// <summary>Which GEMM the prefill uses (pure logic, tested without a device).</summary>
public static class GemmSelection
{
    /// <summary>
    /// The cooperative-matrix GEMM (shaders/matmul_coopmat.comp) needs the VK_NV_cooperative_matrix feature (and the
    /// Vulkan memory model, which glslang's code for it uses), the
    /// 16×16×16 f16·f16 + f32 shape at subgroup scope, shaderFloat16 (f16 tiles in shared memory), and subgroups of 32
    /// (the kernel lays 8 subgroups over a 256-invocation workgroup). XLSTM_VK_COOPMAT=0 turns it off. Everything else
    /// (lavapipe included) keeps the fp32 tiled GEMM.
    /// </summary>
    public static bool CoopMatUsable(bool feature, bool shape, bool float16, bool subgroups, uint subgroupSize, string? env) =>
        env != "0" && feature && shape && float16 && subgroups && subgroupSize == 32;
}
