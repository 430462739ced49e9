using XlstmRun.Tests.Support;
using Xunit;
using static XlstmRun.Tests.Support.CliRunner;

namespace XlstmRun.Tests.Cli;

/// <summary>
/// Every class of bad input ends with exit code 2, one "error: ..." line on stderr, no stack trace, nothing on stdout
/// and no output file (state, batch results, logits) left behind.
/// </summary>
public class CliBadInputTests(CliModels m) : IClassFixture<CliModels>
{
    // {model}: model with tokenizer; {plain}: without; {notgguf}, {trunchead}, {truncdata}: broken models;
    // {dir}: the fixture folder; {out}: an empty folder that must stay empty; {jsonarr}, {binary}, {empty}, {prompts}: batch inputs
    public static TheoryData<string, string, string?> Cases() => new()
    {
        { "missing model file", "-m {dir}/nope.gguf -p hi --save-state {out}/s.state", null },
        { "wrong magic", "-m {notgguf} -p hi --save-state {out}/s.state", null },
        { "truncated header", "-m {trunchead} -p hi --save-state {out}/s.state", null },
        { "truncated tensor data", "-m {truncdata} -p hi --save-state {out}/s.state", null },
        { "truncated model, batch", "batch -m {truncdata} -i {prompts} -o {out}/r.jsonl", null },
        { "id >= vocab", "generate -m {model} --ids 1,50304 --save-state {out}/s.state", null },
        { "id >= vocab, logits", "logits -m {plain} --ids 5,128 -o {out}/l.npy", null },
        { "negative id", "generate -m {model} --ids 1,-3 --save-state {out}/s.state", null },
        { "empty ids", "generate -m {model} --ids \"\" --save-state {out}/s.state", null },
        { "ids without numbers", "generate -m {model} --ids , --save-state {out}/s.state", null },
        { "ids that are not numbers", "generate -m {plain} --ids 1,x", null },
        { "detokenize id >= vocab", "detokenize -m {model} --ids 1,60000", null },
        { "batch input missing", "batch -m {model} -i {dir}/nope.jsonl -o {out}/r.jsonl", null },
        { "batch input is a folder", "batch -m {model} -i {dir} -o {out}/r.jsonl", null },
        { "batch input not JSONL", "batch -m {model} -i {jsonarr} -o {out}/r.jsonl", null },
        { "batch input not text", "batch -m {model} -i {binary} -o {out}/r.jsonl", null },
        { "batch input empty", "batch -m {model} -i {empty} -o {out}/r.jsonl", null },
        { "batch output folder missing", "batch -m {model} -i {prompts} -o {out}/no/such/r.jsonl", null },
        { "batch bad option", "batch -m {model} -i {prompts} -o {out}/r.jsonl --top-k -4", null },
        { "n not a number", "-m {model} -p hi -n abc", null },
        { "n below -1", "-m {model} -p hi -n -5 --save-state {out}/s.state", null },
        { "negative temperature", "-m {model} -p hi --temp -1 --save-state {out}/s.state", null },
        { "top-p above 1", "-m {model} -p hi --top-p 1.5", null },
        { "repeat penalty 0", "-m {model} -p hi --repeat-penalty 0", null },
        { "unknown backend", "-m {model} -p hi --backend foo", null },
        { "unknown option", "-m {model} -p hi --bogus", null },
        { "unknown option as prompt word", "-m {model} --bogus", null },
        { "two prompt sources", "-m {model} -p hi -f {prompts}", null },
        { "no prompt", "-m {model} --save-state {out}/s.state", "" },
        { "prompt file missing", "-m {model} -f {dir}/nope.txt --save-state {out}/s.state", null },
        { "text prompt, model without tokenizer", "-m {plain} -p hi --save-state {out}/s.state", null },
        { "tokenize, model without tokenizer", "tokenize -m {plain} -p hi", null },
        { "endless: -n -1 without EOS", "generate -m {plain} --ids 1 -n -1 --save-state {out}/s.state", null },
        { "state file not a state", "-m {model} -p hi --load-state {notgguf} --save-state {out}/s.state", null },
        { "state file missing", "-m {model} -p hi --load-state {dir}/nope.state --save-state {out}/s.state", null },
        { "state into a missing folder", "-m {model} -p hi --save-state {out}/no/such/s.state", null },
        { "stop string with ids", "generate -m {model} --ids 1,2 -r x", null },
    };

    [Theory, MemberData(nameof(Cases))]
    public void BadInputFailsWithOneLineAndExitCode2(string what, string args, string? stdin)
    {
        string outDir = Path.Combine(m.Dir, "out-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(outDir);
        string inputs = Path.Combine(m.Dir, "inputs");
        lock (typeof(CliBadInputTests))
        {
            if (!Directory.Exists(inputs))
            {
                string tmp = inputs + "-" + Guid.NewGuid().ToString("N")[..6];
                Directory.CreateDirectory(tmp);
                File.WriteAllText(Path.Combine(tmp, "arr.jsonl"), "[{\"id\": 1, \"prompt\": \"hi\"}]\n[2]\n");
                File.WriteAllBytes(Path.Combine(tmp, "bin.jsonl"), [0x7b, 0xff, 0xfe, 0x00, 0xc3, 0x28, 0x0a]);
                File.WriteAllText(Path.Combine(tmp, "empty.jsonl"), "\n\n");
                File.WriteAllText(Path.Combine(tmp, "prompts.jsonl"), "{\"id\": 1, \"prompt\": \"hi\", \"n_predict\": 2}\n");
                Directory.Move(tmp, inputs);
            }
        }
        string a = args
            .Replace("{model}", Q(m.Model)).Replace("{plain}", Q(m.Plain)).Replace("{notgguf}", Q(m.NotGguf))
            .Replace("{trunchead}", Q(m.TruncatedHeader)).Replace("{truncdata}", Q(m.TruncatedData))
            .Replace("{jsonarr}", Q(Path.Combine(inputs, "arr.jsonl"))).Replace("{binary}", Q(Path.Combine(inputs, "bin.jsonl")))
            .Replace("{empty}", Q(Path.Combine(inputs, "empty.jsonl"))).Replace("{prompts}", Q(Path.Combine(inputs, "prompts.jsonl")))
            .Replace("{dir}", m.Dir).Replace("{out}", outDir);
        var r = Run(a, stdin: stdin);
        OneErrorLine(r, what);
        Assert.Equal("", r.Stdout);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outDir));
    }
}
