namespace XlstmRun.Model;

/// <summary>
/// GGUF tensor names of an xLSTM model (documented in docs/gguf-xlstm.md). Projections that read the same input are
/// stored fused (rows concatenated), so each is one matrix-vector product: q|k|v|o, i|f (with bias), gate|up.
/// </summary>
public static class TensorNames
{
    public const string TokenEmbd = "token_embd.weight";
    public const string OutputNorm = "output_norm.weight";
    public const string Output = "output.weight";
    public static string AttnNorm(int b) => $"blk.{b}.attn_norm.weight";
    public static string Qkvo(int b) => $"blk.{b}.mlstm_qkvo.weight";
    public static string Gates(int b) => $"blk.{b}.mlstm_if.weight";
    public static string GatesBias(int b) => $"blk.{b}.mlstm_if.bias";
    public static string HeadNorm(int b) => $"blk.{b}.mlstm_norm.weight";
    public static string Out(int b) => $"blk.{b}.mlstm_out.weight";
    public static string FfnNorm(int b) => $"blk.{b}.ffn_norm.weight";
    public static string FfnGateUp(int b) => $"blk.{b}.ffn_gate_up.weight";
    public static string FfnDown(int b) => $"blk.{b}.ffn_down.weight";

    /// <summary>Every tensor of a model with its PyTorch-order shape and whether it is a big matrix (quantizable) or must stay F32.</summary>
    public static IEnumerable<(string Name, long[] Shape, bool Quantizable)> All(ModelConfig c)
    {
        yield return (TokenEmbd, [c.Vocab, c.Hidden], true);
        for (int b = 0; b < c.Blocks; b++)
        {
            yield return (AttnNorm(b), [c.Hidden], false);
            yield return (Qkvo(b), [c.QkvoDim, c.Hidden], true);
            yield return (Gates(b), [2 * c.Heads, c.Hidden], false);
            yield return (GatesBias(b), [2 * c.Heads], false);
            yield return (HeadNorm(b), [c.VDim], false);
            yield return (Out(b), [c.Hidden, c.VDim], true);
            yield return (FfnNorm(b), [c.Hidden], false);
            yield return (FfnGateUp(b), [2 * c.FfnDim, c.Hidden], true);
            yield return (FfnDown(b), [c.Hidden, c.FfnDim], true);
        }
        if (c.AddOutNorm) yield return (OutputNorm, [c.Hidden], false);
        yield return (Output, [c.Vocab, c.Hidden], true);
    }
}
