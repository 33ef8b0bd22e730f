/* CONV_2D kernels (see tq_conv.h). The generic tq_conv2d follows TFLM's reference loop by loop. The specialised
   ones are a matrix product of two output pixels by two output channels per step: on the DSP extension's two-lane
   multiply-accumulate (SMLAD) on the packed path (tq_path.h), SSE2/AVX2 sums on the host, plain C elsewhere.
   Within each group of 4 along K, the input is taken as lanes (x0, x2) and (x1, x3), the order SXTB16 and its
   rotation give from 4 bytes, so the weights keep their natural byte order: each product pairs the same input
   and weight as in tq_conv2d, only the order of the sums differs (tinyq proves no partial sum overflows). */
#include "tq_conv.h"

#include "tq_requant.h"
#include "tq_simd.h"

/* ---- Generic ---- */

/* Bias, per-channel rescale, output zero point and the fused activation's clamp of one conv output. */
static int8_t conv_output(const tq_conv_params *p, int32_t acc, int32_t oc)
{
    acc += p->bias[oc];
    acc = tq_multiply_by_quantized_multiplier(acc, p->mult[oc], p->shift[oc]) + p->output_offset;
    return tq_clamp_s8(acc, p->act_min, p->act_max);
}

void tq_conv2d(const tq_conv_params *p, const int8_t *input, int8_t *output)
{
    int32_t oy, ox, oc, ky, kx, ic;
    for (oy = 0; oy < p->out_h; oy++) {
        const int32_t y0 = oy * p->stride_h - p->pad_h;
        for (ox = 0; ox < p->out_w; ox++) {
            const int32_t x0 = ox * p->stride_w - p->pad_w;
            for (oc = 0; oc < p->out_c; oc++) {
                const int8_t *w = p->weights + (int32_t)oc * p->k_h * p->k_w * p->in_c;
                int32_t acc = 0;
                for (ky = 0; ky < p->k_h; ky++) {
                    const int32_t iy = y0 + p->dil_h * ky;
                    if (iy < 0 || iy >= p->in_h) {
                        continue;
                    }
                    for (kx = 0; kx < p->k_w; kx++) {
                        const int32_t ix = x0 + p->dil_w * kx;
                        const int8_t *in;
                        const int8_t *wk;
                        if (ix < 0 || ix >= p->in_w) {
                            continue;
                        }
                        in = input + (iy * p->in_w + ix) * p->in_c;
                        wk = w + (ky * p->k_w + kx) * p->in_c;
                        for (ic = 0; ic < p->in_c; ic++) {
                            acc += (int32_t)wk[ic] * ((int32_t)in[ic] + p->input_offset);
                        }
                    }
                }
                output[(oy * p->out_w + ox) * p->out_c + oc] = conv_output(p, acc, oc);
            }
        }
    }
}

/* ---- Specialised: the matrix kernels (im2col, 1x1) ---- */

/* The layer's output zero point and activation range (used by the unfused requantization). */
typedef struct {
    int32_t offset, lo, hi;
} tq_conv_out;

/* How a layer's sums are requantized: tq_requantize_lr (rows {left, right, bias, multiplier, 0, 0}) then the
   activation clamp, or tq_requantize_fused (rows as in tq_conv2d_shallow) then int8's own range (one SSAT); a
   fused layer with a narrower activation range is clamped afterwards (clamp_outputs). */
enum { RQ_LR, RQ_FUSED_FULL };

/* One sum (its bias already in it) requantized with its channel's row q; `mode` is a constant where inlined. */
TQ_INLINE int8_t requantize(int32_t acc, const int32_t *q, int mode, const tq_conv_out o)
{
    int32_t v;
    if (mode == RQ_LR) {
        v = tq_requantize_lr(acc, q[3], q[0], q[1]) + o.offset;
    } else {
        v = tq_requantize_fused(acc, q[3], TQ_FUSED_CONSTANT(q), q[4]);
    }
    if (mode == RQ_FUSED_FULL) {
        return (int8_t)tq_sat_s8(v);
    }
    v = v < o.lo ? o.lo : v;
    v = v > o.hi ? o.hi : v;
    return (int8_t)v;
}

