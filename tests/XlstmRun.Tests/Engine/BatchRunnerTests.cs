using XlstmRun.Backends.Cpu;
using XlstmRun.Backends.Vulkan;
using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Model;
using XlstmRun.Tests.Support;
using XlstmRun.Tests.Vulkan;
using Xunit;
using Xunit.Abstractions;

namespace XlstmRun.Tests.Engine;

/// <summary>
/// The multi-sequence engine against one sequence at a time: sequences with prompts of different lengths (one token,
/// a partial chunk, more than one chunk) step together; one ends and its slot takes a new sequence mid-run, while the
/// others keep their state. Every slot's logits at every step must be the single-sequence logits of its sequence (on
/// Vulkan bit for bit).
/// </summary>
[Collection("vulkan")]
public class BatchRunnerTests
{
    private readonly ITestOutputHelper _out;
    public BatchRunnerTests(ITestOutputHelper output) { _out = output; }

    private sealed record Seq(int[] Prompt, int[] Feed);

    /// <summary>Logits after the prompt and after each fed token, one sequence alone.</summary>
    private static float[][] Single(ModelWeights w, Seq s)
    {
        var r = new ModelRunner(w, null);
        int V = w.Config.Vocab;
        var res = new List<float[]>();
        var l = new float[V];
        r.Forward(s.Prompt, LogitsMode.Last, l);
        res.Add((float[])l.Clone());
        foreach (var id in s.Feed)
        {
            r.Forward([id], LogitsMode.Last, l);
            res.Add((float[])l.Clone());
        }
        r.Dispose();
        return res.ToArray();
    }

    public static TheoryData<string, GgmlType> Cases() => new()
    {
        { "cpu", GgmlType.F32 },
        { "cpu", GgmlType.Q8_0 },
        { "vulkan", GgmlType.F32 },
        { "vulkan", GgmlType.Q4_0 },
        // int8 activations: one token's plain products quantize in the matvec, several tokens' and norm-fused ones in quantize_x
        { "vulkan-int8", GgmlType.Q4_0 },
        { "vulkan-int8", GgmlType.Q8_0 },
        // 16 tokens and 4 rows per workgroup, 3 row groups one after the other
        { "vulkan-int8-wide", GgmlType.Q8_0 },
        // activations quantized by every matvec workgroup; by quantize_x for every product
        { "vulkan-int8-inline", GgmlType.Q4_0 },
        { "vulkan-int8-preq", GgmlType.Q4_0 },
        // several tokens' products through the tensor-core kernel (its emulated build), one token's through the matvec
        { "vulkan-int8-tc", GgmlType.Q4_0 },
        { "vulkan-int8-tc", GgmlType.Q8_0 },
    };

    private static IBackend NewBackend(string backend) => backend switch
    {
        "cpu" => new CpuBackend(2, int8Activations: false),
        "vulkan" => VulkanTestDevice.NewBackend(),
        "vulkan-int8" => VulkanTestDevice.NewBackend(options: VulkanTestDevice.IntDot),
        "vulkan-int8-wide" => VulkanTestDevice.NewBackend(options: VulkanTestDevice.IntDot with { VecGroup = 16, VecMatVec = new(128, 4, 1), VecRowLoop = 3 }),
        "vulkan-int8-inline" => VulkanTestDevice.NewBackend(options: VulkanTestDevice.IntDot with { PreQuantTokens = VulkanOptions.Never }),
        "vulkan-int8-preq" => VulkanTestDevice.NewBackend(options: VulkanTestDevice.IntDot with { PreQuantTokens = 1 }),
        "vulkan-int8-tc" => VulkanTestDevice.NewBackend(options: VulkanTestDevice.IntDot with { TensorMatVec = 2 }),
        _ => throw new ArgumentException(backend),
    };

