using XlstmRun.Backends;
using XlstmRun.Formats;
using XlstmRun.Model;
using Xunit;

namespace XlstmRun.Tests.Providers;

/// <summary>The one list of backend providers: names, device listing, creation by name and auto's fallback.</summary>
public class BackendProviderTests
{
    [Fact]
    public void NamesAreAutoAndEveryProviderOnce()
    {
        Assert.Equal("auto", BackendProviders.Names[0]);
        Assert.Equal(BackendProviders.All.Select(p => p.Name), BackendProviders.Names.Skip(1));
        Assert.Equal(BackendProviders.All.Count, BackendProviders.All.Select(p => p.Name).Distinct().Count());
        var e = Assert.Throws<BadInputException>(() => BackendProviders.Create("metal", new BackendSettings()));
        foreach (var n in BackendProviders.Names) Assert.Contains(n, e.Message);
    }

    [Fact]
    public void DeviceListingNamesEveryProviderAndAutosChoice()
    {
        var lines = BackendProviders.Describe().ToList();
        foreach (var p in BackendProviders.All)
        {
            var devices = p.Devices(out _);
            if (devices.Count == 0) Assert.Contains(lines, l => l.StartsWith(p.Name + ": none (", StringComparison.Ordinal));
            foreach (var d in devices) Assert.Contains(d.Description, lines);
        }
        Assert.StartsWith("--backend auto uses ", lines[^1]);
        var auto = BackendProviders.AutoDevice();
        if (auto != null)
        {
            Assert.True(auto.IsHardwareGpu);
            Assert.True(BackendProviders.Find(auto.Backend).AutoSelectable);
        }
    }

    [Fact]
    public void EachProviderCreatesABackendOfItsNameOnEachDevice()
    {
        foreach (var p in BackendProviders.All)
        {
            var devices = p.Devices(out var why);
            Assert.True(devices.Count > 0, $"{p.Name}: no device ({why})");
            Assert.All(devices, d => Assert.Equal(p.Name, d.Backend));
            using var be = p.Create(new BackendSettings(Device: devices[0].Index, Threads: 2));
            Assert.Equal(p.Name, be.Name);
            var t = be.Alloc(1, 4);
            p.Write(be, t, [1f, 2f, 3f, 4f]);
        }
    }

    [Fact]
    public void AutoFallsBackToTheCpuWithoutAHardwareGpuAndSaysWhyInTheLog()
    {
        if (BackendProviders.AutoDevice() != null) return;   // a machine with a GPU: auto takes it (covered by the GPU runs)
        var log = new List<string>();
        using var be = BackendProviders.Create("auto", new BackendSettings(Threads: 2, Log: log.Add));
        Assert.Equal("cpu", be.Name);
        Assert.Contains(log, l => l.StartsWith("auto: using the CPU", StringComparison.Ordinal));
    }

    [Fact]
    public void UnavailableDeviceIsABadInputErrorNamingTheBackend()
    {
        var e = Assert.Throws<BadInputException>(() => BackendProviders.Create("vulkan", new BackendSettings(Device: 99)));
        Assert.StartsWith("--backend vulkan: ", e.Message);
    }
}