/* ---- Each path's inner loops, side by side (tq_path.h) ---- */

/* mm_2x2_s16: the sums of two pixels times two output channels (interleaved weights w) over `groups` groups of 4,
   started at the channels' biases: acc = {a.w0, a.w1, b.w0, b.w1}. Per group, s holds 8 int16: pixel a then pixel
   b, each as (x0, x2, x1, x3) (in natural lane order on the host, see host_widen).
   gather_run: gather's inner step for a tap inside the input, in_c a multiple of 4: in_c int8 inputs plus the input
   offset (`offset`, also as two lanes `off2`) as int16 into s in groups of 4 at a stride of 8; returns s past them.
   widen: a 1x1 pixel's in_c int8 inputs (a multiple of 4) as int16 into s, groups of 4 at a stride of 8 as gather.
   The packed path widens a word at a time in the (x0, x2, x1, x3) lane order, the host in natural order. */
#if TQ_PATH_HOST_SIMD
#if TQ_HOST_AVX2
/* The host's first groups two per 256-bit step (see mm_2x2_s16), into diag and cross; returns the groups left
   (0 or 1), s and w advanced past the ones taken. */
TQ_INLINE int32_t host_mm_avx2(const int16_t **s, const int8_t **w, int32_t groups, __m128i *diag, __m128i *cross)
{
    __m256i diag2 = _mm256_setzero_si256(), cross2 = _mm256_setzero_si256();
    for (; groups > 1; groups -= 2, *s += 16, *w += 16) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)*s);
        const __m256i c = _mm256_cvtepi8_epi16(tq_host_load128(*w));
        diag2 = _mm256_add_epi32(diag2, _mm256_madd_epi16(v, c));
        cross2 = _mm256_add_epi32(cross2, _mm256_madd_epi16(v, _mm256_shuffle_epi32(c, 0x4E)));
    }
    *diag = _mm_add_epi32(_mm256_castsi256_si128(diag2), _mm256_extracti128_si256(diag2, 1));
    *cross = _mm_add_epi32(_mm256_castsi256_si128(cross2), _mm256_extracti128_si256(cross2, 1));
    return groups;
}
#else
TQ_INLINE int32_t host_mm_avx2(const int16_t **s, const int8_t **w, int32_t groups, __m128i *diag, __m128i *cross)
{
    (void)s, (void)w, (void)diag, (void)cross;
    return groups;
}
#endif

/* The host keeps each group of 4 in the scratch in natural order (x0, x1, x2, x3), so that the weights need no
   shuffle: `groups` groups of 4 int8 from in, plus `off`, as int16 into s at a stride of 8 (two groups a step). */
TQ_INLINE void host_widen(int16_t *s, const int8_t *in, int32_t groups, __m128i off)
{
    __m128i v;
    for (; groups > 1; groups -= 2, in += 8, s += 16) {
        v = _mm_add_epi16(tq_host_widen8(tq_host_load64(in)), off);
        _mm_storel_epi64((__m128i *)(void *)s, v);
        _mm_storel_epi64((__m128i *)(void *)(s + 8), _mm_unpackhi_epi64(v, v));
    }
    if (groups > 0) {
        v = _mm_add_epi16(tq_host_widen8(_mm_cvtsi32_si128(tq_read_s8x4(in))), off);
        _mm_storel_epi64((__m128i *)(void *)s, v);
    }
}

