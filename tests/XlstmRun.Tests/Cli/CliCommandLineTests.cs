using System.Text.Json;
using XlstmRun.Tests.Support;
using Xunit;
using static XlstmRun.Tests.Support.CliRunner;

namespace XlstmRun.Tests.Cli;

/// <summary>
/// Commands are commands (issue 13): unknown command words are errors with a suggestion, options before the command
/// work, `help` and `version`, parse errors in our words, llama.cpp habits (-ngl, -c are in CliOutputTests).
/// </summary>
public class CliCommandLineTests(CliModels m) : IClassFixture<CliModels>
{
    private string M => Q(m.Model);

    private static Result Ok(Result r)
    {
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        return r;
    }

    /// <summary>Exit code 2, one "error: " line holding <paramref name="text"/>, nothing on stdout.</summary>
    private static void UsageError(Result r, string text)
    {
        Assert.True(r.ExitCode == 2, $"exit {r.ExitCode}, stdout {r.Stdout}, stderr {r.Stderr}");
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, r.Stderr);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(text, lines[0]);
        Assert.Equal("", r.Stdout);
    }

    [Theory]
    [InlineData("tokenise -p hi", "unknown command 'tokenise': did you mean 'tokenize'?")]
    [InlineData("quantise a.gguf b.gguf q4_0", "did you mean 'quantize'?")]
    [InlineData("serve", "unknown command 'serve'")]
    [InlineData("run -p hi", "did you mean 'generate'?")]
    [InlineData("Once upon a time", "unknown command 'Once'")]
    [InlineData("-n 5 hello", "unknown command 'hello'")]
    [InlineData("generate hello", "unexpected word 'hello' after 'generate'")]
    public void AWordThatIsNoCommandIsAnError(string args, string text) => UsageError(Run($"-m {M} {args}", stdin: ""), text);

    [Fact]
    public void CommandsThatUsedToBePromptsAreCommands()
    {
        // these ran a 256-token generation with the words as the prompt
        Assert.Contains("Usage:", Ok(Run("chat --help")).Stdout);
        UsageError(Run($"quantize {Q(Path.Combine(m.Dir, "missing.gguf"))} {Q(Path.Combine(m.Dir, "q.gguf"))} q4_0"), "file not found");
        Assert.Contains("Commands:", Ok(Run("help")).Stdout);
    }

    [Fact]
    public void PromptWordsAfterDoubleDashOrOneQuotedPrompt()
    {
        const string greedy = "--temp 0 -n 4 --json";
        var p = JsonDocument.Parse(Ok(Run($"-m {M} {greedy} -p \"Once upon a time\"")).Stdout).RootElement;
        var dd = JsonDocument.Parse(Ok(Run($"-m {M} {greedy} -- Once upon a time")).Stdout).RootElement;
        var quoted = JsonDocument.Parse(Ok(Run($"-m {M} {greedy} \"Once upon a time\"")).Stdout).RootElement;
        var dash = JsonDocument.Parse(Ok(Run($"-m {M} {greedy} -- -5 degrees")).Stdout).RootElement;
        Assert.Equal(p.GetProperty("ids").ToString(), dd.GetProperty("ids").ToString());
        Assert.Equal(p.GetProperty("ids").ToString(), quoted.GetProperty("ids").ToString());
        Assert.Equal(p.GetProperty("prompt_tokens").GetInt32(), dd.GetProperty("prompt_tokens").GetInt32());
        Assert.True(dash.GetProperty("prompt_tokens").GetInt32() > 2);
    }

    [Fact]
    public void OptionsBeforeTheCommandApplyToIt()
    {
        var after = Ok(Run($"tokenize -m {M} -p \"hello world\""));
        var before = Ok(Run($"-m {M} tokenize -p \"hello world\""));
        Assert.Equal(after.Stdout, before.Stdout);
        // an option the command does not have is named as such
        UsageError(Run($"--temp 0 tokenize -m {M} -p hi"), "unknown option '--temp'");
    }

    [Fact]
    public void HelpAndVersion()
    {
        var overview = Ok(Run("help"));
        Assert.Equal(Ok(Run("--help")).Stdout, overview.Stdout);
        foreach (var c in new[] { "chat", "quantize", "generate", "tokenize", "perplexity", "help", "version" })
            Assert.Contains($"  {c} ", overview.Stdout);
        Assert.Equal(Ok(Run("tokenize --help")).Stdout, Ok(Run("help tokenize")).Stdout);
        UsageError(Run("help tokenise"), "did you mean 'tokenize'?");
        var v = Ok(Run("version"));
        Assert.Matches(@"^xlstm-run \d+\.\d+\.\d+", v.Stdout);
        Assert.Equal("xlstm-run " + Ok(Run("--version")).Stdout, v.Stdout);
    }

    [Theory]
    [InlineData("-p hi -s abc", "--seed: 'abc' is not an integer")]
    [InlineData("-p hi -n 1.5", "'1.5' is not an integer")]
    [InlineData("-p hi --temp warm", "'warm' is not a number")]
    [InlineData("-p", "-p needs a value")]
    [InlineData("-p hi --backend gpu", "--backend: 'gpu' is not one of auto, cpu, vulkan, opencl")]
    [InlineData("-p hi --temmp 0", "unknown option '--temmp': did you mean --temp?")]
    [InlineData("convert", "(required)")]
    [InlineData("perplexity", "missing --file (required)")]
    [InlineData("-p hi -ngl 99 --backend cpu", "give one of them")]
    public void ParseErrorsAreOneLineInOurWords(string args, string text)
    {
        var r = Run($"-m {M} {args}".Replace($"-m {M} convert", "convert").Replace($"-m {M} perplexity", $"perplexity -m {M}"), stdin: "");
        UsageError(r, text);
        Assert.DoesNotContain("System.", r.Stderr);
        Assert.DoesNotContain("Required argument missing", r.Stderr);
    }

    [Fact]
    public void NglZeroIsTheCpu()
    {
        var r = Ok(Run($"-m {M} -p hi -n 2 --temp 0 -ngl 0 -v"));
        Assert.Contains("backend: cpu", r.Stderr);
    }
}

/// <summary>-ngl N &gt; 0 asks for the GPU backend (Vulkan; lavapipe here).</summary>
[Collection("vulkan")]
public class CliGpuLayersTests(CliModels m) : IClassFixture<CliModels>
{
    [Fact]
    public void NglAboveZeroIsTheVulkanBackend()
    {
        var g = Run($"-m {Q(m.Model)} -p hi -n 2 --temp 0 -ngl 99 -v");
        Assert.True(g.ExitCode == 0, g.Stderr);
        Assert.Contains("backend: vulkan", g.Stderr);
        var c = Run($"-m {Q(m.Model)} -p hi -n 2 --temp 0 --backend cpu");
        Assert.Equal(c.Stdout, g.Stdout);
    }
}
