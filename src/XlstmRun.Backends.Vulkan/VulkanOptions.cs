using System.Globalization;

namespace XlstmRun.Backends.Vulkan;

/// <summary>A decode matvec's launch shape: invocations per workgroup, rows per workgroup, 16-byte weight chunks per
/// invocation and loop iteration.</summary>
public readonly record struct MatVecShape(uint Wg, uint Rows, uint Unroll)
{
    public bool Valid => Wg is >= 32 and <= 256 && (Wg & (Wg - 1)) == 0 && Rows is >= 1 and <= 16 && Unroll is >= 1 and <= 4;
    public override string ToString() => $"{Wg},{Rows},{Unroll}";
}

/// <summary>A cooperative-matrix GEMM tile: WarpsM × WarpsN subgroups of 32, each owning TM × TN tiles of 16 × 16;
/// K steps of 8·Bkv.</summary>
public readonly record struct GemmTile(uint WarpsM, uint WarpsN, uint TM, uint TN, uint Bkv)
{
    public uint Threads => 32 * WarpsM * WarpsN;
    public uint BM => 16 * TM * WarpsM;
    public uint BN => 16 * TN * WarpsN;
    /// <summary>Shared memory of the kernel: two f16 tiles per operand (rows of Bkv + 1 uvec4), reused by the epilogue's
    /// staging (1 KiB per subgroup).</summary>
    public uint SharedBytes => Math.Max(2 * (BM + BN) * (Bkv + 1) * 16, WarpsM * WarpsN * 1024);
    public bool Valid => WarpsM is >= 1 and <= 4 && WarpsN is >= 1 and <= 4 && TM is >= 1 and <= 8 && TN is >= 1 and <= 8 && Bkv is 2 or 4 or 8 or 16;
    public override string ToString() => $"{WarpsM},{WarpsN},{TM},{TN},{Bkv}";
}

/// <summary>A workgroup-scope cooperative-matrix GEMM tile (VK_NV_cooperative_matrix2, shaders/cm2/matmul_cm2.comp):
/// invocations, tokens × weight rows per workgroup, K per product.</summary>
public readonly record struct Cm2Tile(uint Threads, uint BM, uint BN, uint BK)
{
    public bool Valid => Threads is 32 or 64 or 128 or 256 or 512 && BM is >= 16 and <= 256 && BN is >= 16 and <= 256 && BK is >= 16 and <= 128 &&
                         BM % 16 == 0 && BN % 16 == 0 && BK % 16 == 0;
    public override string ToString() => $"{Threads},{BM},{BN},{BK}";
}