/* Per group diag = {a.w0, a.w0, b.w1, b.w1} and cross = {a.w1, a.w1, b.w0, b.w0} in lane pairs. */
TQ_INLINE void mm_2x2_s16(const int16_t *s, const int8_t *w, int32_t groups, int32_t bias0, int32_t bias1,
                          int32_t *acc)
{
    __m128i diag = _mm_setzero_si128(), cross = _mm_setzero_si128();
    groups = host_mm_avx2(&s, &w, groups, &diag, &cross);
    for (; groups > 0; groups--, s += 8, w += 8) {
        const __m128i v = tq_host_load128(s);
        const __m128i c = tq_host_widen8(tq_host_load64(w));
        diag = _mm_add_epi32(diag, _mm_madd_epi16(v, c));
        cross = _mm_add_epi32(cross, _mm_madd_epi16(v, _mm_shuffle_epi32(c, 0x4E)));
    }
    acc[0] = tq_host_sum01(bias0, diag);
    acc[1] = tq_host_sum01(bias1, cross);
    acc[2] = tq_host_sum23(bias0, cross);
    acc[3] = tq_host_sum23(bias1, diag);
}

TQ_INLINE int16_t *gather_run(int16_t *s, const int8_t *in, int32_t in_c, int32_t offset, int32_t off2)
{
    (void)off2;
    host_widen(s, in, in_c >> 2, _mm_set1_epi16((int16_t)offset));
    return s + 2 * in_c;
}

