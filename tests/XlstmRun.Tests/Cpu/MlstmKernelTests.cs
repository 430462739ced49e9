using XlstmRun.Backends.Cpu;
using XlstmRun.Backends.Cpu.Kernels;
using Xunit;

namespace XlstmRun.Tests.Cpu;

/// <summary>The vectorized mLSTM cell (step and chunkwise forms) against the plain scalar implementation.</summary>
public unsafe class MlstmKernelTests
{
    private static double RelErr(ReadOnlySpan<float> a, ReadOnlySpan<float> b) => Support.Reference.RelErr(a, b);

    [Theory]
    [InlineData(16, 32)]
    [InlineData(20, 24)]   // not multiples of the vector widths
    [InlineData(256, 512)] // the 7B head
    public void StepMatchesScalar(int dqk, int dv)
    {
        var rng = new Random(dqk + dv);
        foreach (var level in Levels.Float)
        {
            var C1 = Buf.Random(dqk * dv, 1, 0.5f); var C2 = (float[])C1.Clone();
            var n1 = Buf.Random(dqk, 2, 0.5f); var n2 = (float[])n1.Clone();
            float m1 = 0.3f, m2 = 0.3f;
            var q = Buf.Random(dqk, 3); var k = Buf.Random(dqk, 4); var v = Buf.Random(dv, 5);
            var h1 = Buf.Zeros(dv); var h2 = new float[dv];
            for (int step = 0; step < 3; step++)
            {
                float ig = (float)rng.NextDouble() * 4 - 2, fg = (float)rng.NextDouble() * 6 - 1;
                MlstmKernels.Step(level, Buf.Ptr(C1), Buf.Ptr(n1), ref m1, Buf.Ptr(q), Buf.Ptr(k), Buf.Ptr(v), dqk, dv, ig, fg, 1e-6f, Buf.Ptr(h1));
                MlstmCpu.Step(C2, n2, ref m2, q.AsSpan(0, dqk), k.AsSpan(0, dqk), v.AsSpan(0, dv), ig, fg, 1e-6f, h2);
                Assert.InRange(RelErr(h1.AsSpan(0, dv), h2), 0, 1e-5);
                Assert.InRange(RelErr(C1.AsSpan(0, dqk * dv), C2), 0, 1e-6);
                Assert.InRange(RelErr(n1.AsSpan(0, dqk), n2), 0, 1e-6);
                Assert.Equal(m2, m1);
            }
        }
    }

    [Theory]
    [InlineData(16, 32, 64)]
    [InlineData(16, 32, 7)]
    [InlineData(20, 24, 1)]
    [InlineData(20, 24, 33)]
    [InlineData(256, 512, 64)]
    public void ChunkMatchesScalar(int dqk, int dv, int L)
    {
        int ldx = 2 * dqk + dv + 3, ldh = dv + 5;
        var rng = new Random(L);
        foreach (var level in Levels.Float)
        {
            var X = Buf.Random(L * ldx, 7);
            var C1 = Buf.Random(dqk * dv, 1, 0.5f); var C2 = (float[])C1.Clone();
            var n1 = Buf.Random(dqk, 2, 0.5f); var n2 = (float[])n1.Clone();
            float m1 = 1.5f, m2 = 1.5f;
            var ig = Buf.Zeros(L); var fg = Buf.Zeros(L);
            for (int j = 0; j < L; j++) { ig[j] = (float)rng.NextDouble() * 6 - 3; fg[j] = (float)rng.NextDouble() * 8 - 2; }
            var H1 = Buf.Zeros(L * ldh);
            var scratch = Buf.Zeros((int)MlstmKernels.ChunkScratch(L, dqk));
            MlstmKernels.Chunk(level, Buf.Ptr(C1), Buf.Ptr(n1), ref m1, L, dqk, dv, Buf.Ptr(X), Buf.Ptr(X) + dqk, Buf.Ptr(X) + 2 * dqk, ldx,
                Buf.Ptr(ig), Buf.Ptr(fg), 1e-6f, Buf.Ptr(H1), ldh, Buf.Ptr(scratch));
            // scalar reference on contiguous copies
            var Q = new float[L * dqk]; var K = new float[L * dqk]; var V = new float[L * dv]; var H2 = new float[L * dv];
            for (int j = 0; j < L; j++)
            {
                X.AsSpan(j * ldx, dqk).CopyTo(Q.AsSpan(j * dqk));
                X.AsSpan(j * ldx + dqk, dqk).CopyTo(K.AsSpan(j * dqk));
                X.AsSpan(j * ldx + 2 * dqk, dv).CopyTo(V.AsSpan(j * dv));
            }
            MlstmCpu.Chunk(C2, n2, ref m2, L, dqk, dv, Q, K, V, ig.AsSpan(0, L), fg.AsSpan(0, L), 1e-6f, H2, new float[2 * L + L * L]);
            var H1c = new float[L * dv];
            for (int j = 0; j < L; j++) H1.AsSpan(j * ldh, dv).CopyTo(H1c.AsSpan(j * dv));
            Assert.InRange(RelErr(H1c, H2), 0, 1e-5);
            Assert.InRange(RelErr(C1.AsSpan(0, dqk * dv), C2), 0, 1e-5);
            Assert.InRange(RelErr(n1.AsSpan(0, dqk), n2), 0, 1e-5);
            Assert.Equal(m2, m1, 5);
        }
    }
}
