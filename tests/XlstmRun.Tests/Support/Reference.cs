using XlstmRun.Conformance;

namespace XlstmRun.Tests.Support;

/// <summary>The reference outputs of a fixture (reference.safetensors): the conformance library's reader under the tests' name.</summary>
public sealed class Reference
{
    private readonly FixtureReference _r;

    public Reference(string fixtureDir) { _r = new FixtureReference(fixtureDir); }

    public int[] InputIds => _r.InputIds;
    public int[] GreedyIds => _r.GreedyIds;
    public int[] ContinueIds => _r.ContinueIds;
    public float[] this[string name] => _r[name];
    public bool Has(string name) => _r.Has(name);
    public long[] Shape(string name) => _r.Shape(name);

    /// <summary>‖a − b‖₂ / ‖b‖₂ in double precision (<see cref="Metrics.RelErr(ReadOnlySpan{float}, ReadOnlySpan{float})"/>).</summary>
    public static double RelErr(ReadOnlySpan<float> ours, ReadOnlySpan<float> reference) => Metrics.RelErr(ours, reference);
}