/// <summary>
/// Settings of the Vulkan backend, fixed at creation. The command line sets <see cref="Profile"/> and
/// <see cref="Float32"/>; the XLSTM_VK_* environment variables (<see cref="FromEnvironment"/>) exist for measurements
/// and diagnosis and are listed, with every other backend setting, in docs/backends.md.
/// </summary>
public sealed record VulkanOptions
{
    /// <summary>Per-op GPU timestamps (--profile).</summary>
    public bool Profile { get; init; }
    /// <summary>--precision f32: float32 activations in every matrix product (no f16 tensor-core GEMM, no int8
    /// activations in quantized matvecs). docs/precision.md.</summary>
    public bool Float32 { get; init; }
    /// <summary>Fuse neighbouring ops of a plan into one kernel (XLSTM_VK_FUSE=0: every op on its own).</summary>
    public bool Fusion { get; init; } = true;
    /// <summary>Prefill GEMM on cooperative matrices where the device has them (XLSTM_VK_COOPMAT=0: off).</summary>
    public bool CoopMat { get; init; } = true;
    /// <summary>Q8_0/Q4_0 matvecs with int8 activations and integer dot products: null = where the device says they are
    /// accelerated (XLSTM_VK_INTDOT=0/1 forces).</summary>
    public bool? IntDot { get; init; }
    /// <summary>Matvec launch shape for every weight type (XLSTM_VK_MATVEC=wg,rows[,unroll]); null = per-type defaults.</summary>
    public MatVecShape? MatVec { get; init; }
    /// <summary>Cooperative-matrix GEMM tile (XLSTM_VK_GEMM=warpsM,warpsN,tm,tn,bkv); null = default for the device.</summary>
    public GemmTile? Gemm { get; init; }
    /// <summary>Products with at most this many tokens run as matvecs (XLSTM_VK_VEC_TOKENS, 1..1024): the multi-sequence
    /// decode step and short feeds, with each weight load serving <see cref="VecGroup"/> tokens; larger ones run as GEMMs.</summary>
    public int VecTokens { get; init; } = 64;
    /// <summary>Prompt feeds (not decode steps) of <see cref="FewMinTokens"/>..<see cref="VecTokens"/> tokens, and packed
    /// prompts of several sequences, run their products as split-K GEMMs on tensor cores (XLSTM_VK_FEW_MIN, 2..1025;
    /// above VecTokens: never): K in segments of <see cref="FewKSegment"/>, each its own workgroup, the partials summed in
    /// order, so that a token's result does not depend on how many tokens share the product.</summary>
    /// <remarks>2: every feed of several tokens, so that `batch` packs every prompt through the split-K GEMM, which is cheap per
    /// token in a pass of many prompts; a prompt alone must take the same kernel to keep its bits. For a short prompt alone
    /// the matvec would be a little faster (H200, Q4_0 7B: pp16 1,014 tok/s with the matvec, 970 with split-K; µs per
    /// product at 16 tokens, matvec against split-K: gate|up 98.7 / 118.6), while packed prefill in `batch` took 10.1 ms
    /// per prompt with those below 24 tokens on the matvec and 7.5 with all on split-K (B = 16; B = 64: 9.2 / 6.7 ms);
    /// docs/NOTES.md, sessions 8 and 9.</remarks>
    public int FewMinTokens { get; init; } = 2;
    /// <summary>K per workgroup of the split-K GEMM (XLSTM_VK_FEW_KSEG, 256..16384, a multiple of 256). A token's sums
    /// depend on it: for experiments only.</summary>
    public int FewKSegment { get; init; } = 1024;
    /// <summary>The split-K GEMM's tiles for up to 16, 32, 64 and more tokens (packed prompts; XLSTM_VK_FEW_TILE=t16;t32;t64;tn,
    /// each warpsM,warpsN,tm,tn,bkv); a tile over the device's shared memory falls back to a K step of 32, then to the
    /// next smaller tile. H200 (Q4_0, 7B shapes): two subgroups of 16 tokens × 16 rows each with K steps of 32 up to 32
    /// tokens (more workgroups in flight beat larger ones), 64 × 64 tiles with K steps of 64 up to 64 tokens, the prefill
    /// tile beyond (docs/NOTES.md, session 8).</summary>
    public GemmTile[] FewTiles { get; init; } = [new(1, 2, 1, 1, 4), new(1, 2, 2, 1, 4), new(2, 4, 2, 1, 8), new(2, 4, 4, 2, 4)];
    /// <summary>Tokens per matvec workgroup (XLSTM_VK_VEC_GROUP, 1..16; 4 was best in the H200 sweep, docs/NOTES.md).</summary>
    public int VecGroup { get; init; } = 4;
    /// <summary>Int8 matvecs without a fused norm over at least this many tokens take their activations quantized once per
    /// token by a small kernel (shaders/quantize_x.comp) instead of by every workgroup; those with a fused norm always do
    /// (XLSTM_VK_PREQ, 1..65536; <see cref="Never"/>: no matvec does).</summary>
    public int PreQuantTokens { get; init; } = 2;
    public const int Never = 65536;
    /// <summary>Row groups per matvec workgroup over several tokens, one after the other (XLSTM_VK_VEC_RLOOP, 1..16), so
    /// that fewer workgroups read the tokens' activations. For sweeps: on the H200 2, 4 and 8 were all slower than 1
    /// (docs/NOTES.md, H200 session 3).</summary>
    public int VecRowLoop { get; init; } = 1;
    /// <summary>Launch shape of matvecs over several tokens (XLSTM_VK_VEC_MATVEC=128,rows[,unroll]; the workgroup size
    /// must stay the one-token one, 128, for the results to be the same bits); null = per-type defaults.</summary>
    public MatVecShape? VecMatVec { get; init; }
    /// <summary>Rows of C per step-kernel workgroup (XLSTM_VK_STEP_ROWS, 4..256).</summary>
    public int StepRows { get; init; } = 32;
    /// <summary>Matvec workgroups reduce their row sums by a reduce-scatter over the subgroup (NUM_ROWS − 1 + log2 shuffles
    /// instead of NUM_ROWS · log2 subgroupAdd steps; XLSTM_VK_RSCATTER=0: one subgroupAdd per row).</summary>
    public bool ReduceScatter { get; init; } = true;
    /// <summary>Int8 products over several tokens on tensor cores (shaders/matvec_tc.comp: each block's integer sums through
    /// f16 cooperative matrices, exact, then the one-token matvec's sum order, so the same bits as one token at a time):
    /// 0 off (the default: exact on the H200 but 2.5-10x slower than the matvec so far, docs/NOTES.md, H200 session 6);
    /// 1 where the device has cooperative matrices; 2 the emulated build (matvec_tc_emu.comp) on any device with subgroups,
    /// for tests (XLSTM_VK_TCVEC=0/1/2).</summary>
    public int TensorMatVec { get; init; }
    /// <summary>Blocks the tensor-core products load per step, between two workgroup barriers (XLSTM_VK_TC_KB, 1..6; shared
    /// memory is about 6 KiB per block).</summary>
    public int TensorMatVecBlocks { get; init; } = 4;
    /// <summary>Tokens per prefill forward pass (XLSTM_VK_BATCH); null = chosen from the device memory.</summary>
    public int? Batch { get; init; }
    /// <summary>Tensor-core GEMMs over at least this many tokens read x converted to f16 once (shaders/convert_f16.comp)
    /// instead of converting float32 in every tile (XLSTM_VK_GEMM_XF16, 1..65536; <see cref="Never"/>: never). Same bits;
    /// H200: 99 → 134 TFLOP/s at 4096² × 2048 tokens (docs/NOTES.md).</summary>
    public int GemmHalfXTokens { get; init; } = 1;
    /// <summary>Tensor-core GEMMs of Q8_0/Q4_0 weights over at least this many tokens dequantize the weight to F16 once,
    /// in slabs of rows (<see cref="GemmDequantBytes"/>), and run the F16 GEMM (XLSTM_VK_GEMM_DEQUANT, 1..65536;
    /// <see cref="Never"/>: never). Same bits; H200: at 2048 tokens Q4_0 82 → 131 TFLOP/s with f16 x (as fast as F16),
    /// and faster from 128 tokens on (the F16 GEMM keeps two register stages): 4096x4096 / 21888x4096 / 4096x10944 at 128
    /// tokens 139 / 319 / 346 µs against 178 / 349 / 494 (docs/NOTES.md). 65: every large-tile GEMM.</summary>
    public int GemmDequantTokens { get; init; } = 65;
    /// <summary>The dequantized slab's size (XLSTM_VK_GEMM_DEQUANT_MB, 1..4096 MiB): a whole 7B weight (at most 171 MiB)
    /// by default, so that no GEMM waits for a second slab's dequantization. Released with the prefill scratch.</summary>
    public int GemmDequantBytes { get; init; } = 192 << 20;
    /// <summary>K steps of operands the tensor-core GEMM keeps in registers ahead of its products, with f16 x (any weights:
    /// quantized ones are decoded when stored; XLSTM_VK_GEMM_RSTAGES, 1..2). H200, 2048 tokens: 2 stages 142 TFLOP/s
    /// against 134 with one.</summary>
    public int GemmRegisterStages { get; init; } = 2;
    /// <summary>Prefill GEMMs on workgroup-scope cooperative matrices (VK_NV_cooperative_matrix2) where the device has them
    /// (XLSTM_VK_GEMM_CM2=0/1).</summary>
    public bool GemmCoopMat2 { get; init; }
    /// <summary>The coopmat2 GEMM's tile (XLSTM_VK_CM2_TILE=threads,bm,bn,bk).</summary>
    public Cm2Tile Cm2Tile { get; init; } = new(256, 128, 128, 32);
    /// <summary>The tensor-core GEMM's grid runs token tiles fastest (XLSTM_VK_GEMM_TOKEN_MAJOR=0: weight-row tiles), so
    /// that workgroups running at once share weight tiles in L2 (H200, 2048 tokens: 21888x4096 141 → 155 TFLOP/s, the
    /// other 7B shapes ±1 %).</summary>
    public bool GemmTokenMajor { get; init; } = true;
    /// <summary>Eager ops (a prompt's passes) are submitted in pieces of this many ops without waiting, so that the device
    /// starts on the first blocks while the host records the rest (XLSTM_VK_EAGER_CHUNK, 0 = one submission at the next
    /// synchronisation point).</summary>
    public int EagerChunkOps { get; init; } = 32;
    /// <summary>Barriers name only the pipeline stages on either side (XLSTM_VK_PRECISE_BARRIERS=0: compute and transfer
    /// always).</summary>
    public bool PreciseBarriers { get; init; } = true;
    /// <summary>The chunkwise cells of a packed prefill pass run stage by stage for all its prompts
    /// (XLSTM_VK_CELL_GROUPS=0: prompt by prompt).</summary>
    public bool CellGroups { get; init; } = true;
    /// <summary>Diagnosis only (XLSTM_VK_GEMM_DIAG=0..15, wrong results): parts of the tensor-core GEMM's loop left out
    /// (1 global loads, 2 products, 4 shared stores, 8 barriers) to time the rest with `bench --op matmul`.</summary>
    public int GemmDiag { get; init; }
    /// <summary>Tests and diagnosis (XLSTM_VK_EMULATE_COOPMAT=warpsM,warpsN,tm,tn,bkv): run the prefill GEMM through
    /// matmul_coopmat_emu (emulated matrix operations) on any device, with this tile.</summary>
    public GemmTile? EmulateCoopMat { get; init; }
    /// <summary>Tests only: pretend the device's maxStorageBufferRange is at most this many bytes, to exercise the
    /// splitting of weights into several buffers.</summary>
    public ulong? MaxBindingBytes { get; init; }
    /// <summary>Map host-visible device-local memory directly (the default). Tests set false so that uploads and reads
    /// take the staging-copy path of a discrete GPU even on a device whose memory is host-visible (lavapipe).</summary>
    public bool MapDeviceMemory { get; init; } = true;
    /// <summary>Print the command-stream statistics through <see cref="Log"/> when the backend is disposed (XLSTM_VK_STATS=1).</summary>
    public bool Stats { get; init; }
    /// <summary>Where the backend reports diagnostics (fallbacks, statistics); null: nowhere. The CLI passes a writer
    /// to stderr under XLSTM_DEBUG=1 (and for XLSTM_VK_STATS=1).</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Defaults with the XLSTM_VK_* environment overrides applied; a malformed value is an error naming it.</summary>
    public static VulkanOptions FromEnvironment(bool profile = false, bool float32 = false) =>
        FromVariables(Environment.GetEnvironmentVariable, profile, float32);

