/* Specialised CONV_2D kernels (see tq_conv.h): a matrix product of two output pixels by two output channels per
   step, on the DSP extension's two-lane multiply-accumulate (SMLAD) where TQ_PACKED, in plain C elsewhere.
   Within each group of 4 along K, the input is taken as lanes (x0, x2) and (x1, x3), the order SXTB16 and its
   rotation give from 4 bytes, so the weights keep their natural byte order: each product pairs the same input
   and weight as in tq_conv2d, only the order of the sums differs (tinyq proves no partial sum overflows). */
#include "tq_conv.h"
#include "tq_simd.h"

/* The per-block helpers must be inlined into the loops calling them (GCC at -O2 keeps some out of line). */
#if defined(__GNUC__) || defined(__clang__)
#define TQ_CONV_INLINE static inline __attribute__((always_inline))
#else
#define TQ_CONV_INLINE static inline
#endif

/* The requantization constants of one output channel (a row of the `requant` table) and of the layer. */
typedef struct {
    int32_t bias, mult, left, right, mask;
} tq_conv_rq;

typedef struct {
    int32_t offset, lo, hi, out_c;
} tq_conv_out;

TQ_CONV_INLINE tq_conv_rq channel_rq(const int32_t *requant, int32_t oc)
{
    const int32_t *r = requant + 4 * oc;
    const tq_conv_rq q = {r[0], r[1], r[2], r[3], (int32_t)(((uint32_t)1 << r[3]) - 1u)};
    return q;
}

/* tq_multiply_by_quantized_multiplier without 64-bit division, for mult >= 0 and x << left within int32: the
   doubling high multiply rounds half up, floor((x * mult + 2^30) / 2^31), then the shift right rounds half away
   from zero. */
TQ_CONV_INLINE int32_t rescale(int32_t x, const tq_conv_rq q)
{
    const int32_t high = (int32_t)(((int64_t)(int32_t)((uint32_t)x << q.left) * q.mult + ((int64_t)1 << 30)) >> 31);
    const int32_t threshold = (q.mask >> 1) + (high < 0 ? 1 : 0);
    return (high >> q.right) + ((high & q.mask) > threshold ? 1 : 0);
}

/* Bias, per-channel rescale, output zero point and the fused activation's clamp of one sum. */
TQ_CONV_INLINE int8_t requantize(int32_t acc, const tq_conv_rq q, const tq_conv_out o)
{
    int32_t v = rescale(acc + q.bias, q) + o.offset;
    v = v < o.lo ? o.lo : v;
    v = v > o.hi ? o.hi : v;
    return (int8_t)v;
}

/* Sums of two pixels times two output channels (interleaved weights w) over `groups` groups of 4:
   acc = {a.w0, a.w1, b.w0, b.w1}. Per group, s holds 8 int16: pixel a then pixel b, each as (x0, x2, x1, x3). */
