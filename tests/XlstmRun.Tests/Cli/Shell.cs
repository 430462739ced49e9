using System.Diagnostics;
using XlstmRun.Tests.Support;

namespace XlstmRun.Tests.Cli;

/// <summary>Runs a bash command line (pipes, redirections, `script` for a pseudo-terminal); the function xr runs xlstm-run.</summary>
public static class Shell
{
    /// <summary>xlstm-run as a shell word (the native binary, or `dotnet xlstm-run.dll`).</summary>
    public static string Bin
    {
        get
        {
            var (file, prefix) = CliRunner.Binary();
            return Tmux.Sh(file) + (prefix.Length > 0 ? " " + prefix.Trim() : "");
        }
    }

    public static CliRunner.Result Run(string commandLine, string? workDir = null, int timeoutMs = 300_000)
    {
        var psi = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workDir ?? TestPaths.RepoRoot,
        };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("xr() { " + Bin + " \"$@\"; }\n" + commandLine);
        psi.Environment.Remove("XLSTM_MODEL");
        using var p = Process.Start(psi)!;
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        p.StandardInput.Close();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(true);
            throw new TimeoutException($"bash -c {commandLine} did not finish in {timeoutMs} ms");
        }
        p.WaitForExit();
        return new CliRunner.Result(p.ExitCode, so.Result, se.Result);
    }
}
