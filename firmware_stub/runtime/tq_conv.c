/* Specialised CONV_2D kernels (see tq_conv.h): a matrix product of two output pixels by two output channels per
   step, on the DSP extension's two-lane multiply-accumulate (SMLAD) where TQ_PACKED, in plain C elsewhere.
   Within each group of 4 along K, the input is taken as lanes (x0, x2) and (x1, x3), the order SXTB16 and its
   rotation give from 4 bytes, so the weights keep their natural byte order: each product pairs the same input
   and weight as in tq_conv2d, only the order of the sums differs (tinyq proves no partial sum overflows). */
#include <string.h>

#include "tq_conv.h"
#include "tq_simd.h"

/* tq_multiply_by_quantized_multiplier without 64-bit division, for mult >= 0: the doubling high multiply
   rounds half up, which is floor((x * mult + 2^30) / 2^31), then the shift right rounds half away from zero. */
static inline int8_t requantize(const tq_conv_mm_params *p, int32_t acc, int32_t oc)
{
    const int32_t shift = p->shift[oc];
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t x = (int32_t)((uint32_t)(acc + p->bias[oc]) << left);
    const int32_t high = (int32_t)(((int64_t)x * p->mult[oc] + ((int64_t)1 << 30)) >> 31);
    const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
    const int32_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
    int32_t v = (high >> right) + ((high & mask) > threshold ? 1 : 0) + p->output_offset;
    v = v < p->act_min ? p->act_min : v;
    v = v > p->act_max ? p->act_max : v;
    return (int8_t)v;
}

/* Sums of two inputs (a, b) times two output channels (interleaved weights w) over `groups` groups of 4:
   acc = {a.w0, a.w1, b.w0, b.w1}. The inputs are int16 in (x0, x2, x1, x3) order. */