TQ_CONV_INLINE void mm_2x2_s16(const int16_t *s, const int8_t *w, int32_t groups, int32_t *acc)
{
    int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
#if TQ_PACKED
    const int8_t *const end = w + 8 * groups;
    while (w != end) {
        const int32_t w0 = tq_read_s8x4(w);
        const int32_t w1 = tq_read_s8x4(w + 4);
        const int32_t w0e = tq_sxtb16(w0), w0o = tq_sxtb16_ror8(w0);
        const int32_t w1e = tq_sxtb16(w1), w1o = tq_sxtb16_ror8(w1);
        int32_t x = tq_read_s16x2(s);
        a0 = tq_smlad(x, w0e, a0);
        a1 = tq_smlad(x, w1e, a1);
        x = tq_read_s16x2(s + 2);
        a0 = tq_smlad(x, w0o, a0);
        a1 = tq_smlad(x, w1o, a1);
        x = tq_read_s16x2(s + 4);
        b0 = tq_smlad(x, w0e, b0);
        b1 = tq_smlad(x, w1e, b1);
        x = tq_read_s16x2(s + 6);
        b0 = tq_smlad(x, w0o, b0);
        b1 = tq_smlad(x, w1o, b1);
        s += 8;
        w += 8;
    }
#else
    for (; groups > 0; groups--) {
        const int32_t x0 = s[0], x2 = s[1], x1 = s[2], x3 = s[3];
        const int32_t y0 = s[4], y2 = s[5], y1 = s[6], y3 = s[7];
        a0 += x0 * w[0] + x1 * w[1] + x2 * w[2] + x3 * w[3];
        a1 += x0 * w[4] + x1 * w[5] + x2 * w[6] + x3 * w[7];
        b0 += y0 * w[0] + y1 * w[1] + y2 * w[2] + y3 * w[3];
        b1 += y0 * w[4] + y1 * w[5] + y2 * w[6] + y3 * w[7];
        s += 8;
        w += 8;
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

/* As mm_2x2_s16, the pixels' inputs being int8 in natural order at a and b (no input offset). */
TQ_CONV_INLINE void mm_2x2_s8(const int8_t *a, const int8_t *b, const int8_t *w, int32_t groups, int32_t *acc)
{
    int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
#if TQ_PACKED
    const int8_t *const end = w + 8 * groups;
    while (w != end) {
        const int32_t w0 = tq_read_s8x4(w);
        const int32_t w1 = tq_read_s8x4(w + 4);
        const int32_t w0e = tq_sxtb16(w0), w0o = tq_sxtb16_ror8(w0);
        const int32_t w1e = tq_sxtb16(w1), w1o = tq_sxtb16_ror8(w1);
        int32_t x = tq_read_s8x4(a);
        int32_t xs = tq_sxtb16(x);
        a0 = tq_smlad(xs, w0e, a0);
        a1 = tq_smlad(xs, w1e, a1);
        xs = tq_sxtb16_ror8(x);
        a0 = tq_smlad(xs, w0o, a0);
        a1 = tq_smlad(xs, w1o, a1);
        x = tq_read_s8x4(b);
        xs = tq_sxtb16(x);
        b0 = tq_smlad(xs, w0e, b0);
        b1 = tq_smlad(xs, w1e, b1);
        xs = tq_sxtb16_ror8(x);
        b0 = tq_smlad(xs, w0o, b0);
        b1 = tq_smlad(xs, w1o, b1);
        a += 4;
        b += 4;
        w += 8;
    }
#else
    for (; groups > 0; groups--) {
        const int32_t x0 = a[0], x1 = a[1], x2 = a[2], x3 = a[3];
        const int32_t y0 = b[0], y1 = b[1], y2 = b[2], y3 = b[3];
        a0 += x0 * w[0] + x1 * w[1] + x2 * w[2] + x3 * w[3];
        a1 += x0 * w[4] + x1 * w[5] + x2 * w[6] + x3 * w[7];
        b0 += y0 * w[0] + y1 * w[1] + y2 * w[2] + y3 * w[3];
        b1 += y0 * w[4] + y1 * w[5] + y2 * w[6] + y3 * w[7];
        a += 4;
        b += 4;
        w += 8;
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

/* Requantize and store the sums of a 2x2 block at output channels (oc, oc + 1) of pixels out and out + out_c;
   the second channel of an odd out_c and a second pixel that does not exist (two == 0) are not stored. All four
   values are computed before the first store, which could alias the constants as far as C knows. */
TQ_CONV_INLINE void store_2x2(const tq_conv_out o, const int32_t *requant, const int32_t *acc, int32_t oc,
                             int8_t *out, int two)
{
    const tq_conv_rq q0 = channel_rq(requant, oc);
    const int8_t y00 = requantize(acc[0], q0, o);
    const int8_t y10 = requantize(acc[2], q0, o);
    if (oc + 1 < o.out_c) {
        const tq_conv_rq q1 = channel_rq(requant, oc + 1);
        const int8_t y01 = requantize(acc[1], q1, o);
        const int8_t y11 = requantize(acc[3], q1, o);
        out[oc + 1] = y01;
        if (two) {
            out[o.out_c + oc + 1] = y11;
        }
    }
    out[oc] = y00;
    if (two) {
        out[o.out_c + oc] = y10;
    }
}

/* The k_padded int16 inputs of output pixel (oy, ox), input offset added, padding taps and K's tail 0, in groups
   of 4 at a stride of 8 (the other pixel of the pair fills the gaps). */
static void gather(const tq_conv_mm_params *p, const int8_t *input, int32_t oy, int32_t ox, int16_t *s)
{
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    const int32_t x0 = ox * p->stride_w - p->pad_w;
    const int32_t in_c = p->in_c;
    const int32_t offset = p->input_offset;
    int32_t ky, kx, c, k = 0;
    if ((in_c & 3) == 0) {
#if TQ_PACKED
        const int32_t off2 = tq_pack16(offset, offset);
#endif
        for (ky = 0; ky < p->k_h; ky++) {
            const int32_t iy = y0 + p->dil_h * ky;
            for (kx = 0; kx < p->k_w; kx++) {
                const int32_t ix = x0 + p->dil_w * kx;
                if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                    for (c = 0; c < in_c; c += 4, s += 8) {
                        tq_write_s16x2(s, 0);
                        tq_write_s16x2(s + 2, 0);
                    }
                } else {
                    const int8_t *in = input + (iy * p->in_w + ix) * in_c;
                    for (c = 0; c < in_c; c += 4, s += 8) {
#if TQ_PACKED
                        const int32_t v = tq_read_s8x4(in + c);
                        tq_write_s16x2(s, tq_sxtab16(off2, v));
                        tq_write_s16x2(s + 2, tq_sxtab16_ror8(off2, v));
#else
                        s[0] = (int16_t)(in[c] + offset);
                        s[1] = (int16_t)(in[c + 2] + offset);
                        s[2] = (int16_t)(in[c + 1] + offset);
                        s[3] = (int16_t)(in[c + 3] + offset);
#endif
                    }
                }
            }
        }
        return;
    }
    /* Any depth: natural K order at s[k + (k & ~3)] (groups of 4 at a stride of 8), then lanes 1 and 2 of each
       group swapped into (x0, x2, x1, x3). */
    for (ky = 0; ky < p->k_h; ky++) {
        const int32_t iy = y0 + p->dil_h * ky;
        const int row = iy >= 0 && iy < p->in_h;
        for (kx = 0; kx < p->k_w; kx++) {
            const int32_t ix = x0 + p->dil_w * kx;
            if (row && ix >= 0 && ix < p->in_w) {
                const int8_t *in = input + (iy * p->in_w + ix) * in_c;
                for (c = 0; c < in_c; c++, k++) {
                    s[k + (k & ~3)] = (int16_t)(in[c] + offset);
                }
            } else {
                for (c = 0; c < in_c; c++, k++) {
                    s[k + (k & ~3)] = 0;
                }
            }
        }
    }
    for (; k < p->k_padded; k++) {
        s[k + (k & ~3)] = 0;
    }
    for (k = 0; k < p->k_padded; k += 4, s += 8) {
        const int16_t t = s[1];
        s[1] = s[2];
        s[2] = t;
    }
}

void tq_conv2d_im2col(const tq_conv_mm_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    int16_t *const s = (int16_t *)scratch;
    const int32_t pixels = p->out_h * p->out_w;
    const int32_t groups = p->k_padded >> 2;
    const tq_conv_out o = {p->output_offset, p->act_min, p->act_max, p->out_c};
    int32_t pix, oc, oy = 0, ox = 0;
    for (pix = 0; pix < pixels; pix += 2) {
        const int two = pix + 1 < pixels;
        const int8_t *w = p->weights;
        int8_t *out = output + pix * p->out_c;
        gather(p, input, oy, ox, s);
        if (++ox == p->out_w) {
            ox = 0;
            oy++;
        }
        if (two) {
            gather(p, input, oy, ox, s + 4);
            if (++ox == p->out_w) {
                ox = 0;
                oy++;
            }
        } else {
            gather(p, input, oy, ox - 1, s + 4);
        }
        for (oc = 0; oc < p->out_c; oc += 2) {
            int32_t acc[4];
            mm_2x2_s16(s, w, groups, acc);
            store_2x2(o, p->requant, acc, oc, out, two);
            w += 2 * p->k_padded;
        }
    }
}

void tq_conv2d_1x1(const tq_conv_mm_params *p, const int8_t *input, int8_t *output)
{
    const int32_t pixels = p->out_h * p->out_w;
    const int32_t groups = p->k_padded >> 2;
    const int32_t step_y = p->stride_h * p->in_w * p->in_c;
    const int32_t step_x = p->stride_w * p->in_c;
    const tq_conv_out o = {p->output_offset, p->act_min, p->act_max, p->out_c};
    int32_t pix, oc, oy = 0, ox = 0;
    for (pix = 0; pix < pixels; pix += 2) {
        const int two = pix + 1 < pixels;
        const int8_t *w = p->weights;
        const int8_t *a = input + oy * step_y + ox * step_x;
        const int8_t *b = a;
        int8_t *out = output + pix * p->out_c;
        if (++ox == p->out_w) {
            ox = 0;
            oy++;
        }
        if (two) {
            b = input + oy * step_y + ox * step_x;
            if (++ox == p->out_w) {
                ox = 0;
                oy++;
            }
        }
        for (oc = 0; oc < p->out_c; oc += 2) {
            int32_t acc[4];
            mm_2x2_s8(a, b, w, groups, acc);
            store_2x2(o, p->requant, acc, oc, out, two);
            w += 2 * p->k_padded;
        }
    }
}
