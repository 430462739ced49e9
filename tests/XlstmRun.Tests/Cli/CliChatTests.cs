using System.Buffers.Binary;
using XlstmRun.Tests.Support;
using Xunit;
using static XlstmRun.Tests.Support.CliRunner;

namespace XlstmRun.Tests.Cli;

/// <summary>
/// `chat` / `-i` through the binary: in a real pseudo-terminal (tmux) and with piped stdin. The reference for every
/// turn is the same conversation run as a chain of `generate --save-state` / `--load-state` calls, which feeds each
/// turn's new text into the saved recurrent state: chat must produce the same replies and, byte for byte, the same
/// state file (its position included).
/// </summary>
public class CliChatTests
{
    private static readonly string Model = Path.Combine(TestPaths.RepoRoot, "models", "default", "default.gguf");
    private const string Common = "--temp 0 -n 12 --backend cpu";

    private static Result Ok(Result r)
    {
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        return r;
    }

    /// <summary>The conversation as generate calls: replies, and the state file after each turn.</summary>
    private static (string[] Replies, string[] States) Reference(string dir, params string[] turns)
    {
        var replies = new string[turns.Length];
        var states = new string[turns.Length];
        for (int i = 0; i < turns.Length; i++)
        {
            states[i] = Path.Combine(dir, $"ref-{i}-{Guid.NewGuid():N}.state");
            string load = i > 0 ? $"--load-state {Q(states[i - 1])}" : "";
            replies[i] = Ok(Run($"-m {Q(Model)} {Common} -p {Q(turns[i])} {load} --save-state {Q(states[i])}", stdin: "")).Stdout;
        }
        return (replies, states);
    }

