using System.Globalization;
using XlstmRun.Formats;

namespace XlstmRun.Cli.Batch;

/// <summary>
/// <c>--shard K/N</c>: this process runs the lines whose index (line number − 1) is ≡ K (mod N). The split depends only
/// on line numbers, so it is the same on every rerun and N processes cover the file exactly once.
/// </summary>
internal readonly record struct ShardSpec(int Index, int Count)
{
    public static readonly ShardSpec Whole = new(0, 1);

    public bool Contains(int line) => Count == 1 || (line - 1) % Count == Index;

    public override string ToString() => $"{Index}/{Count}";

    public const string AutoHelp =
        "--shard auto reads $SLURM_ARRAY_TASK_ID and $SLURM_ARRAY_TASK_COUNT (a Slurm job array; $SLURM_ARRAY_TASK_MIN\n" +
        "and $SLURM_ARRAY_TASK_STEP are taken into account), else $JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) with\n" +
        "the count from --shard-count or $XLSTM_SHARD_COUNT.";

    /// <summary>Parses "K/N" or "auto" (then <paramref name="env"/> gives the variables and <paramref name="count"/> is
    /// --shard-count).</summary>
    public static ShardSpec Parse(string? text, int? count, Func<string, string?> env)
    {
        if (string.IsNullOrEmpty(text))
        {
            if (count != null) throw new BadInputException("--shard-count goes with --shard auto");
            return Whole;
        }
        if (text == "auto") return Auto(count, env);
        if (count != null) throw new BadInputException("--shard-count goes with --shard auto (with --shard K/N, N is the count)");
        int slash = text.IndexOf('/');
        if (slash < 0 || !TryInt(text[..slash], out int k) || !TryInt(text[(slash + 1)..], out int n))
            throw new BadInputException($"--shard: expected K/N (e.g. 0/4) or auto, got {Shown.Quote(text)}");
        return Checked(k, n, "--shard");
    }

    private static ShardSpec Auto(int? count, Func<string, string?> env)
    {
        string? id = env("SLURM_ARRAY_TASK_ID");
        if (!string.IsNullOrEmpty(id))
        {
            int taskId = EnvInt(env, "SLURM_ARRAY_TASK_ID")!.Value;
            int n = count ?? EnvInt(env, "SLURM_ARRAY_TASK_COUNT")
                ?? throw new BadInputException("--shard auto: $SLURM_ARRAY_TASK_ID is set but $SLURM_ARRAY_TASK_COUNT is not");
            int min = EnvInt(env, "SLURM_ARRAY_TASK_MIN") ?? 0, step = EnvInt(env, "SLURM_ARRAY_TASK_STEP") ?? 1;
            if (step < 1) throw new BadInputException($"--shard auto: $SLURM_ARRAY_TASK_STEP is {step}");
            if ((taskId - min) % step != 0)
                throw new BadInputException($"--shard auto: task id {taskId} is not $SLURM_ARRAY_TASK_MIN ({min}) plus a multiple of $SLURM_ARRAY_TASK_STEP ({step})");
            return Checked((taskId - min) / step, n, "--shard auto (Slurm: index = ($SLURM_ARRAY_TASK_ID − $SLURM_ARRAY_TASK_MIN) / $SLURM_ARRAY_TASK_STEP)");
        }
        if (!string.IsNullOrEmpty(env("JOB_COMPLETION_INDEX")))
        {
            int k = EnvInt(env, "JOB_COMPLETION_INDEX")!.Value;
            int n = count ?? EnvInt(env, "XLSTM_SHARD_COUNT")
                ?? throw new BadInputException("--shard auto: $JOB_COMPLETION_INDEX is set but not the number of shards: give --shard-count N (the Job's completions) or set $XLSTM_SHARD_COUNT");
            return Checked(k, n, "--shard auto (Kubernetes: $JOB_COMPLETION_INDEX)");
        }
        throw new BadInputException("--shard auto: neither $SLURM_ARRAY_TASK_ID (a Slurm job array) nor $JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; use --shard K/N");
    }

    private static ShardSpec Checked(int k, int n, string what)
    {
        if (n < 1) throw new BadInputException($"{what}: the number of shards must be 1 or more (got {n})");
        if (k < 0 || k >= n) throw new BadInputException($"{what}: shard index {k} is not in 0..{n - 1}");
        return new ShardSpec(k, n);
    }

    private static int? EnvInt(Func<string, string?> env, string name)
    {
        string? v = env(name);
        if (string.IsNullOrEmpty(v)) return null;
        if (!TryInt(v, out int x)) throw new BadInputException($"--shard auto: ${name} is {Shown.Quote(v)}, not an integer");
        return x;
    }

    private static bool TryInt(string s, out int v) =>
        int.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out v);
}
