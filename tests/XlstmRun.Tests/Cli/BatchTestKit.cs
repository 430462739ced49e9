using System.Diagnostics;
using System.Text;
using System.Text.Json;
using XlstmRun.Tests.Support;
using Xunit;

namespace XlstmRun.Tests.Cli;

/// <summary>Helpers shared by the batch tests: scratch folders, reading records, starting a batch that can be killed.</summary>
public static class BatchTestKit
{
    public static string NewDir(CliModels m, string tag)
    {
        var d = Path.Combine(m.Dir, tag + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(d);
        return d;
    }

    public static CliRunner.Result Ok(CliRunner.Result r)
    {
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        return r;
    }

    /// <summary>Every line of an output file parsed (fails if one is not JSON: no half lines allowed).</summary>
    public static List<JsonElement> Records(string path) =>
        File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();

    /// <summary>The raw record of every input line; fails if a line has two.</summary>
    public static Dictionary<int, string> RawByLine(string path)
    {
        var d = new Dictionary<int, string>();
        foreach (var raw in File.ReadAllLines(path).Where(l => l.Length > 0))
        {
            using var doc = JsonDocument.Parse(raw);
            int line = doc.RootElement.GetProperty("line").GetInt32();
            Assert.True(d.TryAdd(line, raw), $"{Path.GetFileName(path)} has two records for line {line}");
        }
        return d;
    }

    public static string TextOf(JsonElement r) => r.GetProperty("text").GetString()!;

    /// <summary>A running xlstm-run with stderr collected; for tests that kill it.</summary>
    public sealed class Running : IDisposable
    {
        private readonly Process _p;
        private readonly StringBuilder _err = new();
        private readonly TaskCompletionSource _paused = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Running(string args, IDictionary<string, string>? env = null)
        {
            var (file, prefix) = CliRunner.Binary();
            var psi = new ProcessStartInfo(file, prefix + args)
            {
                RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true,
                UseShellExecute = false, WorkingDirectory = TestPaths.RepoRoot,
            };
            psi.Environment.Remove("XLSTM_MODEL");
            psi.Environment.Remove("XLSTM_BATCH_TEST_CRASH");
            if (env != null) foreach (var (k, v) in env) psi.Environment[k] = v;
            _p = new Process { StartInfo = psi };
            _p.ErrorDataReceived += (_, e) =>
            {
                if (e.Data == null) return;
                lock (_err) _err.AppendLine(e.Data);
                if (e.Data.Contains("test hook: paused")) _paused.TrySetResult();
            };
            _p.Start();
            _p.BeginErrorReadLine();
            _p.StandardOutput.ReadToEndAsync();
            _p.StandardInput.Close();
        }

        public string Stderr { get { lock (_err) return _err.ToString(); } }
        public bool HasExited => _p.HasExited;
        public int Pid => _p.Id;

        /// <summary>Waits for the pause-after hook's message.</summary>
        public void WaitPaused(int ms = 120_000)
        {
            var t = Task.WhenAny(_paused.Task, Task.Delay(ms)).Result;
            Assert.True(t == _paused.Task, "the batch did not reach its pause point:\n" + Stderr);
        }

        /// <summary>SIGKILL (Process.Kill on Unix), then the exit code.</summary>
        public int KillNine()
        {
            try { _p.Kill(); } catch (InvalidOperationException) { }
            return WaitExit();
        }

        public int WaitExit(int ms = 300_000)
        {
            Assert.True(_p.WaitForExit(ms), "the batch did not end:\n" + Stderr);
            _p.WaitForExit();
            return _p.ExitCode;
        }

        public void Dispose()
        {
            try { if (!_p.HasExited) _p.Kill(); } catch (InvalidOperationException) { }
            _p.Dispose();
        }
    }

    /// <summary>Runs a batch that kills itself through the crash hook and checks that it really died of SIGKILL.</summary>
    public static void RunKilled(string args, string hook)
    {
        var r = CliRunner.Run(args, env: new Dictionary<string, string> { ["XLSTM_BATCH_TEST_CRASH"] = hook });
        Assert.True(r.ExitCode == 137, $"{hook}: expected death by SIGKILL (137), got {r.ExitCode}: {r.Stderr}");
    }
}
