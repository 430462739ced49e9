using XlstmRun.Formats.Gguf;

namespace XlstmRun.Model;

/// <summary>One block's weights as the backend prepared them.</summary>
public sealed record BlockWeights(IWeight AttnNorm, IWeight Qkvo, IWeight Gates, IWeight GatesBias, IWeight HeadNorm,
    IWeight Out, IWeight FfnNorm, IWeight GateUp, IWeight Down);

/// <summary>
/// A model's weights loaded into a backend once: shared by every runner of that model on that backend (one sequence
/// per <see cref="ModelRunner"/>, many in a <see cref="BatchRunner"/>).
/// </summary>
public sealed class ModelWeights
{
    public ModelWeights(GgufFile file, IBackend backend, ModelConfig? config = null)
    {
        Backend = backend;
        Config = config ?? ModelConfig.FromGguf(file);
        var c = Config;
        var shapes = TensorNames.All(c).ToDictionary(t => t.Name, t => t.Shape);
        IWeight W(string name) => backend.LoadWeight(file.Tensor(name, shapes[name]));
        Embedding = W(TensorNames.TokenEmbd);
        Blocks = new BlockWeights[c.Blocks];
        for (int b = 0; b < c.Blocks; b++)
        {
            Blocks[b] = new BlockWeights(W(TensorNames.AttnNorm(b)), W(TensorNames.Qkvo(b)), W(TensorNames.Gates(b)),
                W(TensorNames.GatesBias(b)), W(TensorNames.HeadNorm(b)), W(TensorNames.Out(b)), W(TensorNames.FfnNorm(b)),
                W(TensorNames.FfnGateUp(b)), W(TensorNames.FfnDown(b)));
        }
        OutNorm = c.AddOutNorm ? W(TensorNames.OutputNorm) : null;
        Output = W(TensorNames.Output);
    }

    public IBackend Backend { get; }
    public ModelConfig Config { get; }
    public IWeight Embedding { get; }
    public BlockWeights[] Blocks { get; }
    public IWeight? OutNorm { get; }
    public IWeight Output { get; }
}