    private static long Position(string state) => BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(state).AsSpan(28));

    private static void Save(Tmux t, string file) => t.Enter($"/save {file}", s => s.Contains($"saved the state to {file}"), "/save");

    /// <summary>Text as capture-pane shows it: no trailing spaces on a line, none around the whole.</summary>
    private static string Norm(string s) => string.Join("\n", s.Split('\n').Select(l => l.TrimEnd())).Trim();

    private static string WithNewline(string s) => s.EndsWith('\n') ? s : s + "\n";

    [Fact]
    public void PipedTurnsContinueTheStateAndPrintOnlyTheReplies()
    {
        string dir = TestPaths.TempDir();
        var (replies, states) = Reference(dir, "And God said", " unto Moses");
        string saved = Path.Combine(dir, "chat.state");
        var r = Ok(Run($"chat -m {Q(Model)} {Common}", stdin: $"And God said\n unto Moses\n/save {saved}\n", workDir: dir));
        Assert.Equal(WithNewline(replies[0]) + WithNewline(replies[1]), r.Stdout);
        Assert.Equal(File.ReadAllBytes(states[1]), File.ReadAllBytes(saved));
        Assert.True(Position(saved) > 20);
    }

    [Fact]
    public void InteractiveOptionIsChat()
    {
        string dir = TestPaths.TempDir();
        var a = Ok(Run($"-i -m {Q(Model)} {Common}", stdin: "And God said\n", workDir: dir));
        var b = Ok(Run($"chat -m {Q(Model)} {Common}", stdin: "And God said\n", workDir: dir));
        Assert.Equal(b.Stdout, a.Stdout);
        Assert.NotEqual("", a.Stdout.Trim());
    }

    [Fact]
    public void PrefixSuffixAndContinuedLinesAreFedAsOneTurn()
    {
        string dir = TestPaths.TempDir();
        // "In the\" + "beginning" is one input "In the\nbeginning"; the turn is prefix + input + suffix
        var (replies, states) = Reference(dir, "Verse: In the\nbeginning\n");
        string saved = Path.Combine(dir, "chat.state");
        var r = Ok(Run($"chat -m {Q(Model)} {Common} --in-prefix \"Verse: \" --in-suffix \"\\n\"", stdin: $"In the\\\nbeginning\n/save {saved}\n", workDir: dir));
        Assert.Equal(WithNewline(replies[0]), r.Stdout);
        Assert.Equal(File.ReadAllBytes(states[0]), File.ReadAllBytes(saved));
    }

    [Fact]
    public void CommandsSaveLoadResetAndErrorsKeepTheSessionGoing()
    {
        string dir = TestPaths.TempDir();
        var (replies, states) = Reference(dir, "And God said", " unto Moses");
        string a1 = Path.Combine(dir, "a1.state"), b2 = Path.Combine(dir, "b2.state"), c1 = Path.Combine(dir, "c1.state");
        Ok(Run($"chat -m {Q(Model)} {Common}", stdin: $"And God said\n/save {a1}\n", workDir: dir));
        // a new session: /load, then the second turn continues exactly as the first session would have
        var r = Ok(Run($"chat -m {Q(Model)} {Common}", stdin: $"/nonsense\n/load {Path.Combine(dir, "missing.state")}\n/load {a1}\n unto Moses\n/save {b2}\n/save {b2}\n/reset\nAnd God said\n/save {c1}\n", workDir: dir));
        Assert.Equal(WithNewline(replies[1]) + WithNewline(replies[0]), r.Stdout);
        Assert.Equal(File.ReadAllBytes(states[1]), File.ReadAllBytes(b2));
        Assert.Equal(File.ReadAllBytes(states[0]), File.ReadAllBytes(c1));
        var errors = r.Stderr.Split('\n').Where(l => l.StartsWith("error: ", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, errors.Count); // unknown command, missing state file, /save over an existing file
        Assert.Contains("unknown command /nonsense", errors[0]);
        Assert.Contains("state file not found", errors[1]);
        Assert.Contains("/save!", errors[2]);
    }

    [Fact]
    public void TwoTurnsInATerminalContinueTheStateAndSaveLoadContinuesIdentically()
    {
        string dir = TestPaths.TempDir();
        var (replies, states) = Reference(dir, "And God said", " unto Moses");
        using (var t = new Tmux($"chat -m {Q(Model)} {Common}", dir))
        {
            t.WaitFor(s => Tmux.Prompts(s) == 1, "the first prompt");
            string s1 = t.Enter("And God said", s => Tmux.Prompts(s) == 2, "the reply to the first turn");
            Assert.Contains(Norm(replies[0]), s1);
            Save(t, "first.state");
            string s2 = t.Enter(" unto Moses", s => Tmux.Prompts(s) == 4, "the reply to the second turn");
            Assert.Contains(Norm(replies[1]), s2);
            Save(t, "second.state");
            t.Keys("C-d");
            Assert.Equal(0, t.WaitExit());
        }
        Assert.Equal(File.ReadAllBytes(states[0]), File.ReadAllBytes(Path.Combine(dir, "first.state")));
        Assert.Equal(File.ReadAllBytes(states[1]), File.ReadAllBytes(Path.Combine(dir, "second.state")));

        // a new session in a terminal: /load the first turn's state, the same second turn gives the same reply and state
        using (var t = new Tmux($"chat -m {Q(Model)} {Common}", dir))
        {
            t.WaitFor(s => Tmux.Prompts(s) == 1, "the first prompt");
            t.Enter("/load first.state", s => s.Contains("loaded the state from first.state"), "/load");
            string s2 = t.Enter(" unto Moses", s => Tmux.Prompts(s) == 3, "the reply after /load");
            Assert.Contains(Norm(replies[1]), s2);
            Save(t, "again.state");
            t.Type("/exit");
            t.Keys("Enter");
            Assert.Equal(0, t.WaitExit());
        }
        Assert.Equal(File.ReadAllBytes(states[1]), File.ReadAllBytes(Path.Combine(dir, "again.state")));
    }

    [Fact]
    public void LineEditingHistoryAndContinuationInATerminal()
    {
        string dir = TestPaths.TempDir();
        var (replies, states) = Reference(dir, "And God said", "Let there\nbe light");
        using var t = new Tmux($"chat -m {Q(Model)} {Common}", dir);
        t.WaitFor(s => Tmux.Prompts(s) == 1, "the first prompt");
        // typo, then fixed with the arrows, Home/End and Delete: "And Gd sayd" -> "And God said"
        t.Type("xAnd Gd sayd");
        t.Keys("Left");
        t.Keys("BSpace");
        t.Type("i");
        t.Keys("Home");
        t.Keys("DC");
        t.Keys("Right", "Right", "Right", "Right", "Right");
        t.Type("o");
        t.Keys("End");
        t.WaitFor(s => s.Split('\n').Contains("> And God said"), "the edited line");
        t.Keys("Enter");
        t.WaitFor(s => Tmux.Prompts(s) == 2, "the first reply");
        // a line ending in \ continues on the next line ("... " prompt)
        t.Enter("Let there\\", s => s.Split('\n').Any(l => l.StartsWith("...", StringComparison.Ordinal)), "the continuation prompt");
        string s2 = t.Enter("be light", s => Tmux.Prompts(s) == 3, "the second reply");
        Assert.Contains(Norm(replies[1]), s2);
        Save(t, "two.state");
        Assert.Equal(File.ReadAllBytes(states[1]), File.ReadAllBytes(Path.Combine(dir, "two.state")));
        // history: Up recalls the earlier inputs, newest first
        t.Keys("Up");
        t.WaitFor(s => s.Split('\n')[^1] == "> /save two.state", "history: the last input");
        t.Keys("Up", "Up", "Up");
        t.WaitFor(s => s.Split('\n')[^1] == "> And God said", "history: the first input");
        t.Keys("Down", "Down", "Down", "Down");
        t.WaitFor(s => s.Split('\n')[^1] == ">", "history: back to the empty line");
        t.Keys("C-d");
        Assert.Equal(0, t.WaitExit());
    }

    [Fact]
    public void CtrlCStopsTheReplyAndASecondCtrlCExits()
    {
        string dir = TestPaths.TempDir();
        using var t = new Tmux($"chat -m {Q(Model)} --temp 0 -n 1000000 --ignore-eos --backend cpu", dir);
        t.WaitFor(s => Tmux.Prompts(s) == 1, "the first prompt");
        t.Type("And God said");
        t.Keys("Enter");
        // the reply runs until stopped: wait for some of it, then Ctrl-C
        t.WaitFor(s => s.Split('\n').SkipWhile(l => l != "> And God said").Skip(1).Sum(l => l.Length) > 200, "a long reply");
        t.Keys("C-c");
        string s1 = t.WaitFor(s => Tmux.Prompts(s) == 2, "the prompt after Ctrl-C");
        Assert.Null(Tmux.ExitCode(s1));
        // still alive and answering: the state kept what was generated, and a new turn works
        t.Keys("C-c");
        Assert.Equal(0, t.WaitExit());
    }

    [Fact]
    public void CtrlCOnAnEmptyPromptWarnsOnceThenExits()
    {
        string dir = TestPaths.TempDir();
        using var t = new Tmux($"chat -m {Q(Model)} {Common}", dir);
        t.WaitFor(s => Tmux.Prompts(s) == 1, "the first prompt");
        t.Type("some text");
        t.Keys("C-c"); // drops the line being typed
        t.WaitFor(s => Tmux.Prompts(s) == 2, "a fresh prompt");
        t.Keys("C-c");
        t.WaitFor(s => s.Contains("(Ctrl-C again or Ctrl-D to exit)"), "the hint");
        Assert.Null(Tmux.ExitCode(t.Screen()));
        t.Keys("C-c");
        Assert.Equal(0, t.WaitExit());
    }
}
