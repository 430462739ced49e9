using XlstmRun.Conformance;
using XlstmRun.Formats;
using XlstmRun.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.Conformance;

/// <summary>
/// The one fixture suite for every backend: each fixture × each device of the machine × each weight type runs every check of
/// <see cref="ConformanceSession.Check"/> (the same code as `xlstm-run check`): F32 against the float64 reference, other
/// types against the CPU engine on the same file, bounds from <see cref="Bounds"/>. A new backend gets all of it by its
/// line in <see cref="BackendCatalog.Kinds"/>. In the "vulkan" collection: Vulkan tests run one at a time and some of them
/// switch process-wide test hooks.
/// </summary>
[Collection("vulkan")]
public class FixtureConformanceTests
{
    private readonly ITestOutputHelper _out;
    public FixtureConformanceTests(ITestOutputHelper output) { _out = output; }

    /// <summary>
    /// Which (fixture, device, type) run in CI. Everything on the CPU engine and OpenCL; the OpenCL work-group kernels at F32
    /// on the short fixtures; Vulkan at every type on the short fixtures and at F32 on tiny-long (lavapipe is slow); the
    /// Vulkan shader variants without subgroup operations at F32 on tiny-fused, other Vulkan variants on tiny-fused.
    /// </summary>
    public static bool InSuite(string fixture, ConformanceDevice d, GgmlType t)
    {
        if (!d.Checks(t)) return false;
        if (d.Id.EndsWith(":wg", StringComparison.Ordinal)) return t == GgmlType.F32 && fixture != "tiny-long";
        if (d.Id.EndsWith(":nosubgroups", StringComparison.Ordinal)) return t == GgmlType.F32 && fixture == "tiny-fused";
        if (!Shared.IsBase(d)) return fixture == "tiny-fused";
        if (d.Backend == "vulkan" && fixture == "tiny-long") return t == GgmlType.F32;
        return true;
    }

    public static TheoryData<string, string, string> Cases()
    {
        var data = new TheoryData<string, string, string>();
        foreach (var f in TestPaths.FixtureNames)
            foreach (var t in Shared.AllTypes)
                foreach (var d in Shared.Devices)
                    if (InSuite(f, d, t)) data.Add(f, d.Id, GgmlTypes.Name(t));
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void EveryQuantityIsWithinItsBound(string fixture, string device, string type)
    {
        var rows = Shared.Session.Check(Shared.Fixture(fixture), Shared.Device(device), GgmlTypes.Parse(type));
        foreach (var r in rows)
            _out.WriteLine($"{r.Quantity,-22} vs {r.Against,-30} {CheckReport.ErrorText(r),9} (bound {CheckReport.BoundText(r)}) {(r.Pass ? "pass" : "FAIL")} {r.Note}");
        Console.WriteLine($"[conformance] {fixture} {device} {type}: " +
                          string.Join(", ", rows.Where(r => !r.IsCount).Select(r => $"{r.Quantity} {CheckReport.ErrorText(r)}")));
        Assert.NotEmpty(rows);
        var failed = rows.Where(r => !r.Pass).ToList();
        Assert.True(failed.Count == 0, "failed: " + string.Join("; ", failed.Select(r => $"{r.Quantity} {CheckReport.ErrorText(r)} > {CheckReport.BoundText(r)} {r.Note}")));
    }

    /// <summary>CI installs lavapipe and PoCL: every backend of the list must have a device here, or the suite would shrink silently.</summary>
    [Fact]
    public void EveryBackendHasADevice()
    {
        Assert.True(Shared.Missing.Count == 0, "no device: " + string.Join("; ", Shared.Missing));
        foreach (var k in BackendCatalog.Kinds) Assert.Contains(Shared.Devices, d => d.Backend == k.Name);
        foreach (var d in Shared.Devices) _out.WriteLine($"{d.Id}: {d.Description}");
    }

    /// <summary>The check itself fails when a quantity is off: a perturbed result goes over its bound.</summary>
    [Fact]
    public void AWrongResultFailsItsCheck()
    {
        var f = Shared.Fixture("tiny-fused");
        var rf = f.Reference;
        var good = rf["logits_prefill"];
        var bad = (float[])good.Clone();
        bad[bad.Length / 2] += 0.05f; // one logit of one position
        Assert.InRange(Metrics.RelErr(good, good), 0, 0);
        Assert.True(Metrics.RelErr(bad, good) > Bounds.F32VsReference);
        // greedy ids: a difference fails in the strict column, and passes the tie rule only at a near tie
        int V = good.Length / rf.InputIds.Length;
        var row = good.AsSpan(good.Length - V, V).ToArray();
        int best = Metrics.ArgMax(row);
        int second = Enumerable.Range(0, V).Where(i => i != best).OrderByDescending(i => row[i]).First();
        var ((_, strictPass), _) = ConformanceSession.CompareIds([second], [best], _ => row, 1e-3, strict: true);
        Assert.False(strictPass);
        var ((_, farPass), _) = ConformanceSession.CompareIds([second], [best], _ => row, 1e-12, strict: false);
        Assert.Equal(row[best] - row[second] <= Bounds.TieFactor * 1e-12 * Rms(row), farPass);
        var ((_, tiePass), note) = ConformanceSession.CompareIds([second], [best], _ => row, 10, strict: false);
        Assert.True(tiePass, note);
    }

    private static double Rms(float[] x) => Math.Sqrt(x.Sum(v => (double)v * v) / x.Length);
}
