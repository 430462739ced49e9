using XlstmRun.Formats;
using XlstmRun.Formats.Gguf;
using XlstmRun.Formats.IO;
using XlstmRun.Formats.Quant;

namespace XlstmRun.Model.Conversion;

/// <summary>Produces rows of float32 values for one GGUF tensor (from a checkpoint, or random).</summary>
public interface IRowSource
{
    long Rows { get; }
    int Cols { get; }
    /// <summary>Fill dst (count·Cols floats) with rows [row, row+count).</summary>
    void Read(long row, int count, Span<float> dst);
}

/// <summary>
/// Writes an xLSTM GGUF file from row sources: chooses each tensor's type (norms, gate weights and biases stay F32;
/// matrices get the requested type, or F16 when their rows are not whole blocks), streams rows through the quantizer in
/// bounded memory, and reports progress.
/// </summary>
public static class ModelWriter
{
    public static GgmlType TypeFor(GgmlType wanted, bool quantizable, long rowLength) =>
        quantizable ? GgmlTypes.FitRow(wanted, rowLength) : GgmlType.F32;

    /// <summary>general.file_type as llama.cpp numbers it.</summary>
    public static uint FileType(GgmlType t) => GgmlTypes.Info(t).FileType;

    /// <summary>Write to <paramref name="path"/>, replacing it if it exists (commands check their outputs first and use the other overload).</summary>
    public static void Write(string path, ModelConfig c, GgmlType type, Func<string, IRowSource> sourceFor,
        Action<GgufWriter> addMetadata, IProgress<(long Done, long Total, string Tensor)>? progress, int threads = 0) =>
        Write(OutputFile.Check(path, "output", force: true, [], allowStdout: false), c, type, sourceFor, addMetadata, progress, threads);

    public static void Write(OutputFile output, ModelConfig c, GgmlType type, Func<string, IRowSource> sourceFor,
        Action<GgufWriter> addMetadata, IProgress<(long Done, long Total, string Tensor)>? progress, int threads = 0)
    {
        var w = new GgufWriter();
        c.WriteGguf(w);
        w.AddU32("general.file_type", FileType(type));
        if (GgmlTypes.IsQuantized(type)) w.AddU32("general.quantization_version", 2);
        addMetadata(w);
        long totalElems = TensorNames.All(c).Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));
        long done = 0;
        threads = threads > 0 ? threads : Environment.ProcessorCount;
        var par = new ParallelOptions { MaxDegreeOfParallelism = threads };
        // Buffers shared by all tensors (about 8 MiB of floats plus their encoding): memory stays flat whatever the model size.
        float[] f = [];
        byte[] bytes = [];
        foreach (var (name, shape, quantizable) in TensorNames.All(c))
        {
            var src = sourceFor(name);
            long rows = shape.Length == 1 ? 1 : shape[0];
            int cols = (int)shape[^1];
            if (src.Rows != rows || src.Cols != cols) throw new BadInputException($"tensor for '{name}' has shape [{src.Rows}, {src.Cols}], expected [{rows}, {cols}]");
            var tt = TypeFor(type, quantizable, cols);
            w.AddTensor(name, tt, shape, stream =>
            {
                int rowBytes = (int)GgmlTypes.RowBytes(tt, cols);
                int batch = (int)Math.Clamp((8L << 20) / (cols * 4L), 1, 4096);
                if (f.Length < (long)batch * cols) f = new float[(long)batch * cols];
                if (bytes.Length < (long)batch * rowBytes) bytes = new byte[(long)batch * rowBytes];
                for (long r = 0; r < rows; r += batch)
                {
                    int n = (int)Math.Min(batch, rows - r);
                    src.Read(r, n, f.AsSpan(0, n * cols));
                    Parallel.For(0, n, par, i =>
                        Quantizer.EncodeRow(tt, f.AsSpan(i * cols, cols), bytes.AsSpan(i * rowBytes, rowBytes)));
                    stream.Write(bytes, 0, n * rowBytes);
                    done += (long)n * cols;
                    progress?.Report((done, totalElems, name));
                }
            });
        }
        w.WriteTo(output);
    }
}
