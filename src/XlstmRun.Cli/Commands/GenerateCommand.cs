using System.CommandLine;
using System.Text;
using XlstmRun.Formats;

namespace XlstmRun.Cli.Commands;

/// <summary>`generate` (also the default command): token-id mode for scripts; text prompts come with the tokenizer.</summary>
public static class GenerateCommand
{
    public static void AddTo(RootCommand root)
    {
        var mo = new ModelOptions();
        var ids = new Option<string?>("--ids") { Description = "Prompt as token ids, comma separated (no BOS is added)" };
        var n = new Option<int>("--n-predict", "-n") { Description = "Number of tokens to generate", DefaultValueFactory = _ => 32 };
        var temp = new Option<float>("--temp") { Description = "Sampling temperature (0 = greedy)", DefaultValueFactory = _ => 0f };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON" };
        var cmd = new Command("generate", "Generate a continuation of a prompt.");
        mo.AddTo(cmd);
        cmd.Options.Add(ids);
        cmd.Options.Add(n);
        cmd.Options.Add(temp);
        cmd.Options.Add(json);
        cmd.SetAction(pr => Program.Run(() =>
        {
            var prompt = Ids.FromOptions(pr.GetValue(ids), null);
            int count = pr.GetValue(n);
            if (count < 0) throw new BadInputException("-n must be at least 0");
            using var s = ModelSession.Open(pr, mo);
            Ids.CheckRange(prompt, s.Config.Vocab);
            var outIds = new List<int>();
            if (count > 0)
            {
                int next = s.Runner.ForwardGreedy(prompt, s.ValidVocab);
                outIds.Add(next);
                while (outIds.Count < count)
                {
                    next = s.Runner.StepGreedy(next, s.ValidVocab);
                    outIds.Add(next);
                }
                // The last generated token has not been fed yet; feed it so that a saved state continues after it.
                if (!string.IsNullOrEmpty(pr.GetValue(mo.SaveState))) s.Runner.Forward([next], Model.LogitsMode.None, default);
            }
            else s.Runner.Forward(prompt, Model.LogitsMode.None, default);
            if (pr.GetValue(json)) Console.WriteLine("{\"ids\":[" + string.Join(",", outIds) + "]}");
            else Console.WriteLine(string.Join(",", outIds));
            s.SaveStateIfAsked(pr, mo);
            return 0;
        }));
        root.Subcommands.Add(cmd);
    }
}
