using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace XlstmRun.Backends.Cpu;

/// <summary>
/// Wall-clock time per op class (`--profile` with the CPU backend): every op is timed on the calling thread, from its
/// start to the moment every worker has finished it, and filed under its class (matrix products by weight role and
/// type) and the phase of its forward pass (decode: one token; prefill: several; a pass starts at the embedding lookup). Matrix products also report the weight bytes they read per
/// second. "between ops" is the time of a token (or batch) not spent inside any op: the model runner's own work.
/// Nothing is allocated per op once every class has been seen.
/// </summary>
public sealed class CpuProfiler
{
    private readonly Dictionary<(string Op, bool Prefill), int> _index = new();
    private readonly List<(string Op, bool Prefill)> _keys = new();
    private readonly List<long> _ticks = new(), _calls = new(), _bytes = new();
    private readonly long[] _passWall = new long[2], _passes = new long[2], _passTokens = new long[2];
    private long _passStart, _lastEnd;
    private bool _inPass, _passPrefill;

    public static long Now() => Stopwatch.GetTimestamp();

    /// <summary>An embedding lookup starts a forward pass of <paramref name="tokens"/> tokens.</summary>
    public void BeginPass(int tokens, long t0)
    {
        ClosePass();
        _inPass = true;
        _passPrefill = tokens > 1;
        _passStart = t0;
        _passTokens[_passPrefill ? 1 : 0] += tokens;
    }

    /// <summary>Record an op that started at <paramref name="t0"/> and has just finished (in the phase of the current pass).</summary>
    public void End(string op, long t0, long bytes = 0)
    {
        long t1 = Stopwatch.GetTimestamp();
        bool prefill = _passPrefill;
        if (!_index.TryGetValue((op, prefill), out int i))
        {
            i = _keys.Count;
            _index[(op, prefill)] = i;
            _keys.Add((op, prefill));
            _ticks.Add(0); _calls.Add(0); _bytes.Add(0);
        }
        _ticks[i] += t1 - t0;
        _calls[i]++;
        _bytes[i] += bytes;
        _lastEnd = t1;
    }

    private void ClosePass()
    {
        if (!_inPass) return;
        int p = _passPrefill ? 1 : 0;
        _passWall[p] += Math.Max(0, _lastEnd - _passStart);
        _passes[p]++;
        _inPass = false;
    }

    public string Report(int threads)
    {
        ClosePass();
        var sb = new StringBuilder();
        double f = 1000.0 / Stopwatch.Frequency;
        string F(double x, string fmt) => x.ToString(fmt, CultureInfo.InvariantCulture);
        sb.AppendLine($"cpu profile ({threads} threads; wall time of each op on the calling thread, workers included):");
        for (int p = 0; p < 2; p++)
        {
            bool prefill = p == 1;
            if (_passes[p] == 0) continue;
            long tokens = _passTokens[p];
            double wall = _passWall[p] * f;
            sb.AppendLine(prefill
                ? $"prefill: {_passes[p]} batches, {tokens} tokens, {F(wall, "F1")} ms in passes = {F(wall / tokens, "F3")} ms/token"
                : $"decode: {tokens} tokens, {F(wall, "F1")} ms in passes = {F(wall / tokens, "F3")} ms/token");
            sb.AppendLine("  op                                    calls    total ms     ms/token   share     GB/s");
            var rows = Enumerable.Range(0, _keys.Count).Where(i => _keys[i].Prefill == prefill).OrderByDescending(i => _ticks[i]).ToList();
            double inOps = 0;
            foreach (int i in rows)
            {
                double ms = _ticks[i] * f;
                inOps += ms;
                string gbs = _bytes[i] > 0 ? F(_bytes[i] / (ms / 1000) / 1e9, "F1") : "";
                sb.AppendLine($"  {_keys[i].Op,-36} {_calls[i],7} {F(ms, "F1"),11} {F(ms / tokens, "F4"),12} {F(100 * ms / wall, "F1"),6} % {gbs,8}");
            }
            double gap = wall - inOps;
            sb.AppendLine($"  {"between ops",-36} {"",7} {F(gap, "F1"),11} {F(gap / tokens, "F4"),12} {F(100 * gap / wall, "F1"),6} %");
        }
        if (_passes[0] + _passes[1] == 0) sb.AppendLine("  (no forward passes)");
        return sb.ToString();
    }
}