    [Theory, MemberData(nameof(Cases))]
    public void SlotsStepTogetherExactlyAsSequencesAlone(string backend, GgmlType type)
    {
        var rf = new Reference(TestPaths.Fixture("tiny-fused"));
        using var file = GgufFile.Open(Models.Converted("tiny-fused", type));
        using IBackend be = NewBackend(backend);
        var w = new ModelWeights(file, be);
        int V = w.Config.Vocab;
        var ids = rf.InputIds.Concat(rf.ContinueIds).ToArray();
        int[] Take(int from, int n) => Enumerable.Range(0, n).Select(i => ids[(from + i) % ids.Length]).ToArray();
        // A: 1-token prompt; B: 70 tokens (a chunk and a remainder); C: 9 tokens, ends after 3 steps; D takes C's slot
        var seqs = new[] { new Seq(Take(0, 1), Take(5, 8)), new Seq(Take(10, 70), Take(90, 8)), new Seq(Take(20, 9), Take(40, 3)), new Seq(Take(50, 33), Take(100, 4)) };
        var want = seqs.Select(s => Single(w, s)).ToArray();

        using var br = new BatchRunner(w, 3);
        var argmax = new int[3];
        var logits = new float[3 * V];
        double worst = 0;
        // Vulkan: a token's matvec sums do not depend on how many tokens share the workgroup, and the multi-row step
        // kernel does each row's arithmetic as the one-row kernel: the logits must be the same bits (greedy outputs of
        // `batch --parallel B` equal B = 1). The CPU's multi-token products are GEMMs (another summation order).
        double bound = backend.StartsWith("vulkan") ? 0 : 3e-5;
        void Check(int seq, int step, ReadOnlySpan<float> got)
        {
            double e = Reference.RelErr(got.ToArray(), want[seq][step]);
            worst = Math.Max(worst, e);
            Assert.True(e <= bound, $"sequence {seq} step {step}: rel err {e:E2} (bound {bound:E0})");
        }
        // prefill the three slots
        int[] slotSeq = [0, 1, 2];
        int[] pos = new int[3];
        var l = new float[V];
        for (int s = 0; s < 3; s++)
        {
            br.Reset(s);
            br.Slot(s).Forward(seqs[s].Prompt, LogitsMode.Last, l);
            Check(s, 0, l);
        }
        for (int step = 0; step < 8; step++)
        {
            var tokens = new int[3];
            for (int s = 0; s < 3; s++) tokens[s] = seqs[slotSeq[s]].Feed[pos[s]];
            br.Step(tokens, V, argmax, logits);
            for (int s = 0; s < 3; s++)
            {
                pos[s]++;
                Check(slotSeq[s], pos[s], logits.AsSpan(s * V, V));
                // the device's argmax is the argmax of the logits it returned
                var row = logits.AsSpan(s * V, V);
                Assert.Equal(row.IndexOf(Max(row)), argmax[s]);
            }
            if (slotSeq[2] == 2 && pos[2] == seqs[2].Feed.Length)
            {
                // C is done: its slot takes D, the others go on
                slotSeq[2] = 3;
                pos[2] = 0;
                br.Reset(2);
                br.Slot(2).Forward(seqs[3].Prompt, LogitsMode.Last, l);
                Check(3, 0, l);
            }
            if (slotSeq[2] == 3 && pos[2] == seqs[3].Feed.Length) break;
        }
        _out.WriteLine($"{backend} {GgmlTypes.Name(type)}: worst rel err against single sequences {worst:E2}");
    }

    /// <summary>
    /// The slots' prefills share one workspace, kept between prompts: a longer prompt grows it (the other slots' plans
    /// name the old buffers and must be rebuilt), a slot refilled afterwards still gets its single-sequence logits.
    /// </summary>
    [Theory]
    [InlineData("cpu")]
    [InlineData("vulkan")]
    public void SlotPrefillsShareAWorkspaceThatGrows(string backend)
    {
        var rf = new Reference(TestPaths.Fixture("tiny-fused"));
        using var file = GgufFile.Open(Models.Converted("tiny-fused", GgmlType.F32));
        using IBackend be = NewBackend(backend);
        var w = new ModelWeights(file, be);
        int V = w.Config.Vocab;
        var ids = rf.InputIds.Concat(rf.ContinueIds).ToArray();
        int[] Take(int from, int n) => Enumerable.Range(0, n).Select(i => ids[(from + i) % ids.Length]).ToArray();
        // slot 0 feeds 9 tokens before and after slot 1 grows the workspace: its cached 9-token plan must not be reused
        var prompts = new[] { Take(3, 9), Take(11, 70), Take(30, 9), Take(50, 130) };
        using var br = new BatchRunner(w, 2);
        var l = new float[V];
        double bound = backend == "vulkan" ? 0 : 3e-5;
        for (int i = 0; i < prompts.Length; i++)
        {
            int slot = i % 2;
            br.Reset(slot);
            br.Slot(slot).Forward(prompts[i], LogitsMode.Last, l);
            var want = Single(w, new Seq(prompts[i], []))[0];
            double e = Reference.RelErr(l, want);
            Assert.True(e <= bound, $"prompt {i} in slot {slot}: rel err {e:E2}");
        }
    }

