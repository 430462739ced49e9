using XlstmRun.Backends.Vulkan;
using Xunit;

namespace XlstmRun.Tests.Vulkan;

/// <summary>
/// The XLSTM_VK_* settings of the prefill GEMM (docs/backends.md): what each accepts, and a malformed value is an error
/// naming the variable (read through a lookup, so that no test changes the process environment under another).
/// </summary>
public class VulkanOptionsTests
{
    private static VulkanOptions Read(params (string Name, string Value)[] vars)
    {
        var d = vars.ToDictionary(v => v.Name, v => v.Value);
        return VulkanOptions.FromVariables(n => d.TryGetValue(n, out var v) ? v : null);
    }

    [Fact]
    public void GemmSettingsAreRead()
    {
        var o = Read(("XLSTM_VK_GEMM_XF16", "65536"), ("XLSTM_VK_GEMM_DEQUANT", "17"), ("XLSTM_VK_GEMM_DEQUANT_MB", "3"),
                     ("XLSTM_VK_GEMM_RSTAGES", "1"), ("XLSTM_VK_GEMM_TOKEN_MAJOR", "0"), ("XLSTM_VK_GEMM_CM2", "1"),
                     ("XLSTM_VK_CM2_TILE", "128,64,256,48"));
        Assert.Equal(VulkanOptions.Never, o.GemmHalfXTokens);
        Assert.Equal(17, o.GemmDequantTokens);
        Assert.Equal(3 << 20, o.GemmDequantBytes);
        Assert.Equal(1, o.GemmRegisterStages);
        Assert.False(o.GemmTokenMajor);
        Assert.True(o.GemmCoopMat2);
        Assert.Equal(new Cm2Tile(128, 64, 256, 48), o.Cm2Tile);
        // unset variables leave the defaults of a plain VulkanOptions
        var none = Read();
        var plain = new VulkanOptions();
        Assert.Equal((plain.GemmHalfXTokens, plain.GemmDequantTokens, plain.GemmRegisterStages, plain.GemmTokenMajor, plain.GemmCoopMat2, plain.Cm2Tile),
                     (none.GemmHalfXTokens, none.GemmDequantTokens, none.GemmRegisterStages, none.GemmTokenMajor, none.GemmCoopMat2, none.Cm2Tile));
    }

    [Fact]
    public void ReduceScatterIsOnUnlessTurnedOff()
    {
        Assert.True(Read().ReduceScatter);
        Assert.True(Read(("XLSTM_VK_RSCATTER", "1")).ReduceScatter);
        Assert.False(Read(("XLSTM_VK_RSCATTER", "0")).ReduceScatter);
    }

    [Fact]
    public void TensorCoreMatvecsAreOffUnlessSet()
    {
        Assert.Equal(0, Read().TensorMatVec);
        Assert.Equal(1, Read(("XLSTM_VK_TCVEC", "1")).TensorMatVec);
        Assert.Equal(2, Read(("XLSTM_VK_TCVEC", "2")).TensorMatVec);
    }

    [Theory]
    [InlineData("XLSTM_VK_TCVEC", "3")]
    [InlineData("XLSTM_VK_GEMM_RSTAGES", "3")]
    [InlineData("XLSTM_VK_GEMM_XF16", "0")]
    [InlineData("XLSTM_VK_GEMM_DEQUANT", "lots")]
    [InlineData("XLSTM_VK_GEMM_DEQUANT_MB", "5000")]
    [InlineData("XLSTM_VK_CM2_TILE", "256,100,128,32")]
    [InlineData("XLSTM_VK_CM2_TILE", "1024,128,128,32")]
    [InlineData("XLSTM_VK_CM2_TILE", "256,128,128")]
    public void MalformedGemmSettingsNameTheVariable(string name, string value)
    {
        var e = Assert.Throws<ArgumentException>(() => Read((name, value)));
        Assert.StartsWith($"{name}={value}:", e.Message);
    }
}
