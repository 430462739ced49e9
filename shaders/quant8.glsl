// One 32-element block of activations to 8 bits, as the int8 matvecs read them: d = max|x| / 127, q = roundEven(x / d)
// (the CPU engine's 8-bit path), packed four to a uint, with (d, Σq) and the block's Σ x² of the raw values (before the
// norm weight, for a fused RmsNorm). Shared by quantize_x.comp, the matvec's M_QOUT epilogue and its in-register path
// (INT_DOT without PREQ), so that every path quantizes a token to the same bits.
void quant8_block(vec4 x[8], bool norm, vec4 nw[8], out uvec4 qa, out uvec4 qb, out vec2 dd, out float ss)
{
    ss = 0.0;
    if (norm)
        [[unroll]] for (uint i = 0u; i < 8u; i++)
        {
            ss += dot(x[i], x[i]);
            x[i] *= nw[i];
        }
    vec4 m4 = max(abs(x[0]), abs(x[1]));
    [[unroll]] for (uint i = 2u; i < 8u; i++) m4 = max(m4, abs(x[i]));
    float amax = max(max(m4.x, m4.y), max(m4.z, m4.w));
    float dx = amax / 127.0;
    float rinv = dx != 0.0 ? 1.0 / dx : 0.0;
    uint xq[8];
    int sum = 0;
    [[unroll]] for (uint i = 0u; i < 8u; i++)
    {
        ivec4 q = ivec4(roundEven(x[i] * rinv));
        sum += q.x + q.y + q.z + q.w;
        uvec4 b = uvec4(q) & 0xFFu;
        xq[i] = b.x | (b.y << 8) | (b.z << 16) | (b.w << 24);
    }
    qa = uvec4(xq[0], xq[1], xq[2], xq[3]);
    qb = uvec4(xq[4], xq[5], xq[6], xq[7]);
    dd = vec2(dx, float(sum));
}