    /// <summary>
    /// Packed prefill: prompts of several slots share forward passes, each prompt's cell on its own rows and state. On
    /// Vulkan two classes: prompts of 16 tokens or more through the split-K GEMM (its emulated build here), shorter ones
    /// through the matvec (a token's sums depend on the other tokens in neither). Every slot's state must be the bits of
    /// its prompt fed alone, and so must the logits of the step after it. A prompt the backend does not pack (one token)
    /// is fed alone in the same call.
    /// </summary>
    [Theory]
    [InlineData("cpu", GgmlType.Q8_0)]
    [InlineData("vulkan-splitk", GgmlType.Q4_0)]
    public void PackedPromptsGiveEachSlotTheStateOfItsPromptAlone(string backend, GgmlType type)
    {
        var rf = new Reference(TestPaths.Fixture("tiny-fused"));
        using var file = GgufFile.Open(Models.Converted("tiny-fused", type));
        using IBackend be = backend == "vulkan-splitk"
            ? VulkanTestDevice.NewBackend(options: new VulkanOptions { EmulateCoopMat = new GemmTile(2, 2, 2, 2, 4), FewMinTokens = 16 })
            : NewBackend(backend);
        var w = new ModelWeights(file, be);
        int V = w.Config.Vocab;
        var ids = rf.InputIds.Concat(rf.ContinueIds).ToArray();
        int[] Take(int from, int n) => Enumerable.Range(0, n).Select(i => ids[(from + i) % ids.Length]).ToArray();
        // (the emulated tensor-core GEMM is slow on lavapipe: few and short prompts)
        var prompts = new[] { Take(0, 9), Take(7, 20), Take(3, 1), Take(11, 12), Take(30, 17) };
        var next = Enumerable.Range(0, prompts.Length).Select(i => ids[(i * 13 + 1) % ids.Length]).ToArray();
        int slots = prompts.Length;
        using var br = new BatchRunner(w, slots);
        for (int s = 0; s < slots; s++) br.Reset(s);
        br.Prefill(prompts.Select((p, s) => (s, p)).ToList());
        // split-K: 20 and 17 tokens; matvec: 9 and 12; the 1-token prompt alone
        if (backend == "vulkan-splitk") Assert.Equal((4, 1), (br.PackedPrompts, br.AlonePrompts));
        // each pass's two cells per block run as one group (stage by stage, no barrier between the prompts)
        if (be is VulkanBackend vb) Assert.Equal(2 * 2 * w.Config.Blocks, vb.GroupedCells);
        var states = new float[slots][];
        for (int s = 0; s < slots; s++)
        {
            states[s] = new float[w.Config.StateFloats];
            be.ReadState(be.StateSlot(br.State, s), states[s]);
        }
        var argmax = new int[slots];
        var logits = new float[slots * V];
        br.Step(next, V, argmax, logits);
        double bound = backend.StartsWith("vulkan") ? 0 : 3e-5;
        for (int s = 0; s < slots; s++)
        {
            using var one = new ModelRunner(w, null);
            one.Forward(prompts[s], LogitsMode.None, default);
            double es = Reference.RelErr(states[s], one.SaveState());
            var l = new float[V];
            one.Forward([next[s]], LogitsMode.Last, l);
            double el = Reference.RelErr(logits.AsSpan(s * V, V).ToArray(), l);
            _out.WriteLine($"prompt {s} ({prompts[s].Length} tokens): state rel err {es:E2}, next logits {el:E2}");
            Assert.True(es <= bound, $"prompt {s} ({prompts[s].Length} tokens): state rel err {es:E2}");
            Assert.True(el <= bound, $"prompt {s} ({prompts[s].Length} tokens): next logits rel err {el:E2}");
        }
    }

    private static float Max(ReadOnlySpan<float> a)
    {
        float m = float.NegativeInfinity;
        foreach (var v in a) m = Math.Max(m, v);
        return m;
    }
}
