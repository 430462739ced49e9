using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace XlstmRun.Backends.Cpu.Kernels;

/// <summary>The vector width a kernel runs with. Every kernel has a <see cref="Scalar"/> reference form.</summary>
public enum SimdLevel { Scalar = 0, V128 = 1, V256 = 2, V512 = 3 }

/// <summary>What this process can use (decided by the JIT/AOT target: an AOT binary built for x86-64-v3 has no AVX-512).</summary>
public static class CpuCaps
{
    /// <summary>The widest float vector width that is hardware accelerated.</summary>
    public static SimdLevel Best { get; } =
        Vector512.IsHardwareAccelerated ? SimdLevel.V512 :
        Vector256.IsHardwareAccelerated ? SimdLevel.V256 :
        Vector128.IsHardwareAccelerated ? SimdLevel.V128 : SimdLevel.Scalar;

    /// <summary>256-bit integer dot products of u8 × s8 (vpdpbusd), used with 8-bit activations.</summary>
    public static bool Vnni => AvxVnni.IsSupported;
    public static bool Avx2 => System.Runtime.Intrinsics.X86.Avx2.IsSupported && Fma.IsSupported;

    /// <summary>The path the 8-bit (Q8_0/Q4_0 × int8 activation) kernels take.</summary>
    public static Int8Path BestInt8 { get; } = Vnni && Avx2 ? Int8Path.AvxVnni : Avx2 ? Int8Path.Avx2 :
        Vector128.IsHardwareAccelerated ? Int8Path.V128 : Int8Path.Scalar;

    public static bool Supports(SimdLevel l) => l switch
    {
        SimdLevel.V512 => Vector512.IsHardwareAccelerated,
        SimdLevel.V256 => Vector256.IsHardwareAccelerated,
        SimdLevel.V128 => Vector128.IsHardwareAccelerated,
        _ => true,
    };

    public static bool Supports(Int8Path p) => p switch
    {
        Int8Path.AvxVnni => Vnni && Avx2,
        Int8Path.Avx2 => Avx2,
        Int8Path.V128 => Vector128.IsHardwareAccelerated,
        _ => true,
    };

    public static string Describe()
    {
        var isa = Vector512.IsHardwareAccelerated ? "AVX-512" : Vector256.IsHardwareAccelerated ? (Avx2 ? "AVX2+FMA" : "256-bit SIMD") :
            Vector128.IsHardwareAccelerated ? "128-bit SIMD" : "scalar";
        return Vnni ? isa + "+AVX-VNNI" : isa;
    }
}

/// <summary>Kernel paths for quantized weights with 8-bit activations.</summary>
public enum Int8Path { Scalar = 0, V128 = 1, Avx2 = 2, AvxVnni = 3 }

/// <summary>
/// A float vector of some width, so that one generic kernel compiles to 1-, 4-, 8- and 16-lane code
/// (the type arguments are structs, so each instantiation is specialised and the wrappers inline away).
/// </summary>
public unsafe interface IVec<TV> where TV : struct, IVec<TV>
{
    static abstract int Count { get; }
    static abstract TV Load(float* p);
    static abstract void Store(float* p, TV v);
    static abstract TV Bcast(float x);
    static abstract TV Zero { get; }
    static abstract TV Add(TV a, TV b);
    static abstract TV Mul(TV a, TV b);
    static abstract TV Sub(TV a, TV b);
    static abstract TV Exp(TV a);
    static abstract TV Div1(TV a, TV b);
    /// <summary>a·b + c (fused where the hardware has it).</summary>
    static abstract TV Fma(TV a, TV b, TV c);
    static abstract float Sum(TV v);
    /// <summary>Load <see cref="Count"/> F16 values and widen them to float (exact for finite values).</summary>
    static abstract TV LoadF16(ushort* p);
    /// <summary>Load <see cref="Count"/> BF16 values and widen them to float (exact).</summary>
    static abstract TV LoadBf16(ushort* p);
    /// <summary>Load <see cref="Count"/> F16 values as floats × 2^-112 (<see cref="HalfBits.ToFloatUnscaled"/>): one widening, shift and mask.</summary>
    static abstract TV LoadF16Unscaled(ushort* p);
}

