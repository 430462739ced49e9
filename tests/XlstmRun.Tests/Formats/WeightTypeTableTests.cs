using System.Text.RegularExpressions;
using XlstmRun.Formats;
using XlstmRun.Formats.Quant;
using XlstmRun.Tests.Support;
using Xunit;

namespace XlstmRun.Tests.Formats;

/// <summary>
/// The weight-type table (GgmlTypes.All) is the one source of per-type facts: these tests check that it is consistent
/// with itself, and that the places that cannot ask it at run time (the GLSL shaders) carry the same numbers.
/// </summary>
public partial class WeightTypeTableTests
{
    [Fact]
    public void IndicesAreDenseAndIdsNamesAndFileTypesUnique()
    {
        var all = GgmlTypes.All;
        Assert.Equal(Enumerable.Range(0, all.Count), all.Select(t => t.Index));
        Assert.Equal(all.Count, all.Select(t => t.Type).Distinct().Count());
        Assert.Equal(all.Count, all.Select(t => t.Name).Distinct().Count());
        Assert.Equal(all.Count, all.Select(t => t.FileType).Distinct().Count());
        // every value of the enum has a row, and nothing else is known
        Assert.Equal(Enum.GetValues<GgmlType>().Order(), all.Select(t => t.Type).Order());
        Assert.False(GgmlTypes.IsKnown(3));
        Assert.False(GgmlTypes.IsKnown(1000));
    }

    [Fact]
    public void NamesParseBackInAnyCaseAndUnknownNamesAreBadInput()
    {
        foreach (var t in GgmlTypes.All)
        {
            Assert.Equal(t.Type, GgmlTypes.Parse(t.Name));
            Assert.Equal(t.Type, GgmlTypes.Parse(t.Name.ToUpperInvariant()));
        }
        var e = Assert.Throws<BadInputException>(() => GgmlTypes.Parse("q5_k"));
        foreach (var t in GgmlTypes.All) Assert.Contains(t.Name, e.Message);
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void EncodedRowsHaveTheTablesSizeAndDecodeWithinTheTypesRange(GgmlType type)
    {
        var info = GgmlTypes.Info(type);
        int n = info.BlockSize * 8;
        var rng = new Random(11);
        var x = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var bytes = new byte[GgmlTypes.RowBytes(type, n)];
        Assert.Equal(n / info.BlockSize * info.BlockBytes, bytes.Length);
        Quantizer.EncodeRow(type, x, bytes);   // throws unless the row is exactly the table's size
        var y = new float[n];
        Quantizer.DecodeRow(type, bytes, y);
        for (int b = 0; b < n / info.BlockSize; b++)
        {
            var blk = x.AsSpan(b * info.BlockSize, info.BlockSize);
            float amax = 0;
            foreach (var v in blk) amax = MathF.Max(amax, MathF.Abs(v));
            // a quantized block's step is at most amax / (QuantMax / 2); plain floats round to well under 1 %
            float bound = info.Quantized ? amax / (info.QuantMax / 2) : amax * 1e-2f;
            for (int i = 0; i < info.BlockSize; i++)
                Assert.True(MathF.Abs(y[b * info.BlockSize + i] - blk[i]) <= bound, $"{info.Name} block {b} element {i}");
        }
        if (info.Quantized)
        {
            // the scale is the f16 at the start of each block: zeroing it zeroes the block
            for (int b = 0; b < n / info.BlockSize; b++) bytes.AsSpan(b * info.BlockBytes, info.ScaleBytes).Clear();
            Quantizer.DecodeRow(type, bytes, y);
            Assert.All(y, v => Assert.Equal(0f, v));
        }
    }

    [Fact]
    public void ShaderWeightTypeNumbersAreTheTableIndices()
    {
        string glsl = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "shaders", "weights.glsl"));
        var defines = WtDefine().Matches(glsl).ToDictionary(m => m.Groups[1].Value, m => int.Parse(m.Groups[2].Value));
        Assert.Equal(GgmlTypes.All.Count, defines.Count);
        foreach (var t in GgmlTypes.All)
        {
            Assert.True(defines.TryGetValue(t.Name.ToUpperInvariant(), out int v), $"shaders/weights.glsl has no WT_{t.Name.ToUpperInvariant()}");
            Assert.Equal(t.Index, v);
        }
        // wt_is_quant() names exactly the quantized types
        var isQuant = IsQuantBody().Match(glsl);
        Assert.True(isQuant.Success, "shaders/weights.glsl: wt_is_quant() not found");
        var named = WtName().Matches(isQuant.Groups[1].Value).Select(m => m.Groups[1].Value).Order();
        Assert.Equal(GgmlTypes.QuantizedTypes.Select(t => GgmlTypes.Name(t).ToUpperInvariant()).Order(), named);
    }

    public static TheoryData<GgmlType> Types()
    {
        var d = new TheoryData<GgmlType>();
        foreach (var t in GgmlTypes.All) d.Add(t.Type);
        return d;
    }

    [GeneratedRegex(@"#define\s+WT_([A-Z0-9_]+)\s+(\d+)u?")]
    private static partial Regex WtDefine();

    [GeneratedRegex(@"bool\s+wt_is_quant\(\)\s*\{([^}]*)\}")]
    private static partial Regex IsQuantBody();

    [GeneratedRegex(@"WT_([A-Z0-9_]+)")]
    private static partial Regex WtName();
}