static inline void mm_2x2_s16(const int16_t *a, const int16_t *b, const int8_t *w, int32_t groups, int32_t *acc)
{
    int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
#if TQ_PACKED
    for (; groups > 0; groups--) {
        const int32_t w0 = tq_read_s8x4(w);
        const int32_t w1 = tq_read_s8x4(w + 4);
        const int32_t w0e = tq_sxtb16(w0), w0o = tq_sxtb16_ror8(w0);
        const int32_t w1e = tq_sxtb16(w1), w1o = tq_sxtb16_ror8(w1);
        int32_t x = tq_read_s16x2(a);
        a0 = tq_smlad(x, w0e, a0);
        a1 = tq_smlad(x, w1e, a1);
        x = tq_read_s16x2(a + 2);
        a0 = tq_smlad(x, w0o, a0);
        a1 = tq_smlad(x, w1o, a1);
        x = tq_read_s16x2(b);
        b0 = tq_smlad(x, w0e, b0);
        b1 = tq_smlad(x, w1e, b1);
        x = tq_read_s16x2(b + 2);
        b0 = tq_smlad(x, w0o, b0);
        b1 = tq_smlad(x, w1o, b1);
        a += 4;
        b += 4;
        w += 8;
    }
#else
    for (; groups > 0; groups--) {
        const int32_t x0 = a[0], x2 = a[1], x1 = a[2], x3 = a[3];
        const int32_t y0 = b[0], y2 = b[1], y1 = b[2], y3 = b[3];
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

/* As mm_2x2_s16, the inputs being int8 in natural order, each plus the input offset. */
static inline void mm_2x2_s8(const int8_t *a, const int8_t *b, int32_t offset, const int8_t *w, int32_t groups,
                             int32_t *acc)
{
    int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
#if TQ_PACKED
    const int32_t off2 = tq_pack16(offset, offset);
    for (; groups > 0; groups--) {
        const int32_t w0 = tq_read_s8x4(w);
        const int32_t w1 = tq_read_s8x4(w + 4);
        const int32_t w0e = tq_sxtb16(w0), w0o = tq_sxtb16_ror8(w0);
        const int32_t w1e = tq_sxtb16(w1), w1o = tq_sxtb16_ror8(w1);
        int32_t x = tq_read_s8x4(a);
        int32_t xe = tq_sxtab16(off2, x), xo = tq_sxtab16_ror8(off2, x);
        a0 = tq_smlad(xe, w0e, a0);
        a1 = tq_smlad(xe, w1e, a1);
        a0 = tq_smlad(xo, w0o, a0);
        a1 = tq_smlad(xo, w1o, a1);
        x = tq_read_s8x4(b);
        xe = tq_sxtab16(off2, x);
        xo = tq_sxtab16_ror8(off2, x);
        b0 = tq_smlad(xe, w0e, b0);
        b1 = tq_smlad(xe, w1e, b1);
        b0 = tq_smlad(xo, w0o, b0);
        b1 = tq_smlad(xo, w1o, b1);
        a += 4;
        b += 4;
        w += 8;
    }
#else
    for (; groups > 0; groups--) {
        const int32_t x0 = a[0] + offset, x1 = a[1] + offset, x2 = a[2] + offset, x3 = a[3] + offset;
        const int32_t y0 = b[0] + offset, y1 = b[1] + offset, y2 = b[2] + offset, y3 = b[3] + offset;
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

/* Requantize and store the sums of a 2x2 block at output channels (oc, oc + 1) of pixels out and out2; the
   second channel of an odd out_c and a second pixel that does not exist (two == 0) are not stored. */
static inline void store_2x2(const tq_conv_mm_params *p, const int32_t *acc, int32_t oc, int8_t *out, int two)
{
    const int second = oc + 1 < p->out_c;
    out[oc] = requantize(p, acc[0], oc);
    if (second) {
        out[oc + 1] = requantize(p, acc[1], oc + 1);
    }
    if (two) {
        out[p->out_c + oc] = requantize(p, acc[2], oc);
        if (second) {
            out[p->out_c + oc + 1] = requantize(p, acc[3], oc + 1);
        }
    }
}

/* Position of K index k in the scratch: within each group of 4, (x0, x2, x1, x3). */
static inline int32_t lane_of(int32_t k)
{
    return k ^ ((((k >> 1) ^ k) & 1) * 3);
}

/* The k_padded int16 inputs of output pixel (oy, ox), input offset added, padding taps and K's tail 0. */
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
                    memset(s, 0, (size_t)in_c * sizeof *s);
                } else {
                    const int8_t *in = input + (iy * p->in_w + ix) * in_c;
                    for (c = 0; c < in_c; c += 4) {
#if TQ_PACKED
                        const int32_t v = tq_read_s8x4(in + c);
                        tq_write_s16x2(s + c, tq_sxtab16(off2, v));
                        tq_write_s16x2(s + c + 2, tq_sxtab16_ror8(off2, v));
#else
                        s[c] = (int16_t)(in[c] + offset);
                        s[c + 1] = (int16_t)(in[c + 2] + offset);
                        s[c + 2] = (int16_t)(in[c + 1] + offset);
                        s[c + 3] = (int16_t)(in[c + 3] + offset);
#endif
                    }
                }
                s += in_c;
            }
        }
        return;
    }
    for (ky = 0; ky < p->k_h; ky++) {
        const int32_t iy = y0 + p->dil_h * ky;
        const int row = iy >= 0 && iy < p->in_h;
        for (kx = 0; kx < p->k_w; kx++) {
            const int32_t ix = x0 + p->dil_w * kx;
            if (row && ix >= 0 && ix < p->in_w) {
                const int8_t *in = input + (iy * p->in_w + ix) * in_c;
                for (c = 0; c < in_c; c++, k++) {
                    s[lane_of(k)] = (int16_t)(in[c] + offset);
                }
            } else {
                for (c = 0; c < in_c; c++, k++) {
                    s[lane_of(k)] = 0;
                }
            }
        }
    }
    for (; k < p->k_padded; k++) {
        s[lane_of(k)] = 0;
    }
}

void tq_conv2d_im2col(const tq_conv_mm_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    int16_t *const s0 = (int16_t *)scratch;
    int16_t *const s1 = s0 + p->k_padded;
    const int32_t pixels = p->out_h * p->out_w;
    const int32_t groups = p->k_padded >> 2;
    int32_t pix, oc, oy = 0, ox = 0;
    for (pix = 0; pix < pixels; pix += 2) {
        const int two = pix + 1 < pixels;
        const int8_t *w = p->weights;
        int8_t *out = output + pix * p->out_c;
        gather(p, input, oy, ox, s0);
        if (++ox == p->out_w) {
            ox = 0;
            oy++;
        }
        if (two) {
            gather(p, input, oy, ox, s1);
            if (++ox == p->out_w) {
                ox = 0;
                oy++;
            }
        }
        for (oc = 0; oc < p->out_c; oc += 2) {
            int32_t acc[4];
            mm_2x2_s16(s0, two ? s1 : s0, w, groups, acc);
            store_2x2(p, acc, oc, out, two);
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
            mm_2x2_s8(a, b, p->input_offset, w, groups, acc);
            store_2x2(p, acc, oc, out, two);
            w += 2 * p->k_padded;
        }
    }
}
