// Weight access for every weight type. The includer declares W4 (uvec4[]) and W1 (uint[]), both bound to the weight
// buffer, and the specialization constant WTYPE:
//   0 F32, 1 F16, 2 BF16: rows x wStride uvec4 units; each row is zero-padded to a whole number of 8-element groups
//                         (F32: 2 units per group, F16/BF16: 1 unit per group).
//   3 Q8_0: quants rows x nb blocks x 2 units (32 int8), then the f16 scales, rows x nb halves from half index scaleBase.
//   4 Q4_0: quants rows x nb blocks x 1 unit (16 bytes: low nibbles = elements 0..15, high nibbles = 16..31),
//           then the f16 scales likewise.
// (The host repacks ggml's 34/18-byte blocks into this layout at upload so that every quant load is 16 bytes.)
#define WT_F32 0u
#define WT_F16 1u
#define WT_BF16 2u
#define WT_Q8_0 3u
#define WT_Q4_0 4u

bool wt_is_quant() { return WTYPE == WT_Q8_0 || WTYPE == WT_Q4_0; }

float w_scale(uint e)
{
    vec2 h = unpackHalf2x16(W1[e >> 1]);
    return (e & 1u) == 0u ? h.x : h.y;
}

vec4 unpack_f16x4(uvec2 u) { return vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y)); }
vec4 unpack_bf16x4(uvec2 u)
{
    return vec4(uintBitsToFloat(u.x << 16), uintBitsToFloat(u.x & 0xFFFF0000u),
                uintBitsToFloat(u.y << 16), uintBitsToFloat(u.y & 0xFFFF0000u));
}
// Integer → float without conversion instructions (which run at a quarter of the FMA rate or less on NVIDIA): a small
// unsigned integer v < 2^23 placed in the mantissa of 2^23 is the float 2^23 + v (one bitwise op, exact), and subtracting
// a constant 2^23 + c leaves v − c exactly. A field at bit position p (p + width ≤ 23) needs no shift: the float is
// 2^23 + 2^p·v, and 2^p·(v − c) is exact too, so callers may keep each position in its own accumulator and scale by 2^-p.
#define MAGIC 0x4B000000u   // 2^23 as float bits
float magic_f(uint bits) { return uintBitsToFloat(bits | MAGIC); }

// int8 lanes of one uint (two's complement): (b ^ 0x80) = q + 128, so 2^23 + (q + 128) − (2^23 + 128) = q; the lanes at
// bit 8 give 2^23 + 256·(q + 128), scaled by 1/256 (exact) minus 32768 + 128
vec4 unpack_i8x4(uint u)
{
    uint t = u >> 16;
    return vec4(uintBitsToFloat((u & 0xFFu) ^ 0x4B000080u), uintBitsToFloat((u & 0xFF00u) ^ 0x4B008000u) * (1.0 / 256.0),
                uintBitsToFloat((t & 0xFFu) ^ 0x4B000080u), uintBitsToFloat((t & 0xFF00u) ^ 0x4B008000u) * (1.0 / 256.0))
         - vec4(8388736.0, 32896.0, 8388736.0, 32896.0);
}
// nibbles (bytes' low or high halves, shift 0 or 4) of one uint, minus 8
vec4 unpack_q4x4(uint u, uint shift)
{
    uint v = u >> shift;
    uint t = v >> 16;
    return vec4(magic_f(v & 0xFu), magic_f(v & 0xF00u) * (1.0 / 256.0), magic_f(t & 0xFu), magic_f(t & 0xF00u) * (1.0 / 256.0))
         - vec4(8388616.0, 8390656.0 / 256.0, 8388616.0, 8390656.0 / 256.0);
}

// A quantized group of 8 elements in two halves, so that a caller may issue many loads before using any: w_q_load reads
// the 16 bytes holding group q (0..3) of block blk, w_q_finish decodes them with the block's scale (the word of scale halves
// at index e >> 1, and which half: e & 1, for e = scaleBase + blk). w_decode8 is the two in a row.
uvec4 w_q_load(uint blk, uint q) { return W4[WTYPE == WT_Q8_0 ? 2u * blk + (q >> 1) : blk]; }
void w_q_finish(uvec4 u, uint scaleWord, uint scaleHalf, uint q, out vec4 lo, out vec4 hi)
{
    vec2 h = unpackHalf2x16(scaleWord);
    float d = scaleHalf == 0u ? h.x : h.y;
    uvec2 p = (q & 1u) == 0u ? u.xy : u.zw;
    if (WTYPE == WT_Q8_0)
    {
        lo = unpack_i8x4(p.x) * d;
        hi = unpack_i8x4(p.y) * d;
    }
    else
    {
        lo = unpack_q4x4(p.x, (q >> 1) * 4u) * d;
        hi = unpack_q4x4(p.y, (q >> 1) * 4u) * d;
    }
}

// Elements [8g, 8g+8) of row r (r relative to the bound buffer); for quant types g < 4·nb.
void w_decode8(uint r, uint g, uint wStride, uint scaleBase, out vec4 lo, out vec4 hi)
{
    if (WTYPE == WT_F32)
    {
        uint u = r * wStride + 2u * g;
        lo = uintBitsToFloat(W4[u]);
        hi = uintBitsToFloat(W4[u + 1u]);
    }
    else if (WTYPE == WT_F16)
    {
        uvec4 u = W4[r * wStride + g];
        lo = unpack_f16x4(u.xy);
        hi = unpack_f16x4(u.zw);
    }
    else if (WTYPE == WT_BF16)
    {
        uvec4 u = W4[r * wStride + g];
        lo = unpack_bf16x4(u.xy);
        hi = unpack_bf16x4(u.zw);
    }
    else
    {
        uint blk = r * wStride + (g >> 2), q = g & 3u, e = scaleBase + blk;
        w_q_finish(w_q_load(blk, q), W1[e >> 1], e & 1u, q, lo, hi);
    }
}
