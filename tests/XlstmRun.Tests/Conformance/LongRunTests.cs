using XlstmRun.Conformance;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.Conformance;

/// <summary>
/// Long runs stay sane (<see cref="LongRun"/>): 100,000 generated tokens on tiny-f32 at every weight type on the CPU engine
/// (its default path: 8-bit activations for Q8_0/Q4_0), and 2,000 on lavapipe (one decode step there costs tens of
/// milliseconds, a few hundred on a loaded machine; `xlstm-run check --long-tokens N` runs the long version on a real GPU).
/// </summary>
[Collection("vulkan")]
public class LongRunTests
{
    private readonly ITestOutputHelper _out;
    public LongRunTests(ITestOutputHelper output) { _out = output; }

    public static TheoryData<string, GgmlType, int> Cases()
    {
        var d = new TheoryData<string, GgmlType, int>();
        foreach (var t in Shared.AllTypes) d.Add("cpu-default", t, 100_000);
        foreach (var dev in Shared.Devices.Where(x => x.Backend == "vulkan" && Shared.IsBase(x)))
        {
            d.Add(dev.Id, GgmlType.F32, 2_000);
            d.Add(dev.Id, GgmlType.Q4_0, 2_000);
        }
        return d;
    }

    [Theory, MemberData(nameof(Cases))]
    public void StateStaysFiniteAndLogitsBounded(string device, GgmlType type, int tokens)
    {
        using var file = GgufFile.Open(Models.Converted("tiny-f32", type));
        using var be = device == "cpu-default" ? new Backends.Cpu.CpuBackend(Shared.Threads) : Shared.Device(device).Create();
        var r = LongRun.Run(file, be, tokens, checkEvery: tokens / 20);
        _out.WriteLine($"{device} {GgmlTypes.Name(type)}: {r}");
        Console.WriteLine($"[long-run] {device} {GgmlTypes.Name(type)}: {r}");
        Assert.Equal(tokens, r.Tokens);
        Assert.True(r.Pass, r.Problem);
        Assert.True(r.Finite);
        Assert.Equal(20, r.Checks);
    }
}
