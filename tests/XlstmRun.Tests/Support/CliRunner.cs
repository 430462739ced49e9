using System.Diagnostics;

namespace XlstmRun.Tests.Support;

/// <summary>Runs the xlstm-run executable as a separate process (the published native binary when available).</summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    /// <summary>
    /// XLSTM_RUN_BIN (set by `make test` to the NativeAOT binary build/xlstm-run), else build/xlstm-run in the repo,
    /// else the framework-dependent build of the CLI project (run through `dotnet`).
    /// </summary>
    public static (string File, string PrefixArgs) Binary()
    {
        var env = Environment.GetEnvironmentVariable("XLSTM_RUN_BIN");
        if (!string.IsNullOrEmpty(env))
        {
            if (!File.Exists(env)) throw new FileNotFoundException($"XLSTM_RUN_BIN={env} does not exist");
            return (env, "");
        }
        var native = Path.Combine(TestPaths.RepoRoot, "build", "xlstm-run");
        if (File.Exists(native)) return (native, "");
        foreach (var cfg in new[] { "Release", "Debug" })
        {
            var dll = Path.Combine(TestPaths.RepoRoot, "src", "XlstmRun.Cli", "bin", cfg, "net10.0", "xlstm-run.dll");
            if (File.Exists(dll)) return ("dotnet", "\"" + dll + "\" ");
        }
        throw new FileNotFoundException("xlstm-run binary not found: run `make publish` (or build src/XlstmRun.Cli) first");
    }

    public static Result Run(string args, string? stdin = null, IDictionary<string, string>? env = null, string? workDir = null, int timeoutMs = 300_000)
    {
        var (file, prefix) = Binary();
        var psi = new ProcessStartInfo(file, prefix + args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workDir ?? TestPaths.RepoRoot,
        };
        psi.Environment.Remove("XLSTM_MODEL");
        if (env != null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        if (stdin != null) p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(true);
            throw new TimeoutException($"xlstm-run {args} did not finish in {timeoutMs} ms");
        }
        p.WaitForExit();
        return new Result(p.ExitCode, so.Result, se.Result);
    }

    /// <summary>
    /// Bad input as the project promises to report it: exit code 2 and one stderr line "error: …", no stack trace, no
    /// exception name, no escape character. Returns that line.
    /// </summary>
    public static string OneErrorLine(Result r, string what)
    {
        Xunit.Assert.True(r.ExitCode == 2, $"{what}: exit code {r.ExitCode}, stderr: {r.Stderr}");
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Xunit.Assert.True(lines.Length == 1, $"{what}: stderr should be one line, got:\n{r.Stderr}");
        Xunit.Assert.StartsWith("error: ", lines[0]);
        Xunit.Assert.DoesNotContain("   at ", r.Stderr);
        Xunit.Assert.DoesNotContain("Exception", r.Stderr);
        Xunit.Assert.DoesNotContain('\u001b', r.Stderr);
        return lines[0];
    }

    /// <summary>Quote an argument for the command line.</summary>
    public static string Q(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
