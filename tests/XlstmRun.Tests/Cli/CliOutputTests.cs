using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using XlstmRun.Formats.Gguf;
using XlstmRun.Tests.Support;
using Xunit;
using static XlstmRun.Tests.Support.CliRunner;

namespace XlstmRun.Tests.Cli;

/// <summary>
/// Clean output through the binary: text alone on stdout, stderr on a line of its own, -q / --no-perf, no escape
/// codes unless asked on a terminal, `| head` ends generation at once, honest sizes in info and bench, bench formats.
/// </summary>
public class CliOutputTests(CliModels m) : IClassFixture<CliModels>
{
    private string M => Q(m.Model);
    private static readonly string DefaultModel = Path.Combine(TestPaths.RepoRoot, "models", "default", "default.gguf");

    private static Result Ok(Result r)
    {
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        return r;
    }

    [Fact]
    public void ClosedStdoutEndsGenerationAtOnceAndQuietly()
    {
        string dir = TestPaths.TempDir();
        string state = Path.Combine(dir, "s.state"), err = Path.Combine(dir, "err.txt"), outFile = Path.Combine(dir, "out.txt");
        var r = Shell.Run($"xr -m {M} -p 'And God said' -n 20000 --ignore-eos --temp 0 --backend cpu --save-state {Q(state)} 2>{Q(err)} " +
                          $"| head -c 200 > {Q(outFile)}; echo \"status ${{PIPESTATUS[0]}}\"");
        Assert.Equal("status 141\n", r.Stdout);
        Assert.Equal("", File.ReadAllText(err));
        Assert.Equal(200, new FileInfo(outFile).Length);
        // the state was saved where generation stopped: far from the 20000 tokens asked for
        long position = BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(state).AsSpan(28));
        Assert.InRange(position, 5L, 10_000L);
    }

    [Fact]
    public void StdoutIsTheTextAloneAndStderrStartsOnItsOwnLine()
    {
        string args = $"-m {M} -p \"Once upon a time\" -n 6 --temp 0 --backend cpu";
        string text = JsonDocument.Parse(Ok(Run(args + " --json")).Stdout).RootElement.GetProperty("text").GetString()!;
        var separate = Ok(Run(args));
        Assert.Equal(text, separate.Stdout);
        Assert.Matches(@"^ +load time = ", separate.Stderr);

        // both on one pipe: the timings start on a line of their own even when the text ends mid-line
        var joined = Shell.Run($"xr {args} 2>&1 | cat");
        string expectedStart = text.EndsWith('\n') ? text : text + "\n";
        Assert.StartsWith(expectedStart, joined.Stdout);
        Assert.Matches(@"^ +load time = ", joined.Stdout[expectedStart.Length..]);
    }

    [Fact]
    public void QuietNoPerfAndCtxSize()
    {
        string args = $"-m {M} -p hi -n 4 --temp 0 --backend cpu";
        var plain = Ok(Run(args));
        var q = Ok(Run(args + " -q"));
        Assert.Equal(plain.Stdout, q.Stdout);
        Assert.Equal("", q.Stderr);
        var np = Ok(Run(args + " --no-perf"));
        Assert.Equal(plain.Stdout, np.Stdout);
        Assert.DoesNotContain("time =", np.Stderr);
        var c = Ok(Run(args + " -c 4096"));
        Assert.Equal(plain.Stdout, c.Stdout);
        Assert.Single(Regex.Matches(c.Stderr, "ctx-size"));
        Assert.Contains("no context limit", c.Stderr);
        Assert.Equal("", Ok(Run(args + " --ctx-size 4096 -q")).Stderr);
        var both = Run(args + " -q -v");
        Assert.Equal(2, both.ExitCode);
        Assert.Contains("not both", both.Stderr);
    }

    [Fact]
    public void NoEscapeCodesUnlessColorIsAskedOnATerminal()
    {
        string dir = TestPaths.TempDir();
        string log = Path.Combine(dir, "tty.log"), outFile = Path.Combine(dir, "out.txt"), bin = Shell.Bin;
        string gen = $"{bin} -m {Q(DefaultModel)} -p 'And God said' -n 8 --temp 0 --backend cpu";
        // stdin and stderr a terminal, stdout a file: nothing anywhere may hold ESC (the runtime used to write ESC[?1h ESC=)
        Ok(Shell.Run($"script -qec {Tmux.Sh(gen + " > " + Q(outFile))} {Q(log)} > /dev/null"));
        Assert.DoesNotContain('\u001b', File.ReadAllText(outFile));
        Assert.DoesNotContain('\u001b', File.ReadAllText(log));
        Assert.NotEqual("", File.ReadAllText(outFile).Trim());
        // everything on the terminal, no --color: still no escape codes
        Ok(Shell.Run($"script -qec {Tmux.Sh(gen)} {Q(log)} > /dev/null"));
        Assert.DoesNotContain('\u001b', File.ReadAllText(log));
        Ok(Shell.Run($"script -qec {Tmux.Sh($"{bin} info -m {Q(DefaultModel)}")} {Q(log)} > /dev/null"));
        Assert.DoesNotContain('\u001b', File.ReadAllText(log));
        // --color on a terminal: the prompt in colour before the text
        Ok(Shell.Run($"script -qec {Tmux.Sh(gen + " --color")} {Q(log)} > /dev/null"));
        Assert.Contains("\u001b[33mAnd God said\u001b[0m", File.ReadAllText(log));
        // --color with stdout a file: no escape codes in the file
        Ok(Shell.Run($"script -qec {Tmux.Sh(gen + " --color > " + Q(outFile))} {Q(log)} > /dev/null"));
        Assert.DoesNotContain('\u001b', File.ReadAllText(outFile));
    }

    /// <summary>"13.3 MiB" → bytes, checking the number against the exact count within the rounding of one decimal.</summary>
    private static void AssertHonestSize(string shown, long exact)
    {
        var mt = Regex.Match(shown, @"^([\d.]+) (B|KiB|MiB|GiB)$");
        Assert.True(mt.Success, $"'{shown}' is not a size with a unit");
        double v = double.Parse(mt.Groups[1].Value, CultureInfo.InvariantCulture);
        double unit = mt.Groups[2].Value switch { "B" => 1, "KiB" => 1024, "MiB" => 1024 * 1024, _ => 1024.0 * 1024 * 1024 };
        Assert.True(v >= 1 && v < 1024, $"'{shown}': the unit does not suit the size");
        Assert.InRange(exact / unit, v - 0.051, v + 0.051);
    }

    [Fact]
    public void InfoShowsHonestSizesForASmallModel()
    {
        var r = Ok(Run($"info -m {Q(m.Plain)}"));
        using var f = GgufFile.Open(m.Plain);
        long bytes = f.TensorNames.Sum(n => f.Tensor(n).Bytes), parms = f.TensorNames.Sum(n => f.Tensor(n).Elements);
        var w = Regex.Match(r.Stdout, @"weights: +([\d,]+) bytes \(([^)]+)\)");
        Assert.True(w.Success, r.Stdout);
        Assert.Equal(bytes.ToString("N0", CultureInfo.InvariantCulture), w.Groups[1].Value);
        AssertHonestSize(w.Groups[2].Value, bytes);
        var p = Regex.Match(r.Stdout, @"parameters: +([\d,]+) \(([\d.]+) K\)");
        Assert.True(p.Success, r.Stdout);
        Assert.InRange(parms / 1e3, double.Parse(p.Groups[2].Value, CultureInfo.InvariantCulture) - 0.051, double.Parse(p.Groups[2].Value, CultureInfo.InvariantCulture) + 0.051);
        var s = Regex.Match(r.Stdout, @"state: +([\d,]+) floats = ([^ ]+ [KMG]?i?B) per sequence");
        Assert.True(s.Success, r.Stdout);
        AssertHonestSize(s.Groups[2].Value, long.Parse(s.Groups[1].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture) * 4);
        Assert.DoesNotContain("0.00", r.Stdout);
    }

    /// <summary>One CSV line split into fields (RFC 4180: quoted fields may hold commas and doubled quotes).</summary>
    private static string[] CsvFields(string line)
    {
        var fields = new List<string>();
        var f = new System.Text.StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { f.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else f.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { fields.Add(f.ToString()); f.Clear(); }
            else f.Append(c);
        }
        fields.Add(f.ToString());
        return [.. fields];
    }

    [Fact]
    public void BenchTableHasHonestSizesAndTheOtherFormatsParse()
    {
        string args = $"bench -m {Q(m.Plain)} --backend cpu -p 8 -n 8 -r 2 --probe-mib 16";
        var md = Ok(Run(args));
        using var f = GgufFile.Open(m.Plain);
        long bytes = f.TensorNames.Sum(n => f.Tensor(n).Bytes);
        var rows = md.Stdout.Split('\n').Where(l => l.StartsWith("| xlstm", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, rows.Count);
        foreach (var row in rows)
        {
            var cells = row.Split('|').Select(c => c.Trim()).ToArray();
            AssertHonestSize(cells[2], bytes);
            Assert.DoesNotContain("0.00", cells[3]);
            // a share of the probe above 100 % only with the mark that points at the cache note
            var pct = Regex.Match(cells[10], @"^([\d.]+) %( \*)?$");
            if (pct.Success && double.Parse(pct.Groups[1].Value, CultureInfo.InvariantCulture) > 100)
            {
                Assert.True(pct.Groups[2].Success, row);
                Assert.Contains("* above 100 %: the ", md.Stdout);
            }
        }

        var csv = Ok(Run(args + " -o csv")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(CsvFields).ToList();
        Assert.Equal(3, csv.Count);
        Assert.Equal(["model", "size_bytes", "params"], csv[0][..3]);
        Assert.All(csv, f => Assert.Equal(csv[0].Length, f.Length));
        Assert.Equal(bytes.ToString(CultureInfo.InvariantCulture), csv[1][1]);
        Assert.Equal(["pp8", "tg8"], csv.Skip(1).Select(f => f[Array.IndexOf(csv[0], "test")]).ToArray());

        var jsonl = Ok(Run(args + " -o jsonl")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["pp8", "tg8"], jsonl.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("test").GetString()!).ToArray());
        Assert.All(jsonl, l => Assert.Equal(bytes, JsonDocument.Parse(l).RootElement.GetProperty("size_bytes").GetInt64()));

        var json = JsonDocument.Parse(Ok(Run(args + " -o json")).Stdout).RootElement;
        Assert.Equal(2, json.GetProperty("tests").GetArrayLength());
        Assert.Equal(bytes, json.GetProperty("size_bytes").GetInt64());
    }
}