    /// <summary><see cref="FromEnvironment"/> with the variables read through <paramref name="lookup"/> (tests).</summary>
    public static VulkanOptions FromVariables(Func<string, string?> lookup, bool profile = false, bool float32 = false)
    {
        string? Env(string n) => lookup(n) is { Length: > 0 } v ? v : null;
        uint[] Nums(string name, string v, int min, int max)
        {
            var p = v.Split(',');
            var r = new uint[p.Length];
            for (int i = 0; i < p.Length; i++)
                if (!uint.TryParse(p[i], NumberStyles.None, CultureInfo.InvariantCulture, out r[i]))
                    throw new ArgumentException($"{name}={v}: expected {min} to {max} comma-separated whole numbers");
            if (p.Length < min || p.Length > max) throw new ArgumentException($"{name}={v}: expected {min} to {max} comma-separated whole numbers");
            return r;
        }
        MatVecShape Shape(string name, string v)
        {
            var n = Nums(name, v, 2, 3);
            var s = new MatVecShape(n[0], n[1], n.Length > 2 ? n[2] : 1);
            return s.Valid ? s : throw new ArgumentException($"{name}={v}: workgroup a power of two in 32..256, rows 1..16, unroll 1..4");
        }
        GemmTile Tile(string name, string v)
        {
            var n = Nums(name, v, 5, 5);
            var t = new GemmTile(n[0], n[1], n[2], n[3], n[4]);
            return t.Valid ? t : throw new ArgumentException($"{name}={v}: warps 1..4 each way, tiles 1..8 each way, bkv 2, 4, 8 or 16");
        }
        int Int(string name, string v, int min, int max, string unit = "")
        {
            if (!int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < min || n > max)
                throw new ArgumentException($"{name}={v}: expected {min}..{max}{unit}");
            return n;
        }
        var o = new VulkanOptions { Profile = profile, Float32 = float32 };
        if (Env("XLSTM_VK_FUSE") is { } fu) o = o with { Fusion = fu != "0" };
        if (Env("XLSTM_VK_COOPMAT") is { } cm) o = o with { CoopMat = cm != "0" };
        if (Env("XLSTM_VK_INTDOT") is { } id) o = o with { IntDot = id != "0" };
        if (Env("XLSTM_VK_STATS") is { } st) o = o with { Stats = st == "1" };
        if (Env("XLSTM_VK_MATVEC") is { } mv) o = o with { MatVec = Shape("XLSTM_VK_MATVEC", mv) };
        if (Env("XLSTM_VK_VEC_MATVEC") is { } vm) o = o with { VecMatVec = Shape("XLSTM_VK_VEC_MATVEC", vm) };
        if (Env("XLSTM_VK_GEMM") is { } gm) o = o with { Gemm = Tile("XLSTM_VK_GEMM", gm) };
        // diagnosis: the cooperative-matrix GEMM's tiling with emulated matrix operations, on any device
        if (Env("XLSTM_VK_EMULATE_COOPMAT") is { } em) o = o with { EmulateCoopMat = Tile("XLSTM_VK_EMULATE_COOPMAT", em) };
        if (Env("XLSTM_VK_STEP_ROWS") is { } sr) o = o with { StepRows = Int("XLSTM_VK_STEP_ROWS", sr, 4, 256) };
        if (Env("XLSTM_VK_VEC_TOKENS") is { } vt) o = o with { VecTokens = Int("XLSTM_VK_VEC_TOKENS", vt, 1, 1024) };
        if (Env("XLSTM_VK_FEW_MIN") is { } fm) o = o with { FewMinTokens = Int("XLSTM_VK_FEW_MIN", fm, 2, 1025) };
        if (Env("XLSTM_VK_FEW_KSEG") is { } fk) o = o with { FewKSegment = Int("XLSTM_VK_FEW_KSEG", fk, 256, 16384) / 256 * 256 };
        if (Env("XLSTM_VK_FEW_TILE") is { } ft)
        {
            var parts = ft.Split(';');
            if (parts.Length != 4) throw new ArgumentException($"XLSTM_VK_FEW_TILE={ft}: four tiles separated by ';'");
            o = o with { FewTiles = parts.Select(x => Tile("XLSTM_VK_FEW_TILE", x)).ToArray() };
        }
        if (Env("XLSTM_VK_VEC_GROUP") is { } vg) o = o with { VecGroup = Int("XLSTM_VK_VEC_GROUP", vg, 1, 16) };
        if (Env("XLSTM_VK_VEC_RLOOP") is { } rl) o = o with { VecRowLoop = Int("XLSTM_VK_VEC_RLOOP", rl, 1, 16) };
        if (Env("XLSTM_VK_PREQ") is { } pq) o = o with { PreQuantTokens = Int("XLSTM_VK_PREQ", pq, 1, 65536) };
        if (Env("XLSTM_VK_GEMM_XF16") is { } gx) o = o with { GemmHalfXTokens = Int("XLSTM_VK_GEMM_XF16", gx, 1, 65536) };
        if (Env("XLSTM_VK_GEMM_DEQUANT") is { } gd) o = o with { GemmDequantTokens = Int("XLSTM_VK_GEMM_DEQUANT", gd, 1, 65536) };
        if (Env("XLSTM_VK_GEMM_DEQUANT_MB") is { } gdm) o = o with { GemmDequantBytes = Int("XLSTM_VK_GEMM_DEQUANT_MB", gdm, 1, 4096, " MiB") << 20 };
        if (Env("XLSTM_VK_GEMM_RSTAGES") is { } grs) o = o with { GemmRegisterStages = Int("XLSTM_VK_GEMM_RSTAGES", grs, 1, 2) };
        if (Env("XLSTM_VK_GEMM_CM2") is { } gc2) o = o with { GemmCoopMat2 = gc2 != "0" };
        if (Env("XLSTM_VK_CM2_TILE") is { } ct)
        {
            var n = Nums("XLSTM_VK_CM2_TILE", ct, 4, 4);
            var t = new Cm2Tile(n[0], n[1], n[2], n[3]);
            o = o with { Cm2Tile = t.Valid ? t : throw new ArgumentException($"XLSTM_VK_CM2_TILE={ct}: threads 32..512 (a power of two), bm and bn 16..256, bk 16..128, multiples of 16") };
        }
        if (Env("XLSTM_VK_GEMM_DIAG") is { } gdg) o = o with { GemmDiag = Int("XLSTM_VK_GEMM_DIAG", gdg, 0, 15) };
        if (Env("XLSTM_VK_EAGER_CHUNK") is { } ec) o = o with { EagerChunkOps = Int("XLSTM_VK_EAGER_CHUNK", ec, 0, 1 << 20) };
        if (Env("XLSTM_VK_PRECISE_BARRIERS") is { } pb) o = o with { PreciseBarriers = pb != "0" };
        if (Env("XLSTM_VK_CELL_GROUPS") is { } cg) o = o with { CellGroups = cg != "0" };
        if (Env("XLSTM_VK_GEMM_TOKEN_MAJOR") is { } gtm) o = o with { GemmTokenMajor = gtm != "0" };
        if (Env("XLSTM_VK_RSCATTER") is { } rsc) o = o with { ReduceScatter = rsc != "0" };
        if (Env("XLSTM_VK_TCVEC") is { } tcv) o = o with { TensorMatVec = Int("XLSTM_VK_TCVEC", tcv, 0, 2) };
        if (Env("XLSTM_VK_TC_KB") is { } tkb) o = o with { TensorMatVecBlocks = Int("XLSTM_VK_TC_KB", tkb, 1, 6) };
        if (Env("XLSTM_VK_BATCH") is { } b) o = o with { Batch = Int("XLSTM_VK_BATCH", b, 64, 65536, " tokens") };
        return o;
    }
}