TQ_INLINE void widen(const int8_t *in, int16_t *s, int32_t groups)
{
    host_widen(s, in, groups, _mm_setzero_si128());
}
#elif TQ_PACKED
TQ_INLINE void mm_2x2_s16(const int16_t *s, const int8_t *w, int32_t groups, int32_t bias0, int32_t bias1,
                          int32_t *acc)
{
    int32_t a0 = bias0, a1 = bias1, b0 = bias0, b1 = bias1;
    const int8_t *const end = w + 8 * groups;
    s = (const int16_t *)TQ_ASSUME_ALIGNED4(s); /* the scratch is: word loads, paired where they can */
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
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

TQ_INLINE int16_t *gather_run(int16_t *s, const int8_t *in, int32_t in_c, int32_t offset, int32_t off2)
{
    int32_t c;
    (void)offset;
    for (c = 0; c < in_c; c += 4, s += 8) {
        const int32_t v = tq_read_s8x4(in + c);
        tq_write_s16x2(s, tq_sxtab16(off2, v));
        tq_write_s16x2(s + 2, tq_sxtab16_ror8(off2, v));
    }
    return s;
}

TQ_INLINE void widen(const int8_t *in, int16_t *s, int32_t groups)
{
    for (; groups > 0; groups--) {
        const int32_t v = tq_read_s8x4(in);
        tq_write_s16x2(s, tq_sxtb16(v));
        tq_write_s16x2(s + 2, tq_sxtb16_ror8(v));
        in += 4;
        s += 8;
    }
}
#else
TQ_INLINE void mm_2x2_s16(const int16_t *s, const int8_t *w, int32_t groups, int32_t bias0, int32_t bias1,
                          int32_t *acc)
{
    int32_t a0 = bias0, a1 = bias1, b0 = bias0, b1 = bias1;
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
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

TQ_INLINE int16_t *gather_run(int16_t *s, const int8_t *in, int32_t in_c, int32_t offset, int32_t off2)
{
    int32_t c;
    (void)off2;
    for (c = 0; c < in_c; c += 4, s += 8) {
        s[0] = (int16_t)(in[c] + offset);
        s[1] = (int16_t)(in[c + 2] + offset);
        s[2] = (int16_t)(in[c + 1] + offset);
        s[3] = (int16_t)(in[c + 3] + offset);
    }
    return s;
}

TQ_INLINE void widen(const int8_t *in, int16_t *s, int32_t groups)
{
    for (; groups > 0; groups--) {
        s[0] = in[0];
        s[1] = in[2];
        s[2] = in[1];
        s[3] = in[3];
        in += 4;
        s += 8;
    }
}
#endif

/* gather_order: the lanes of a gather in any-depth natural order into (x0, x2, x1, x3), but on the host.
   shallow_sums: two output channels' sums (weights w) of two pixels over the gathered taps s, `words` words each,
   added to acc = {a0, a1, b0, b1} (pixel a, b; channel 0, 1). */
#if TQ_PATH_HOST_SIMD
TQ_INLINE void gather_order(int16_t *s, int32_t k_padded)
{
    (void)s, (void)k_padded;
}

/* Two words per step: v = {xa, xb} twice, c = {w0, w1} twice; diag = {a0, b1, a0, b1}, cross = {a1, b0, a1, b0}. */
TQ_INLINE void shallow_sums(const int32_t *s, const int32_t *w, int32_t words, int32_t acc[4])
{
    __m128i diag = _mm_setzero_si128(), cross = _mm_setzero_si128(), v, c;
    int32_t i;
    for (i = 0; i + 2 <= words; i += 2) {
        v = tq_host_load128(s + 2 * i);
        c = tq_host_load128(w + 2 * i);
        diag = _mm_add_epi32(diag, _mm_madd_epi16(v, c));
        cross = _mm_add_epi32(cross, _mm_madd_epi16(v, _mm_shuffle_epi32(c, 0xB1)));
    }
    if (i < words) {
        v = tq_host_load64(s + 2 * i);
        c = tq_host_load64(w + 2 * i);
        diag = _mm_add_epi32(diag, _mm_madd_epi16(v, c));
        cross = _mm_add_epi32(cross, _mm_madd_epi16(v, _mm_shuffle_epi32(c, 0xB1)));
    }
    diag = _mm_add_epi32(diag, _mm_shuffle_epi32(diag, 0x4E));
    cross = _mm_add_epi32(cross, _mm_shuffle_epi32(cross, 0x4E));
    acc[0] = (int32_t)((uint32_t)acc[0] + (uint32_t)_mm_cvtsi128_si32(diag));
    acc[3] = (int32_t)((uint32_t)acc[3] + (uint32_t)_mm_cvtsi128_si32(_mm_shuffle_epi32(diag, 0x55)));
    acc[1] = (int32_t)((uint32_t)acc[1] + (uint32_t)_mm_cvtsi128_si32(cross));
    acc[2] = (int32_t)((uint32_t)acc[2] + (uint32_t)_mm_cvtsi128_si32(_mm_shuffle_epi32(cross, 0x55)));
}
#else
TQ_INLINE void gather_order(int16_t *s, int32_t k_padded)
{
    int32_t k;
    for (k = 0; k < k_padded; k += 4, s += 8) {
        const int16_t t = s[1];
        s[1] = s[2];
        s[2] = t;
    }
}

/* Word i of both pixels' taps times word i of both channels' weights. */
#define TQ_SHALLOW_STEP(i)                                                                                     \
    do {                                                                                                       \
        const int32_t xa = s[2 * (i)], xb = s[2 * (i) + 1], w0 = w[2 * (i)], w1 = w[2 * (i) + 1];              \
        a0 = tq_smlad(xa, w0, a0);                                                                             \
        a1 = tq_smlad(xa, w1, a1);                                                                             \
        b0 = tq_smlad(xb, w0, b0);                                                                             \
        b1 = tq_smlad(xb, w1, b1);                                                                             \
    } while (0)

/* Four words per pass at constant offsets, then the last 0 to 3. */
TQ_INLINE void shallow_sums(const int32_t *s, const int32_t *w, int32_t words, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], b0 = acc[2], b1 = acc[3];
    const int32_t *const s_end = s + 2 * (words & ~3);
    while (s != s_end) {
        TQ_SHALLOW_STEP(0);
        TQ_SHALLOW_STEP(1);
        TQ_SHALLOW_STEP(2);
        TQ_SHALLOW_STEP(3);
        s += 8;
        w += 8;
    }
    switch (words & 3) {
    case 3:
        TQ_SHALLOW_STEP(2);
        /* fall through */
    case 2:
        TQ_SHALLOW_STEP(1);
        /* fall through */
    case 1:
        TQ_SHALLOW_STEP(0);
        break;
    default:
        break;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}
#endif

/* The n output bytes of a layer clamped to [lo, hi] in place, for a fused layer whose activation range is narrower
   than int8's: its outputs come from the int8-range copy of the loops (clamping a saturated value to a range
   inside int8's is clamping the value), so that no loop nest is compiled twice for the clamp alone. The packed
   path clamps four bytes per word first (clamp_words returns how many it left). */
#if TQ_PACKED
TQ_INLINE int32_t clamp_words(int8_t **out, int32_t n, int32_t lo, int32_t hi)
{
    const int32_t lo4 = (int32_t)((uint32_t)(uint8_t)lo * 0x01010101u);
    const int32_t hi4 = (int32_t)((uint32_t)(uint8_t)hi * 0x01010101u);
    for (; n >= 4; n -= 4, *out += 4) {
        const int32_t v = tq_min_s8x4(tq_max_s8x4(tq_read_s8x4(*out), lo4), hi4);
        memcpy(*out, &v, sizeof v);
    }
    return n;
}
#else
TQ_INLINE int32_t clamp_words(int8_t **out, int32_t n, int32_t lo, int32_t hi)
{
    (void)out, (void)lo, (void)hi;
    return n;
}
#endif

/* Every output channel of the pixel pair gathered in s (outputs at out and out_b; out_b == out where the pair's
   second pixel repeats the first), two channels per step, each block requantized from registers. An odd out_c's
   last step is completed by a copy of the last channel (weights and row), stored over the same byte. All four
   values are computed before the first store, which could alias the constants as far as C knows. */
TQ_INLINE void mm_channels(const int16_t *s, const int8_t *w, const int32_t *q, int8_t *out, int8_t *out_b,
                           int32_t out_c, int32_t groups, int mode, const tq_conv_out o)
{
    int8_t *const end = out + (out_c & ~1);
    while (out != end) {
        int32_t acc[4];
        mm_2x2_s16(s, w, groups, q[2], q[6 + 2], acc);
        {
            const int8_t y01 = requantize(acc[1], q + 6, mode, o), y11 = requantize(acc[3], q + 6, mode, o);
            const int8_t y00 = requantize(acc[0], q, mode, o), y10 = requantize(acc[2], q, mode, o);
            out[1] = y01;
            out_b[1] = y11;
            out[0] = y00;
            out_b[0] = y10;
        }
        out += 2;
        out_b += 2;
        w += 8 * groups;
        q += 12;
    }
    if (out_c & 1) {
        int32_t acc[4];
        mm_2x2_s16(s, w, groups, q[2], q[2], acc);
        {
            const int8_t y00 = requantize(acc[0], q, mode, o), y10 = requantize(acc[2], q, mode, o);
            out[0] = y00;
            out_b[0] = y10;
        }
    }
}

/* The last output channel of an odd out_c for the pixel pair gathered in s (outputs at out and out_b), in one
   copy shared by every caller and mode: the loops call mm_channels with an even count, which leaves its odd tail
   out of each inlined copy. Few arguments, so that the callers' frames stay small. */
TQ_NOINLINE void mm_odd_channel(const tq_conv_mm_params *p, const int16_t *s, int8_t *out, int8_t *out_b,
                                int mode)
{
    const int32_t groups = p->k_padded >> 2, last = p->out_c - 1;
    const tq_conv_out o = {p->output_offset, p->act_min, p->act_max};
    mm_channels(s, p->weights + last * 4 * groups, p->requant + last * 6, out + last, out_b + last, 1, groups, mode,
                o);
}

/* Every output channel of the pixel pair gathered in s: the pairs inlined, an odd count's last channel shared. */
TQ_INLINE void mm_pixel_pair(const tq_conv_mm_params *p, const int16_t *s, int8_t *out, int8_t *out_b,
                             int32_t groups, int mode, const tq_conv_out o)
{
    mm_channels(s, p->weights, p->requant, out, out_b, p->out_c & ~1, groups, mode, o);
    if (p->out_c & 1) {
        mm_odd_channel(p, s, out, out_b, mode);
    }
}

static void clamp_outputs(int8_t *out, int32_t n, int32_t lo, int32_t hi)
{
    if (lo == -128 && hi == 127) {
        return;
    }
    for (n = clamp_words(&out, n, lo, hi); n > 0; n--, out++) {
        const int32_t v = *out;
        *out = (int8_t)(v < lo ? lo : (v > hi ? hi : v));
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
        const int32_t off2 = tq_pack16(offset, offset);
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
                    s = gather_run(s, input + (iy * p->in_w + ix) * in_c, in_c, offset, off2);
                }
            }
        }
        return;
    }
    /* Any depth: natural K order at s[k + (k & ~3)] (groups of 4 at a stride of 8), then the lane order. */
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
    gather_order(s, p->k_padded);
}

