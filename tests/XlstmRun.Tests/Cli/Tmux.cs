using System.Diagnostics;
using XlstmRun.Tests.Support;

namespace XlstmRun.Tests.Cli;

/// <summary>
/// Runs xlstm-run in a real pseudo-terminal: a tmux session on a private server (so nothing of the user's tmux is
/// touched), with keys typed through send-keys and the screen read through capture-pane. After the program exits the
/// pane shows "[exit N]".
/// </summary>
public sealed class Tmux : IDisposable
{
    private readonly string _socket = "xlstm-test-" + Guid.NewGuid().ToString("N")[..10];
    public string Dir { get; }

    /// <param name="args">xlstm-run's arguments, already quoted for sh.</param>
    public Tmux(string args, string dir, IDictionary<string, string>? env = null, int width = 220, int height = 60)
    {
        Dir = dir;
        var (file, prefix) = CliRunner.Binary();
        string script = Path.Combine(dir, $"run-{_socket}.sh");
        // the shell survives the Ctrl-Cs sent to the program (a handler, not an ignore: the program gets the default)
        var lines = new List<string> { "#!/bin/sh", "trap 'true' INT", "unset XLSTM_MODEL XLSTM_HOME", $"cd {Sh(dir)}" };
        if (env != null) lines.AddRange(env.Select(kv => $"export {kv.Key}={Sh(kv.Value)}"));
        lines.Add($"{Sh(file)} {prefix}{args}");
        lines.Add("echo \"[exit $?]\"");
        lines.Add("sleep 3600");
        File.WriteAllText(script, string.Join("\n", lines) + "\n");
        Run("-f", "/dev/null", "-L", _socket, "new-session", "-d", "-s", "t", "-x", width.ToString(), "-y", height.ToString(), "sh " + Sh(script));
    }

    public static string Sh(string s) => "'" + s.Replace("'", "'\\''") + "'";

    private static string Run(params string[] args)
    {
        var psi = new ProcessStartInfo("tmux") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start tmux");
        string o = p.StandardOutput.ReadToEnd(), e = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"tmux {string.Join(' ', args)}: exit {p.ExitCode}: {e}");
        return o;
    }

    /// <summary>The whole pane (history included), wrapped lines joined, trailing spaces removed.</summary>
    public string Screen() =>
        string.Join("\n", Run("-L", _socket, "capture-pane", "-p", "-J", "-S", "-", "-t", "t").Split('\n').Select(l => l.TrimEnd())).TrimEnd('\n');

    /// <summary>Types text literally (no key names).</summary>
    public void Type(string text) => Run("-L", _socket, "send-keys", "-t", "t", "-l", "--", text);

    /// <summary>Presses keys by tmux name: Enter, Up, Left, C-c, C-d, ...</summary>
    public void Keys(params string[] keys) => Run(["-L", _socket, "send-keys", "-t", "t", .. keys]);

    /// <summary>Types a line, presses Enter and waits until <paramref name="until"/> holds for the screen.</summary>
    public string Enter(string line, Func<string, bool> until, string what)
    {
        Type(line);
        Keys("Enter");
        return WaitFor(until, what);
    }

    /// <summary>Waits for the program to end; its exit code.</summary>
    public int WaitExit() => ExitCode(WaitFor(s => ExitCode(s) != null, "the program to exit"))!.Value;

    /// <summary>Polls the screen until <paramref name="done"/> holds; a timeout fails with the screen in the message.</summary>
    public string WaitFor(Func<string, bool> done, string what, int timeoutMs = 120_000)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            string s = Screen();
            if (done(s)) return s;
            if (sw.ElapsedMilliseconds > timeoutMs) throw new TimeoutException($"waited {timeoutMs} ms for {what}; screen:\n{s}");
            Thread.Sleep(50);
        }
    }

    /// <summary>Lines of the screen that are a chat prompt ("&gt;" followed by the input, if any).</summary>
    public static int Prompts(string screen) => screen.Split('\n').Count(l => l == ">" || l.StartsWith("> ", StringComparison.Ordinal));

    /// <summary>The exit code shown once the program has ended, or null.</summary>
    public static int? ExitCode(string screen)
    {
        var m = System.Text.RegularExpressions.Regex.Match(screen, @"\[exit (\d+)\]");
        return m.Success ? int.Parse(m.Groups[1].Value) : null;
    }

    public void Dispose()
    {
        try { Run("-L", _socket, "kill-server"); } catch (Exception) { }
    }
}