public unsafe struct V1 : IVec<V1>
{
    public float V;
    public static int Count => 1;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 Load(float* p) => new() { V = *p };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, V1 v) => *p = v.V;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 Bcast(float x) => new() { V = x };
    public static V1 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 Add(V1 a, V1 b) => new() { V = a.V + b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 Mul(V1 a, V1 b) => new() { V = a.V * b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 Sub(V1 a, V1 b) => new() { V = a.V - b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 Div1(V1 a, V1 b) => new() { V = a.V / b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 Exp(V1 a) => new() { V = MathF.Exp(a.V) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 Fma(V1 a, V1 b, V1 c) => new() { V = a.V * b.V + c.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(V1 v) => v.V;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 LoadF16(ushort* p) => new() { V = HalfBits.ToFloat(*p) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 LoadBf16(ushort* p) => new() { V = BitConverter.Int32BitsToSingle(*p << 16) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 LoadF16Unscaled(ushort* p) => new() { V = HalfBits.ToFloatUnscaled(*p) };
}

public unsafe struct V128 : IVec<V128>
{
    public Vector128<float> V;
    public static int Count => 4;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Load(float* p) => new() { V = Vector128.Load(p) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, V128 v) => v.V.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Bcast(float x) => new() { V = Vector128.Create(x) };
    public static V128 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Add(V128 a, V128 b) => new() { V = a.V + b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Mul(V128 a, V128 b) => new() { V = a.V * b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Sub(V128 a, V128 b) => new() { V = a.V - b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Div1(V128 a, V128 b) => new() { V = a.V / b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Exp(V128 a) => new() { V = Vector128.Exp(a.V) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Fma(V128 a, V128 b, V128 c) => new() { V = Vector128.FusedMultiplyAdd(a.V, b.V, c.V) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(V128 v) => Vector128.Sum(v.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 LoadF16(ushort* p) => new() { V = HalfBits.Widen(Vector128.WidenLower(Vector128.CreateScalar(*(ulong*)p).AsUInt16())) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 LoadBf16(ushort* p) => new() { V = Vector128.ShiftLeft(Vector128.WidenLower(Vector128.CreateScalar(*(ulong*)p).AsUInt16()), 16).AsSingle() };
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V128 LoadF16Unscaled(ushort* p) => new() { V = HalfBits.WidenUnscaled(Vector128.WidenLower(Vector128.CreateScalar(*(ulong*)p).AsInt16())) };
}

public unsafe struct V256 : IVec<V256>
{
    public Vector256<float> V;
    public static int Count => 8;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Load(float* p) => new() { V = Vector256.Load(p) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, V256 v) => v.V.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Bcast(float x) => new() { V = Vector256.Create(x) };
    public static V256 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Add(V256 a, V256 b) => new() { V = a.V + b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Mul(V256 a, V256 b) => new() { V = a.V * b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Sub(V256 a, V256 b) => new() { V = a.V - b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Div1(V256 a, V256 b) => new() { V = a.V / b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Exp(V256 a) => new() { V = Vector256.Exp(a.V) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Fma(V256 a, V256 b, V256 c) => new() { V = Vector256.FusedMultiplyAdd(a.V, b.V, c.V) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(V256 v) => Vector256.Sum(v.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 LoadF16(ushort* p) => new() { V = HalfBits.Widen(Vector256.WidenLower(Vector128.Load(p).ToVector256Unsafe())) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 LoadBf16(ushort* p) => new() { V = Vector256.ShiftLeft(Vector256.WidenLower(Vector128.Load(p).ToVector256Unsafe()), 16).AsSingle() };
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V256 LoadF16Unscaled(ushort* p) => new()
    {
        // vpmovsxwd straight from memory where AVX2 has it (the JIT does not fold the load into the generic widening)
        V = HalfBits.WidenUnscaled(Avx2.IsSupported ? Avx2.ConvertToVector256Int32((short*)p) : Vector256.WidenLower(Vector128.Load((short*)p).ToVector256Unsafe())),
    };
}

public unsafe struct V512 : IVec<V512>
{
    public Vector512<float> V;
    public static int Count => 16;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Load(float* p) => new() { V = Vector512.Load(p) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, V512 v) => v.V.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Bcast(float x) => new() { V = Vector512.Create(x) };
    public static V512 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Add(V512 a, V512 b) => new() { V = a.V + b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Mul(V512 a, V512 b) => new() { V = a.V * b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Sub(V512 a, V512 b) => new() { V = a.V - b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Div1(V512 a, V512 b) => new() { V = a.V / b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Exp(V512 a) => new() { V = Vector512.Exp(a.V) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Fma(V512 a, V512 b, V512 c) => new() { V = Vector512.FusedMultiplyAdd(a.V, b.V, c.V) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(V512 v) => Vector512.Sum(v.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 LoadF16(ushort* p) => new() { V = HalfBits.Widen(Vector512.WidenLower(Vector256.Load(p).ToVector512Unsafe())) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 LoadBf16(ushort* p) => new() { V = Vector512.ShiftLeft(Vector512.WidenLower(Vector256.Load(p).ToVector512Unsafe()), 16).AsSingle() };
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static V512 LoadF16Unscaled(ushort* p) => new() { V = HalfBits.WidenUnscaled(Vector512.WidenLower(Vector256.Load((short*)p).ToVector512Unsafe())) };
}

/// <summary>IEEE half → float by bit manipulation (.NET has no F16C intrinsics; the Half cast is a call).</summary>
public static class HalfBits
{
    /// <summary>2^112: a half's exponent/mantissa bits shifted into a float's place give the value · 2^-112.</summary>
    public const float Scale = 5.192296858534828E+33f; // exactly 2^112

    /// <summary>Half bits → float, exact for every finite half (normal or subnormal); ±inf/NaN come out as huge finite values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(ushort h) => BitConverter.Int32BitsToSingle(((h & 0x7fff) << 13) | ((h & 0x8000) << 16)) * Scale;

    /// <summary>The half's bits moved into float position (value · 2^-112, sign kept); multiply by <see cref="Scale"/> for the value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloatUnscaled(ushort h) => BitConverter.Int32BitsToSingle(((h & 0x7fff) << 13) | ((h & 0x8000) << 16));

    /// <summary>
    /// Widened half bits (one per 32-bit lane) → float: (h &lt;&lt; 16) as int, arithmetic shift right 3 puts exponent and mantissa
    /// where a float has them and smears the sign over bits 28–31; the mask keeps bit 31; × 2^112 rebiases the exponent.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Widen(Vector128<uint> h) =>
        (Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(h, 16).AsInt32(), 3) & Vector128.Create(unchecked((int)0x8FFFE000))).AsSingle() * Vector128.Create(Scale);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Widen(Vector256<uint> h) =>
        (Vector256.ShiftRightArithmetic(Vector256.ShiftLeft(h, 16).AsInt32(), 3) & Vector256.Create(unchecked((int)0x8FFFE000))).AsSingle() * Vector256.Create(Scale);

    /// <summary>
    /// Sign-extended half bits (one per 32-bit lane) → float × 2^-112: shifted left 13, exponent and mantissa sit where a
    /// float has them and the sign at bit 31; the mask clears the sign copies in bits 28–30. Exact for every finite half
    /// (subnormal halves become subnormal floats).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> WidenUnscaled(Vector128<int> h) => (Vector128.ShiftLeft(h, 13) & Vector128.Create(unchecked((int)0x8FFFE000))).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> WidenUnscaled(Vector256<int> h) => (Vector256.ShiftLeft(h, 13) & Vector256.Create(unchecked((int)0x8FFFE000))).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> WidenUnscaled(Vector512<int> h) => (Vector512.ShiftLeft(h, 13) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Widen(Vector512<uint> h) =>
        (Vector512.ShiftRightArithmetic(Vector512.ShiftLeft(h, 16).AsInt32(), 3) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle() * Vector512.Create(Scale);
}
