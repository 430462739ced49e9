using System.Runtime.InteropServices;
using XlstmRun.Formats;
using XlstmRun.Model;

namespace XlstmRun.Backends.Vulkan;

// The small ops: embedding gather, RmsNorm, head norm + output gate, SwiGLU, soft-cap, argmax.
public sealed unsafe partial class VulkanBackend
{
    [StructLayout(LayoutKind.Sequential)]
    internal struct EmbedPush { public uint RowStart, RowCount, Cols, WStride, ScaleBase, DOff, DStride, NTok; }
    [StructLayout(LayoutKind.Sequential)]
    internal struct RmsPush { public uint XOff, XStride, DOff, DStride, Cols, WOff; public float Eps; }
    [StructLayout(LayoutKind.Sequential)]
    internal struct HeadNormPush { public uint HOff, HStride, OOff, OStride, DOff, DStride, Dv, WOff; public float Eps; }
    [StructLayout(LayoutKind.Sequential)]
    internal struct SwiGluPush { public uint GOff, GStride, DOff, DStride, F, NTok; }
    [StructLayout(LayoutKind.Sequential)]
    internal struct SoftCapPush { public uint XOff, XStride, Cols, NTok; public float Cap; }
    [StructLayout(LayoutKind.Sequential)]
    internal struct ArgmaxPush { public uint XOff, XStride, ValidCols, OOff; }

    public void Embed(IWeight table, ITokenBuffer ids, ITensor dst)
    {
        var w = (VkWeight)table;
        var tok = (VkTokens)ids;
        var d = (VkTensor)dst;
        if (d.Cols != w.Cols) throw new ArgumentException($"embed: table has {w.Cols} columns, destination {d.Cols}");
        if (d.Rows > tok.Capacity) throw new ArgumentException("embed: more rows than token ids");
        var (db, dOff) = Act(d);
        var reads = new VkBuf?[w.Parts.Length + 1];
        for (int i = 0; i < w.Parts.Length; i++) reads[i] = w.Parts[i].Buf;
        reads[^1] = tok.Buf;
        _cs.BeginOp("embed." + GgmlTypes.Name(w.DevType), reads, [d.Buf]);
        var pipe = _embed.Pipeline([0, 0, w.WType]);
        foreach (var p in w.Parts)
        {
            var pc = new EmbedPush
            {
                RowStart = (uint)p.RowStart, RowCount = (uint)p.RowCount, Cols = (uint)w.Cols, WStride = p.WStride, ScaleBase = p.ScaleBase,
                DOff = dOff, DStride = (uint)d.Stride, NTok = (uint)d.Rows,
            };
            Run(_embed, pipe, [Whole(p.Buf), Whole(p.Buf), Whole(tok.Buf), db], &pc, Groups((w.Cols + 7) / 8, 64), (uint)d.Rows);
        }
        _cs.EndOp();
    }

    public void RmsNorm(ITensor x, IWeight w, ITensor dst, float eps)
    {
        var X = (VkTensor)x;
        var W = (VkWeight)w;
        var D = (VkTensor)dst;
        if (X.Cols != W.Cols || D.Cols != X.Cols || D.Rows != X.Rows) throw new ArgumentException("rmsnorm: shape mismatch");
        var (xb, xo) = Act(X);
        var (db, dOff) = Act(D);
        _cs.BeginOp("rmsnorm", [X.Buf, W.Parts[0].Buf], [D.Buf]);
        var pc = new RmsPush { XOff = xo, XStride = (uint)X.Stride, DOff = dOff, DStride = (uint)D.Stride, Cols = (uint)X.Cols, WOff = 0, Eps = eps };
        Run(_rmsnorm, _rmsnorm.Pipeline([_redWg]), [xb, Whole(W.Parts[0].Buf), db], &pc, (uint)X.Rows);
        _cs.EndOp();
    }

    public void HeadNormGate(ModelConfig c, ITensor h, ITensor qkvo, IWeight w, ITensor dst)
    {
        var H = (VkTensor)h;
        var Q = (VkTensor)qkvo;
        var W = (VkWeight)w;
        var D = (VkTensor)dst;
        if (H.Cols != c.VDim || D.Cols != c.VDim || W.Cols != c.VDim || Q.Rows != H.Rows || D.Rows != H.Rows) throw new ArgumentException("headnorm: shape mismatch");
        var (hb, ho) = Act(H);
        var (qb, qo) = Act(Q);
        var (db, dOff) = Act(D);
        _cs.BeginOp("headnorm", [H.Buf, Q.Buf, W.Parts[0].Buf], [D.Buf]);
        var pc = new HeadNormPush
        {
            HOff = ho, HStride = (uint)H.Stride, OOff = qo + (uint)c.OOffset, OStride = (uint)Q.Stride, DOff = dOff, DStride = (uint)D.Stride,
            Dv = (uint)c.DV, WOff = 0, Eps = c.NormEps,
        };
        Run(_headnorm, _headnorm.Pipeline([_redWg]), [hb, qb, Whole(W.Parts[0].Buf), db], &pc, (uint)c.Heads, (uint)H.Rows);
        _cs.EndOp();
    }

    public void SwiGlu(ITensor gateUp, ITensor dst)
    {
        var G = (VkTensor)gateUp;
        var D = (VkTensor)dst;
        if (G.Cols != 2 * D.Cols || G.Rows != D.Rows) throw new ArgumentException("swiglu: shape mismatch");
        var (gb, go) = Act(G);
        var (db, dOff) = Act(D);
        _cs.BeginOp("swiglu", [G.Buf], [D.Buf]);
        var pc = new SwiGluPush { GOff = go, GStride = (uint)G.Stride, DOff = dOff, DStride = (uint)D.Stride, F = (uint)D.Cols, NTok = (uint)D.Rows };
        Run(_swiglu, _swiglu.Pipeline([]), [gb, db], &pc, Groups(D.Cols, 256), (uint)D.Rows);
        _cs.EndOp();
    }

    public void SoftCap(ITensor x, float cap)
    {
        var X = (VkTensor)x;
        var (xb, xo) = Act(X);
        _cs.BeginOp("softcap", [X.Buf], [X.Buf]);
        var pc = new SoftCapPush { XOff = xo, XStride = (uint)X.Stride, Cols = (uint)X.Cols, NTok = (uint)X.Rows, Cap = cap };
        Run(_softcap, _softcap.Pipeline([]), [xb], &pc, Groups(X.Cols, 256), (uint)X.Rows);
        _cs.EndOp();
    }

    public void Argmax(ITensor x, int validCols, IIndexBuffer dst)
    {
        var X = (VkTensor)x;
        var I = (VkIndices)dst;
        if (X.Rows > I.Capacity) throw new ArgumentException("argmax: index buffer too small");
        if (validCols <= 0 || validCols > X.Cols) throw new ArgumentOutOfRangeException(nameof(validCols));
        var (xb, xo) = Act(X);
        _cs.BeginOp("argmax", [X.Buf], [I.Buf]);
        var pc = new ArgmaxPush { XOff = xo, XStride = (uint)X.Stride, ValidCols = (uint)validCols, OOff = 0 };
        Run(_argmax, _argmax.Pipeline([_redWg]), [xb, Whole(I.Buf)], &pc, (uint)X.Rows);
        _cs.EndOp();
    }
}