TQ_INLINE void im2col_body(const tq_conv_mm_params *p, const int8_t *input, int8_t *output, int16_t *s,
                           int mode)
{
    const int32_t pixels = p->out_h * p->out_w;
    const int32_t groups = p->k_padded >> 2;
    const tq_conv_out o = {p->output_offset, p->act_min, p->act_max};
    int32_t pix, oy = 0, ox = 0;
    for (pix = 0; pix < pixels; pix += 2) {
        const int two = pix + 1 < pixels;
        int8_t *out = output + pix * p->out_c;
        gather(p, input, oy, ox, s);
        if (two) {
            if (++ox == p->out_w) {
                ox = 0;
                oy++;
            }
            gather(p, input, oy, ox, s + 4);
            if (++ox == p->out_w) {
                ox = 0;
                oy++;
            }
        } else {
            gather(p, input, oy, ox, s + 4); /* the lone last pixel twice: both results are its own */
        }
        mm_pixel_pair(p, s, out, two ? out + p->out_c : out, groups, mode, o);
    }
}

void tq_conv2d_im2col(const tq_conv_mm_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    im2col_body(p, input, output, (int16_t *)scratch, RQ_FUSED_FULL);
    clamp_outputs(output, p->out_h * p->out_w * p->out_c, p->act_min, p->act_max);
}

