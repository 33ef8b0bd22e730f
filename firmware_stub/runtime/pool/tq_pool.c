/* Pooling kernels (see tq_pool.h). The generic ones follow TFLM's reference loop by loop. The specialised ones cut
   each output pixel's window to the input once, so no tap is bounds-checked; on the packed path (DSP cores and the
   host) they take four channels per word: maxima with SSUB8/SEL, sums in two pairs of 16-bit lanes with SXTAB16.
   The portable path (Cortex-M0/M3) and the channels % 4 last ones go one channel at a time. Average pooling
   divides with TFLM's rounding, the clamp follows every output. */
#include "tq_pool.h"

#include "tq_requant.h"
#include "tq_simd.h"

static int32_t max_i32(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

static int32_t min_i32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

/* ---- Generic: the window is cut to the input, padding never counts ---- */

static void pool(const tq_pool_params *p, const int8_t *input, int8_t *output, int average)
{
    int32_t oy, ox, c, y, x;
    for (oy = 0; oy < p->out_h; oy++) {
        const int32_t y0 = oy * p->stride_h - p->pad_h;
        const int32_t ky0 = max_i32(0, -y0);
        const int32_t ky1 = min_i32(p->k_h, p->in_h - y0);
        for (ox = 0; ox < p->out_w; ox++) {
            const int32_t x0 = ox * p->stride_w - p->pad_w;
            const int32_t kx0 = max_i32(0, -x0);
            const int32_t kx1 = min_i32(p->k_w, p->in_w - x0);
            for (c = 0; c < p->channels; c++) {
                int32_t acc = average ? 0 : -128;
                int32_t count = 0;
                for (y = ky0; y < ky1; y++) {
                    for (x = kx0; x < kx1; x++) {
                        const int32_t v = input[((y0 + y) * p->in_w + (x0 + x)) * p->channels + c];
                        acc = average ? acc + v : max_i32(acc, v);
                        count++;
                    }
                }
                if (average && count > 0) {
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                }
                output[(oy * p->out_w + ox) * p->channels + c] = tq_clamp_s8(acc, p->act_min, p->act_max);
            }
        }
    }
}

void tq_max_pool(const tq_pool_params *p, const int8_t *input, int8_t *output)
{
    pool(p, input, output, 0);
}

void tq_average_pool(const tq_pool_params *p, const int8_t *input, int8_t *output)
{
    pool(p, input, output, 1);
}

/* ---- Specialised ---- */

/* First input index of output position o's window along one axis, cut to [0, n); *taps gets its length (0 when
   the window misses the input). */
static inline int32_t cut(int32_t o, int32_t stride, int32_t pad, int32_t k, int32_t n, int32_t *taps)
{
    int32_t lo = o * stride - pad;
    int32_t hi = lo + k;
    if (lo < 0) {
        lo = 0;
    }
    if (hi > n) {
        hi = n;
    }
    *taps = hi > lo ? hi - lo : 0;
    return lo;
}

static inline int8_t clamp8(int32_t v, int32_t lo, int32_t hi)
{
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* s / n rounded half away from zero, as TFLM's reference average pool (C division truncates toward zero). */
static inline int32_t rounded_div(int32_t s, int32_t n)
{
    return s > 0 ? (s + n / 2) / n : (s - n / 2) / n;
}

/* v in all four bytes. */
static inline int32_t splat4(int32_t v)
{
    return (int32_t)((uint32_t)(uint8_t)(int8_t)v * 0x01010101u);
}

/* The packed path's part of each kernel: the first c4 channels (a multiple of 4) four per word, returning the
   channel the one-channel loop goes on from (c4); elsewhere nothing is done and that channel is 0. `lo4` and `hi4`
   are the activation range in all four bytes. */
#if TQ_PACKED
static inline void write4(int8_t *out, int32_t v)
{
    memcpy(out, &v, sizeof v);
}

/* The four channels of the lanes of the 16-bit sums even (channels 0, 2) and odd (1, 3), divided by n, clamped. */
static inline void average4(int8_t *out, int32_t even, int32_t odd, int32_t n, int32_t lo, int32_t hi)
{
    out[0] = clamp8(rounded_div(tq_lo16(even), n), lo, hi);
    out[1] = clamp8(rounded_div(tq_lo16(odd), n), lo, hi);
    out[2] = clamp8(rounded_div(tq_hi16(even), n), lo, hi);
    out[3] = clamp8(rounded_div(tq_hi16(odd), n), lo, hi);
}

/* A whole 2x2 window at r (rows `row` bytes apart). */
static inline int32_t max_2x2_words(int8_t *out, const int8_t *r, int32_t ch, int32_t row, int32_t c4, int32_t lo4,
                                    int32_t hi4)
{
    int32_t c;
    for (c = 0; c < c4; c += 4, r += 4) {
        int32_t m = tq_max_s8x4(tq_read_s8x4(r), tq_read_s8x4(r + ch));
        m = tq_max_s8x4(m, tq_max_s8x4(tq_read_s8x4(r + row), tq_read_s8x4(r + row + ch)));
        write4(out + c, tq_min_s8x4(tq_max_s8x4(m, lo4), hi4));
    }
    return c;
}

/* A window of rows x cols taps at win (full2x2: it is a whole 2x2). */
static inline int32_t max_words(int8_t *out, const int8_t *win, int32_t ch, int32_t row, int32_t rows, int32_t cols,
                                int full2x2, int32_t c4, int32_t lo4, int32_t hi4)
{
    int32_t c, y, x;
    for (c = 0; c < c4; c += 4) {
        const int8_t *r = win + c;
        int32_t m = lo4;
        if (full2x2) {
            m = tq_max_s8x4(m, tq_max_s8x4(tq_read_s8x4(r), tq_read_s8x4(r + ch)));
            m = tq_max_s8x4(m, tq_max_s8x4(tq_read_s8x4(r + row), tq_read_s8x4(r + row + ch)));
        } else {
            for (y = rows; y > 0; y--, r += row) {
                const int8_t *q = r;
                for (x = cols; x > 0; x--, q += ch) {
                    m = tq_max_s8x4(m, tq_read_s8x4(q));
                }
            }
        }
        write4(out + c, tq_min_s8x4(m, hi4));
    }
    return c;
}

/* A window of rows x cols = n taps at win; at most 256 taps, so each 16-bit lane sum stays within
   [-32768, 32512]. */
static inline int32_t average_words(int8_t *out, const int8_t *win, int32_t ch, int32_t row, int32_t rows,
                                    int32_t cols, int32_t n, int32_t c4, int32_t lo, int32_t hi)
{
    int32_t c, y, x;
    for (c = 0; c < c4; c += 4) {
        const int8_t *r = win + c;
        int32_t even = 0, odd = 0;
        for (y = rows; y > 0; y--, r += row) {
            const int8_t *q = r;
            for (x = cols; x > 0; x--, q += ch) {
                const int32_t v = tq_read_s8x4(q);
                even = tq_sxtab16(even, v);
                odd = tq_sxtab16_ror8(odd, v);
            }
        }
        average4(out + c, even, odd, n, lo, hi);
    }
    return c;
}

/* The whole input's n pixels: 16-bit lane sums over chunks of at most 256 pixels, widened into int32 after each. */
static inline int32_t global_average_words(int8_t *output, const int8_t *input, int32_t ch, int32_t n, int32_t lo,
                                           int32_t hi)
{
    int32_t c, i;
    for (c = 0; c + 4 <= ch; c += 4) {
        const int8_t *q = input + c;
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, left;
        for (left = n; left > 0; left -= 256) {
            const int32_t chunk = left < 256 ? left : 256;
            int32_t even = 0, odd = 0;
            for (i = chunk >> 1; i > 0; i--, q += 2 * ch) {
                const int32_t v = tq_read_s8x4(q), w = tq_read_s8x4(q + ch);
                even = tq_sxtab16(tq_sxtab16(even, v), w);
                odd = tq_sxtab16_ror8(tq_sxtab16_ror8(odd, v), w);
            }
            if (chunk & 1) {
                const int32_t v = tq_read_s8x4(q);
                even = tq_sxtab16(even, v);
                odd = tq_sxtab16_ror8(odd, v);
                q += ch;
            }
            s0 += tq_lo16(even);
            s1 += tq_lo16(odd);
            s2 += tq_hi16(even);
            s3 += tq_hi16(odd);
        }
        output[c] = clamp8(rounded_div(s0, n), lo, hi);
        output[c + 1] = clamp8(rounded_div(s1, n), lo, hi);
        output[c + 2] = clamp8(rounded_div(s2, n), lo, hi);
        output[c + 3] = clamp8(rounded_div(s3, n), lo, hi);
    }
    return c;
}
#else
static inline int32_t max_2x2_words(int8_t *out, const int8_t *r, int32_t ch, int32_t row, int32_t c4, int32_t lo4,
                                    int32_t hi4)
{
    (void)out, (void)r, (void)ch, (void)row, (void)c4, (void)lo4, (void)hi4;
    return 0;
}

static inline int32_t max_words(int8_t *out, const int8_t *win, int32_t ch, int32_t row, int32_t rows, int32_t cols,
                                int full2x2, int32_t c4, int32_t lo4, int32_t hi4)
{
    (void)out, (void)win, (void)ch, (void)row, (void)rows, (void)cols, (void)full2x2, (void)c4, (void)lo4, (void)hi4;
    return 0;
}

static inline int32_t average_words(int8_t *out, const int8_t *win, int32_t ch, int32_t row, int32_t rows,
                                    int32_t cols, int32_t n, int32_t c4, int32_t lo, int32_t hi)
{
    (void)out, (void)win, (void)ch, (void)row, (void)rows, (void)cols, (void)n, (void)c4, (void)lo, (void)hi;
    return 0;
}

static inline int32_t global_average_words(int8_t *output, const int8_t *input, int32_t ch, int32_t n, int32_t lo,
                                           int32_t hi)
{
    (void)output, (void)input, (void)ch, (void)n, (void)lo, (void)hi;
    return 0;
}
#endif

/* Max pooling when every window is a whole 2x2 inside the input (the demo CNN's pools): pointers step, nothing is
   cut. */
static void max_pool_2x2_inside(const tq_pool_params *p, const int8_t *input, int8_t *output)
{
    const int32_t ch = p->channels, row = p->in_w * ch, step = p->stride_w * ch;
    const int32_t lo = p->act_min, hi = p->act_max;
    const int32_t c4 = ch & ~3, lo4 = splat4(lo), hi4 = splat4(hi);
    int32_t oy, ox, c;
    for (oy = 0; oy < p->out_h; oy++) {
        const int8_t *win = input + oy * p->stride_h * row;
        for (ox = p->out_w; ox > 0; ox--, win += step, output += ch) {
            const int8_t *r;
            c = max_2x2_words(output, win, ch, row, c4, lo4, hi4);
            for (r = win + c; c < ch; c++, r++) {
                const int32_t a = r[0] > r[ch] ? r[0] : r[ch];
                const int32_t b = r[row] > r[row + ch] ? r[row] : r[row + ch];
                const int32_t m = a > b ? a : b;
                output[c] = clamp8(m, lo, hi);
            }
        }
    }
}

void tq_max_pool_c4(const tq_pool_params *p, const int8_t *input, int8_t *output)
{
    if (p->k_h == 2 && p->k_w == 2 && p->pad_h == 0 && p->pad_w == 0 && (p->out_h - 1) * p->stride_h + 2 <= p->in_h
        && (p->out_w - 1) * p->stride_w + 2 <= p->in_w) {
        max_pool_2x2_inside(p, input, output);
        return;
    }
    const int32_t ch = p->channels, row = p->in_w * ch;
    const int32_t lo = p->act_min, hi = p->act_max;
    const int32_t c4 = ch & ~3, lo4 = splat4(lo), hi4 = splat4(hi);
    int32_t oy, ox, c, y, x, rows, cols;
    for (oy = 0; oy < p->out_h; oy++) {
        const int32_t iy = cut(oy, p->stride_h, p->pad_h, p->k_h, p->in_h, &rows);
        for (ox = 0; ox < p->out_w; ox++, output += ch) {
            const int32_t ix = cut(ox, p->stride_w, p->pad_w, p->k_w, p->in_w, &cols);
            const int8_t *win = input + (iy * p->in_w + ix) * ch;
            const int full2x2 = rows == 2 && cols == 2;
            for (c = max_words(output, win, ch, row, rows, cols, full2x2, c4, lo4, hi4); c < ch; c++) {
                const int8_t *r = win + c;
                int32_t m = lo;
                if (full2x2) {
                    const int32_t a = r[0] > r[ch] ? r[0] : r[ch];
                    const int32_t b = r[row] > r[row + ch] ? r[row] : r[row + ch];
                    m = a > b ? (a > m ? a : m) : (b > m ? b : m);
                } else {
                    for (y = rows; y > 0; y--, r += row) {
                        const int8_t *q = r;
                        for (x = cols; x > 0; x--, q += ch) {
                            m = *q > m ? *q : m;
                        }
                    }
                }
                output[c] = (int8_t)(m < hi ? m : hi);
            }
        }
    }
}

void tq_average_pool_c4(const tq_pool_params *p, const int8_t *input, int8_t *output)
{
    const int32_t ch = p->channels, row = p->in_w * ch;
    const int32_t lo = p->act_min, hi = p->act_max;
    const int32_t c4 = ch & ~3;
    int32_t oy, ox, c, y, x, rows, cols;
    for (oy = 0; oy < p->out_h; oy++) {
        const int32_t iy = cut(oy, p->stride_h, p->pad_h, p->k_h, p->in_h, &rows);
        for (ox = 0; ox < p->out_w; ox++, output += ch) {
            const int32_t ix = cut(ox, p->stride_w, p->pad_w, p->k_w, p->in_w, &cols);
            const int8_t *win = input + (iy * p->in_w + ix) * ch;
            const int32_t n = rows * cols;
            if (n == 0) {
                for (c = 0; c < ch; c++) {
                    output[c] = clamp8(0, lo, hi);
                }
                continue;
            }
            for (c = average_words(output, win, ch, row, rows, cols, n, c4, lo, hi); c < ch; c++) {
                const int8_t *r = win + c;
                int32_t s = 0;
                for (y = rows; y > 0; y--, r += row) {
                    const int8_t *q = r;
                    for (x = cols; x > 0; x--, q += ch) {
                        s += *q;
                    }
                }
                output[c] = clamp8(rounded_div(s, n), lo, hi);
            }
        }
    }
}

void tq_global_average_pool(const tq_pool_params *p, const int8_t *input, int8_t *output)
{
    const int32_t ch = p->channels, n = p->in_h * p->in_w;
    const int32_t lo = p->act_min, hi = p->act_max;
    int32_t c, i;
    for (c = global_average_words(output, input, ch, n, lo, hi); c < ch; c++) {
        const int8_t *q = input + c;
        int32_t s = 0;
        for (i = n; i > 0; i--, q += ch) {
            s += *q;
        }
        output[c] = clamp8(rounded_div(s, n), lo, hi);
    }
}
