using XlstmRun.Tests.Support;
using Xunit;

namespace XlstmRun.Tests.Cli;

/// <summary>
/// `make install PREFIX=…` / `make uninstall` / `make dist` with the binary under test (make's -o keeps it from being
/// rebuilt), then the installed or unpacked binary run from another directory with nothing pointing at a model: it
/// must find the default model it was installed with.
/// </summary>
public class CliInstallTests
{
    private static string NativeBinary()
    {
        var (file, prefix) = CliRunner.Binary();
        Assert.True(prefix.Length == 0, "these tests need the NativeAOT binary: run `make publish` (or set XLSTM_RUN_BIN)");
        return file;
    }

    private static CliRunner.Result Make(string target, string bin, string extra = "") =>
        Shell.Run($"make --no-print-directory -C {Tmux.Sh(TestPaths.RepoRoot)} {target} BIN={Tmux.Sh(bin)} -o {Tmux.Sh(bin)} {extra}");

    /// <summary>Runs a program with a clean environment for model lookup: HOME empty of models, no XLSTM_* variables.</summary>
    private static CliRunner.Result RunIsolated(string exe, string args, string workDir, string home) =>
        Shell.Run($"cd {Tmux.Sh(workDir)} && env -u XLSTM_MODEL -u XLSTM_HOME HOME={Tmux.Sh(home)} {Tmux.Sh(exe)} {args}");

    [Fact]
    public void InstallIntoAPrefixThenRunFromAnotherDirectoryThenUninstall()
    {
        string bin = NativeBinary();
        string root = TestPaths.TempDir(), prefix = Path.Combine(root, "prefix"), elsewhere = Path.Combine(root, "elsewhere"), home = Path.Combine(root, "home");
        Directory.CreateDirectory(elsewhere);
        Directory.CreateDirectory(home);
        var install = Make("install", bin, $"PREFIX={Tmux.Sh(prefix)}");
        Assert.True(install.ExitCode == 0, install.Stdout + install.Stderr);
        string exe = Path.Combine(prefix, "bin", "xlstm-run"), model = Path.Combine(prefix, "share", "xlstm-run", "default.gguf");
        Assert.True(File.Exists(exe) && File.Exists(model), install.Stdout);
        Assert.Equal(File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "models", "default", "default.gguf")), File.ReadAllBytes(model));

        var gen = RunIsolated(exe, "-p hi -n 8", elsewhere, home);
        Assert.True(gen.ExitCode == 0, gen.Stderr);
        Assert.NotEqual("", gen.Stdout.Trim());
        var info = RunIsolated(exe, "info", elsewhere, home);
        Assert.Contains($"file:          {model}", info.Stdout);

        var uninstall = Make("uninstall", bin, $"PREFIX={Tmux.Sh(prefix)}");
        Assert.True(uninstall.ExitCode == 0, uninstall.Stdout + uninstall.Stderr);
        Assert.False(File.Exists(exe));
        Assert.False(Directory.Exists(Path.Combine(prefix, "share", "xlstm-run")));
    }

    [Fact]
    public void DistTarballUnpacksToABinaryThatFindsItsModel()
    {
        string bin = NativeBinary();
        var dist = Make("dist", bin);
        Assert.True(dist.ExitCode == 0, dist.Stdout + dist.Stderr);
        var tarball = Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "build", "dist"), "xlstm-run-*.tar.gz").Single();
        string root = TestPaths.TempDir(), home = Path.Combine(root, "home");
        Directory.CreateDirectory(home);
        var untar = Shell.Run($"tar -C {Tmux.Sh(root)} -xzf {Tmux.Sh(tarball)} && tar -tzf {Tmux.Sh(tarball)}");
        Assert.True(untar.ExitCode == 0, untar.Stderr);
        var names = untar.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(n => n[(n.IndexOf('/') + 1)..]).ToHashSet();
        Assert.Contains("bin/xlstm-run", names);
        Assert.Contains("share/xlstm-run/default.gguf", names);
        Assert.Contains("README.md", names);
        Assert.Contains("share/xlstm-run/default-model-README.md", names);
        string top = Directory.GetDirectories(root, "xlstm-run-*").Single();
        var gen = RunIsolated(Path.Combine(top, "bin", "xlstm-run"), "-p hi -n 8", home, home);
        Assert.True(gen.ExitCode == 0, gen.Stderr);
        Assert.NotEqual("", gen.Stdout.Trim());
    }
}