void tq_conv2d_im2col_lr(const tq_conv_mm_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    im2col_body(p, input, output, (int16_t *)scratch, RQ_LR);
}

/* An odd pixel count's last pixel, gathered twice in s (both results its own, stored over each other), in one
   copy shared by every inlined loop and mode. Here out_b == out is known, so the compiler drops the sums of the
   first pixel, whose stores the second's overwrite: half the work of running the pixel through the main loop
   (which costs 6% of a 3x3-pixel layer's instructions) and less code than another inlined copy. */
TQ_NOINLINE void mm_lone_pixel(const tq_conv_mm_params *p, const int16_t *s, int8_t *out, int mode)
{
    const tq_conv_out o = {p->output_offset, p->act_min, p->act_max};
    mm_pixel_pair(p, s, out, out, p->k_padded >> 2, mode, o);
}

/* tq_conv2d_1x1 with the groups and the requantization mode constant where inlined. */
TQ_INLINE void pointwise_body(const tq_conv_mm_params *p, const int8_t *input, int8_t *output, int16_t *s,
                              int32_t groups, int mode)
{
    const int32_t pixels = p->out_h * p->out_w;
    const int32_t out_c = p->out_c;
    const int32_t step_x = p->stride_w * p->in_c;
    const int32_t step_y = p->stride_h * p->in_w * p->in_c - p->out_w * step_x;
    const tq_conv_out o = {p->output_offset, p->act_min, p->act_max};
    const int8_t *in = input;
    int8_t *out = output;
    int32_t pix, ox = 0;
    for (pix = 0; pix + 1 < pixels; pix += 2) {
        widen(in, s, groups);
        in += step_x;
        if (++ox == p->out_w) {
            ox = 0;
            in += step_y;
        }
        widen(in, s + 4, groups);
        in += step_x;
        if (++ox == p->out_w) {
            ox = 0;
            in += step_y;
        }
        mm_pixel_pair(p, s, out, out + out_c, groups, mode, o);
        out += 2 * out_c;
    }
    if (pix < pixels) {
        widen(in, s, p->k_padded >> 2);
        widen(in, s + 4, p->k_padded >> 2);
        mm_lone_pixel(p, s, out, mode);
    }
}

/* A depth of 8 gets its own copy with the groups constant (the multiply unrolled, no loop per block): on
   MobileNetV1-0.25's first pointwise layer that saves 9% of its instructions; at 16 a copy would save 5% of that
   layer, 0.3% of the model, for 630 bytes of code. */
TQ_INLINE void pointwise_mode(const tq_conv_mm_params *p, const int8_t *input, int8_t *output, int16_t *s,
                              int mode)
{
    switch (p->k_padded) {
    case 8:
        pointwise_body(p, input, output, s, 2, mode);
        break;
    default:
        pointwise_body(p, input, output, s, p->k_padded >> 2, mode);
        break;
    }
}

void tq_conv2d_1x1(const tq_conv_mm_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    pointwise_mode(p, input, output, (int16_t *)scratch, RQ_FUSED_FULL);
    clamp_outputs(output, p->out_h * p->out_w * p->out_c, p->act_min, p->act_max);
}

void tq_conv2d_1x1_lr(const tq_conv_mm_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    pointwise_body(p, input, output, (int16_t *)scratch, p->k_padded >> 2, RQ_LR);
}

/* ---- Specialised: shallow inputs (tq_conv2d_shallow) ---- */

/* One output pixel's taps as int16 pairs into words p, p + 2, p + 4, ...
   of s, with bounds checks (padding taps 0); for windows that touch the input's border. */
static void shallow_gather_border(const tq_conv_shallow_params *p, const int8_t *input, int32_t oy, int32_t ox,
                                  int32_t *s)
{
    const int32_t y0 = oy * p->stride_h - p->pad_h;
    const int32_t x0 = ox * p->stride_w - p->pad_w;
    int32_t ky, kx, c, k = 0, low = 0;
    for (ky = 0; ky < p->k_h; ky++) {
        const int32_t iy = y0 + p->dil_h * ky;
        const int row = iy >= 0 && iy < p->in_h;
        for (kx = 0; kx < p->k_w; kx++) {
            const int32_t ix = x0 + p->dil_w * kx;
            const int inside = row && ix >= 0 && ix < p->in_w;
            const int8_t *in = input + (iy * p->in_w + ix) * p->in_c;
            for (c = 0; c < p->in_c; c++, k++) {
                const int32_t v = inside ? in[c] + p->input_offset : 0;
                if (k & 1) {
                    s[k - 1] = tq_pack16(low, v);
                } else {
                    low = v;
                }
            }
        }
    }
    if (k & 1) {
        s[k - 1] = tq_pack16(low, 0);
    }
}

/* Both pixels' taps at once, their windows inside the input (a and b: the windows' first bytes); `offset`
   says whether to add the input offset (0 where it was folded into the bias: a constant where inlined). */
TQ_INLINE void shallow_gather_inside(const tq_conv_shallow_params *p, const int8_t *restrict a,
                                     const int8_t *restrict b, int32_t *restrict s, int offset)
{
    const int32_t *restrict off = p->tap_offsets;
    const int32_t *const end = off + (p->taps & ~1);
    const int32_t io = offset ? p->input_offset : 0;
    while (off != end) {
        const int32_t o0 = off[0], o1 = off[1];
        s[0] = tq_pack16(a[o0] + io, a[o1] + io);
        s[1] = tq_pack16(b[o0] + io, b[o1] + io);
        off += 2;
        s += 2;
    }
    if (p->taps & 1) {
        s[0] = tq_pack16(a[off[0]] + io, 0);
        s[1] = tq_pack16(b[off[0]] + io, 0);
    }
}

/* One sum requantized with its channel's row of the shallow requant table, saturated to int8 (a narrower
   activation range is clamped after the layer: clamp_outputs). */
TQ_INLINE int8_t shallow_requantize(int32_t acc, const int32_t *q)
{
    const int32_t v = tq_requantize_fused(acc, q[3], TQ_FUSED_CONSTANT(q), q[4]);
    return (int8_t)tq_sat_s8(v);
}

/* Two output channels (rows q and q + 6; weights w) of two pixels (outputs at out and out_b) over the gathered
   taps s. */
TQ_INLINE void shallow_pair(const int32_t *s, const int32_t *w, const int32_t *restrict q, int32_t words,
                            int8_t *restrict out, int8_t *restrict out_b)
{
    int32_t acc[4];
    acc[0] = q[2];
    acc[1] = q[6 + 2];
    acc[2] = q[2];
    acc[3] = q[6 + 2];
    shallow_sums(s, w, words, acc);
    out[1] = shallow_requantize(acc[1], q + 6);
    out_b[1] = shallow_requantize(acc[3], q + 6);
    out[0] = shallow_requantize(acc[0], q);
    out_b[0] = shallow_requantize(acc[2], q);
}

/* An odd out_c's last channel (the first of its pair's words in w, row q) for both pixels, one word per step: the
   same products and sums as shallow_pair in a plain loop, a fraction of the code of another inlined copy. */
TQ_NOINLINE void shallow_last(const int32_t *s, const int32_t *w, const int32_t *q, int32_t words,
                              int8_t *out, int8_t *out_b)
{
    int32_t a = q[2], b = q[2], i;
    for (i = 0; i < words; i++) {
        a = tq_smlad(s[2 * i], w[2 * i], a);
        b = tq_smlad(s[2 * i + 1], w[2 * i], b);
    }
    out[0] = shallow_requantize(a, q);
    out_b[0] = shallow_requantize(b, q);
}

void tq_conv2d_shallow(const tq_conv_shallow_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    int32_t *const scr = (int32_t *)scratch;
    const int32_t pixels = p->out_h * p->out_w;
    const int32_t words = (p->taps + 1) >> 1;
    const int32_t out_c = p->out_c;
    const int32_t span_h = (p->k_h - 1) * p->dil_h, span_w = (p->k_w - 1) * p->dil_w;
    int32_t pix, oc, oy = 0, ox = 0;
    for (pix = 0; pix < pixels; pix += 2) {
        /* a missing second pixel repeats the first: same taps, same outputs, stored over them */
        const int two = pix + 1 < pixels;
        const int32_t oy_b = two ? oy + (ox + 1 == p->out_w) : oy;
        const int32_t ox_b = two ? (ox + 1 == p->out_w ? 0 : ox + 1) : ox;
        const int32_t ya = oy * p->stride_h - p->pad_h, xa = ox * p->stride_w - p->pad_w;
        const int32_t yb = oy_b * p->stride_h - p->pad_h, xb = ox_b * p->stride_w - p->pad_w;
        const int32_t *w = p->weights;
        const int32_t *q = p->requant;
        int8_t *out = output + pix * out_c;
        int8_t *out_b = out + (two ? out_c : 0);
        if (ya >= 0 && yb >= 0 && xa >= 0 && xb >= 0 && ya + span_h < p->in_h && yb + span_h < p->in_h
            && xa + span_w < p->in_w && xb + span_w < p->in_w) {
            const int8_t *const in_a = input + (ya * p->in_w + xa) * p->in_c;
            const int8_t *const in_b = input + (yb * p->in_w + xb) * p->in_c;
            if (p->input_offset != 0) {
                shallow_gather_inside(p, in_a, in_b, scr, 1);
            } else {
                shallow_gather_inside(p, in_a, in_b, scr, 0);
            }
        } else {
            shallow_gather_border(p, input, oy, ox, scr);
            shallow_gather_border(p, input, oy_b, ox_b, scr + 1);
        }
        for (oc = 0; oc + 1 < out_c; oc += 2) {
            shallow_pair(scr, w, q, words, out + oc, out_b + oc);
            w += 2 * words;
            q += 12;
        }
        if (out_c & 1) {
            shallow_last(scr, w, q, words, out + oc, out_b + oc);
        }
        ox = ox_b + 1;
        oy = oy_b;
        if (ox == p->out_w) {
            ox = 0;
            oy++;
        }
    }
    clamp_outputs(output, pixels * out_c, p->act_min, p->act_max);
}
