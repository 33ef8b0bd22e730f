/* DEPTHWISE_CONV_2D kernels (see tq_depthwise.h). The generic tq_depthwise_conv2d follows TFLM's reference loop
   by loop. The specialised ones take four channels per step: on the packed path one
   word of input bytes becomes two 16-bit lane pairs with the input offset added (SXTAB16), two words of weights
   stored as 16-bit lanes match them, and SMLABB/SMLATT accumulate each channel; the portable path (cores without DSP)
   runs the same order one channel at a time. tq_dw_conv (any window): interior pixels read their window without
   bounds checks, border pixels the rectangle of taps inside the image (no dilation, so the taps inside form one).
   The 3x3 kernels read each group's constants from one stream and, on DSP cores, run a pixel's groups as one
   assembly loop; a window that leaves the image is first copied with its padding into a scratch patch. */
#include "tq_depthwise.h"

#include "tq_requant.h"
#include "tq_simd.h"

/* ---- Generic ---- */

/* Bias, per-channel rescale, output zero point and the fused activation's clamp of one output. */
static int8_t dw_output(const tq_conv_params *p, int32_t acc, int32_t oc)
{
    acc += p->bias[oc];
    acc = tq_multiply_by_quantized_multiplier(acc, p->mult[oc], p->shift[oc]) + p->output_offset;
    return tq_clamp_s8(acc, p->act_min, p->act_max);
}

void tq_depthwise_conv2d(const tq_conv_params *p, const int8_t *input, int8_t *output)
{
    int32_t oy, ox, ic, m, ky, kx;
    for (oy = 0; oy < p->out_h; oy++) {
        const int32_t y0 = oy * p->stride_h - p->pad_h;
        for (ox = 0; ox < p->out_w; ox++) {
            const int32_t x0 = ox * p->stride_w - p->pad_w;
            for (ic = 0; ic < p->in_c; ic++) {
                for (m = 0; m < p->depth_multiplier; m++) {
                    const int32_t oc = ic * p->depth_multiplier + m;
                    int32_t acc = 0;
                    for (ky = 0; ky < p->k_h; ky++) {
                        const int32_t iy = y0 + p->dil_h * ky;
                        if (iy < 0 || iy >= p->in_h) {
                            continue;
                        }
                        for (kx = 0; kx < p->k_w; kx++) {
                            const int32_t ix = x0 + p->dil_w * kx;
                            if (ix < 0 || ix >= p->in_w) {
                                continue;
                            }
                            acc += (int32_t)p->weights[(ky * p->k_w + kx) * p->out_c + oc] *
                                   ((int32_t)input[(iy * p->in_w + ix) * p->in_c + ic] + p->input_offset);
                        }
                    }
                    output[(oy * p->out_w + ox) * p->out_c + oc] = dw_output(p, acc, oc);
                }
            }
        }
    }
}

/* ---- Specialised: any window (tq_dw_conv) ---- */

/* TFLite's per-channel requantization of x (bias added) with the output offset and clamp, exact; see
   tq_depthwise.h. */
static int32_t dw_requant(int32_t x, const int32_t *q, int32_t output_offset, int32_t act_min, int32_t act_max)
{
    int32_t out;
    if (q[TQ_DW_SHIFT] >= 0) {
        out = tq_requantize_fused(x, q[TQ_DW_MULT], TQ_FUSED_CONSTANT(q + TQ_DW_C_LO), q[TQ_DW_SHIFT]);
    } else {
        out = tq_requantize(x, q[TQ_DW_MULT], q[TQ_DW_C_LO]) + output_offset;
    }
    out = out < act_min ? act_min : out;
    return out > act_max ? act_max : out;
}

#if TQ_PACKED

/* One tap of four channels: input bytes xw with the offset added in lanes (x0, x2) and (x1, x3), times the
   weights' matching 16-bit lanes w02 and w13, each product into its channel's sum. */
TQ_INLINE void dw_mac4(int32_t xw, int32_t w02, int32_t w13, int32_t off2, int32_t acc[4])
{
    const int32_t x02 = tq_sxtab16(off2, xw);
    const int32_t x13 = tq_sxtab16_ror8(off2, xw);
    acc[0] = tq_smlabb(x02, w02, acc[0]);
    acc[2] = tq_smlatt(x02, w02, acc[2]);
    acc[1] = tq_smlabb(x13, w13, acc[1]);
    acc[3] = tq_smlatt(x13, w13, acc[3]);
}

/* Four channels' sums, added to acc, over n_y x n_x taps of a k_w-wide window; `in` and `w` point at the first tap
   inside the image and its weights, `row` is the input row stride in bytes, `c` the pixel stride. */
TQ_INLINE void dw_sum4(const int8_t *in, const int32_t *w, int32_t row, int32_t c, int32_t n_y, int32_t n_x,
                       int32_t k_w, int32_t off2, int32_t acc[4])
{
    int32_t ky, kx;
    for (ky = 0; ky < n_y; ky++, in += row, w += 2 * k_w) {
        for (kx = 0; kx < n_x; kx++) {
            dw_mac4(tq_read_s8x4(in + kx * c), w[2 * kx], w[2 * kx + 1], off2, acc);
        }
    }
}

/* One tap of a 3x3 group's four channels into their sums, in uint32 as the hardware wraps (the final sums are
   proven in range); the C twin of the DSP build's assembly loop uses it. */
TQ_INLINE void dw3_mac4(const int8_t *x, int32_t w02, int32_t w13, int32_t acc[4])
{
    const int32_t xw = tq_read_s8x4(x);
    const int32_t x02 = tq_sxtb16(xw);
    const int32_t x13 = tq_sxtb16_ror8(xw);
    acc[0] = tq_smlabb(x02, w02, acc[0]);
    acc[2] = tq_smlatt(x02, w02, acc[2]);
    acc[1] = tq_smlabb(x13, w13, acc[1]);
    acc[3] = tq_smlatt(x13, w13, acc[3]);
}
#else

TQ_INLINE void dw_sum4(const int8_t *in, const int32_t *w, int32_t row, int32_t c, int32_t n_y, int32_t n_x,
                       int32_t k_w, int32_t off2, int32_t acc[4])
{
    const int32_t off = tq_lo16(off2);
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t ky, kx;
    for (ky = 0; ky < n_y; ky++) {
        for (kx = 0; kx < n_x; kx++) {
            const int8_t *x = in + ky * row + kx * c;
            const int32_t *wt = w + (ky * k_w + kx) * 2;
            a0 += ((int32_t)x[0] + off) * tq_lo16(wt[0]);
            a1 += ((int32_t)x[1] + off) * tq_lo16(wt[1]);
            a2 += ((int32_t)x[2] + off) * tq_hi16(wt[0]);
            a3 += ((int32_t)x[3] + off) * tq_hi16(wt[1]);
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

TQ_INLINE void dw3_mac4(const int8_t *x, int32_t w02, int32_t w13, int32_t acc[4])
{
    acc[0] = (int32_t)((uint32_t)acc[0] + (uint32_t)(x[0] * tq_lo16(w02)));
    acc[1] = (int32_t)((uint32_t)acc[1] + (uint32_t)(x[1] * tq_lo16(w13)));
    acc[2] = (int32_t)((uint32_t)acc[2] + (uint32_t)(x[2] * tq_hi16(w02)));
    acc[3] = (int32_t)((uint32_t)acc[3] + (uint32_t)(x[3] * tq_hi16(w13)));
}
#endif

/* Channel j (< 4) of a group's last, partial step, alone over the same layout, added to acc. */
static int32_t dw_sum1(const int8_t *in, const int32_t *w, int32_t row, int32_t c, int32_t n_y, int32_t n_x,
                       int32_t k_w, int32_t off, int32_t j, int32_t acc)
{
    int32_t ky, kx;
    for (ky = 0; ky < n_y; ky++) {
        for (kx = 0; kx < n_x; kx++) {
            const int32_t wt = w[(ky * k_w + kx) * 2 + (j & 1)];
            acc += ((int32_t)in[ky * row + kx * c + j] + off) * (j < 2 ? tq_lo16(wt) : tq_hi16(wt));
        }
    }
    return acc;
}

static inline int32_t max_i32(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

static inline int32_t min_i32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

/* What every pixel of a layer shares. */
typedef struct {
    int32_t row, c, off2, out_off, act_min, act_max;
} dw_layer;

/* One output pixel: the four-channel groups, then the tail channels alone. `in` and `w` point at the first tap
   inside the image and its weights; n_y x n_x taps of a k_h x k_w window are inside. Each sum starts from its
   channel's bias. */
static void dw_pixel(const tq_dw_params *p, const dw_layer *l, const int8_t *in, const int32_t *w, int8_t *out,
                     int32_t n_y, int32_t n_x)
{
    const int32_t taps2 = p->k_h * p->k_w * 2;
    const int32_t *q = p->requant;
    const int8_t *end = out + (l->c & ~3);
    int32_t j;
    for (; out < end; out += 4, in += 4, w += taps2, q += 4 * TQ_DW_REQUANT_SIZE) {
        int32_t acc[4];
        acc[0] = q[TQ_DW_BIAS];
        acc[1] = q[TQ_DW_REQUANT_SIZE + TQ_DW_BIAS];
        acc[2] = q[2 * TQ_DW_REQUANT_SIZE + TQ_DW_BIAS];
        acc[3] = q[3 * TQ_DW_REQUANT_SIZE + TQ_DW_BIAS];
        dw_sum4(in, w, l->row, l->c, n_y, n_x, p->k_w, l->off2, acc);
        for (j = 0; j < 4; j++) {
            out[j] = (int8_t)dw_requant(acc[j], q + j * TQ_DW_REQUANT_SIZE, l->out_off, l->act_min, l->act_max);
        }
    }
    for (j = 0; j < (l->c & 3); j++, q += TQ_DW_REQUANT_SIZE) {
        const int32_t acc = dw_sum1(in, w, l->row, l->c, n_y, n_x, p->k_w, p->input_offset, j, q[TQ_DW_BIAS]);
        out[j] = (int8_t)dw_requant(acc, q, l->out_off, l->act_min, l->act_max);
    }
}

void tq_dw_conv(const tq_dw_params *p, const int8_t *input, int8_t *output)
{
    dw_layer l;
    int32_t oy, ox;
    l.c = p->channels;
    l.row = p->in_w * l.c;
    l.off2 = tq_pack16(p->input_offset, p->input_offset);
    l.out_off = p->output_offset;
    l.act_min = p->act_min;
    l.act_max = p->act_max;
    for (oy = 0; oy < p->out_h; oy++) {
        const int32_t y0 = oy * p->stride_h - p->pad_h;
        const int32_t ky0 = max_i32(0, -y0);
        const int32_t ky1 = min_i32(p->k_h, p->in_h - y0);
        for (ox = 0; ox < p->out_w; ox++, output += l.c) {
            const int32_t x0 = ox * p->stride_w - p->pad_w;
            const int32_t kx0 = max_i32(0, -x0);
            const int32_t kx1 = min_i32(p->k_w, p->in_w - x0);
            const int8_t *in = input + (y0 + ky0) * l.row + (x0 + kx0) * l.c;
            const int32_t *w = p->weights + (ky0 * p->k_w + kx0) * 2;
            dw_pixel(p, &l, in, w, output, ky1 - ky0, kx1 - kx0);
        }
    }
}

/* ---- Specialised: 3x3, channels a multiple of four: one stream of words per group (tq_depthwise.h, TQ_DW3_*). ---- */

/* Channel sum (doubled, offset folded) to int8: the fused requantization of tq_requant.h for 2x with c doubled,
   so that the borrow of its -[x < 0] * 2^31 becomes -[x < 0] on the high word; q = (c lo, c hi, mult, r). */
#if TQ_SINGLE_ROUNDING
/* Single rounding: no sign correction (tq_requantize_fused's single form with c doubled). */
TQ_INLINE int32_t dw3_requant(int32_t acc, const int32_t *q)
{
    const int32_t hi = (int32_t)((TQ_FUSED_CONSTANT(q) + (int64_t)acc * q[2]) >> 32);
    return tq_sat_s8(hi >> (q[3] & 0xFF));
}
#else
TQ_INLINE int32_t dw3_requant(int32_t acc, const int32_t *q)
{
    const int32_t hi = (int32_t)((TQ_FUSED_CONSTANT(q) + (int64_t)acc * q[2]) >> 32) + (acc < 0 ? -1 : 0);
    return tq_sat_s8(hi >> (q[3] & 0xFF));
}
#endif

#if TQ_DSP_ASM
/* One tap: the input word at r9 (+ at), the group's next two weight words, four SMLAxy into r0..r3. */
#define DW3_TAP(at)                                                                                            \
    "ldr r4, [r9" at "]\n\t"                                                                                   \
    "ldrd r6, r8, [r10], #8\n\t"                                                                               \
    "sxtb16 r5, r4\n\t"                                                                                        \
    "smlabb r0, r5, r6, r0\n\t"                                                                                \
    "smlatt r2, r5, r6, r2\n\t"                                                                                \
    "sxtb16 r4, r4, ror #8\n\t"                                                                                \
    "smlabb r1, r4, r8, r1\n\t"                                                                                \
    "smlatt r3, r4, r8, r3\n\t"
#define DW3_ROW DW3_TAP("") DW3_TAP(", r11") DW3_TAP(", r11, lsl #1")
/* dw3_requant of channel sum `a` with the record at r10 (one LDM), stored at lr++ (single rounding: without the
   sign correction). */
#if TQ_SINGLE_ROUNDING
#define DW3_REQ(a)                                                                                             \
    "ldm r10!, {r4, r5, r6, r8}\n\t"                                                                           \
    "smlal r4, r5, " a ", r6\n\t"                                                                              \
    "asr r5, r5, r8\n\t"                                                                                       \
    "ssat r5, #8, r5\n\t"                                                                                      \
    "strb r5, [lr], #1\n\t"
#else
#define DW3_REQ(a)                                                                                             \
    "ldm r10!, {r4, r5, r6, r8}\n\t"                                                                           \
    "smlal r4, r5, " a ", r6\n\t"                                                                              \
    "add r5, r5, " a ", asr #31\n\t"                                                                           \
    "asr r5, r5, r8\n\t"                                                                                       \
    "ssat r5, #8, r5\n\t"                                                                                      \
    "strb r5, [lr], #1\n\t"
#endif

/* Every group of one output pixel as one assembly loop over the stream: biases by one LDM into the four sums,
   nine taps, four requantizations; the last record's flag ends it. Registers are fixed so the LDMs fill them in
   order (r7 is left to a frame pointer). */
TQ_INLINE void dw3_pixel(const int8_t *in, const int32_t *stream, int32_t row, int32_t c, int8_t *out)
{
    register const int8_t *p __asm__("r9") = in;
    register const int32_t *s __asm__("r10") = stream;
    register int32_t cc __asm__("r11") = c;
    register int32_t rr __asm__("r12") = row;
    register int8_t *o __asm__("lr") = out;
    __asm__ volatile("1:\n\t"
                     "ldm r10!, {r0, r1, r2, r3}\n\t" DW3_ROW "add r9, r9, r12\n\t" DW3_ROW "add r9, r9, r12\n\t"
                     DW3_ROW "sub r9, r9, r12, lsl #1\n\t"
                     "add r9, r9, #4\n\t" DW3_REQ("r0") DW3_REQ("r1") DW3_REQ("r2") DW3_REQ("r3")
                     "tst r8, #256\n\t"
                     "beq 1b\n\t"
                     : "+r"(p), "+r"(s), "+r"(o)
                     : "r"(cc), "r"(rr)
                     : "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r8", "cc", "memory");
}
#else
/* The DSP build's assembly loop in C: per group the biases, nine taps, four requantizations. */
TQ_INLINE void dw3_pixel(const int8_t *in, const int32_t *s, int32_t row, int32_t c, int8_t *out)
{
    int32_t last;
    do {
        int32_t acc[4], ky, kx, j;
        for (j = 0; j < 4; j++) {
            acc[j] = s[j];
        }
        s += 4;
        for (ky = 0; ky < 3; ky++) {
            for (kx = 0; kx < 3; kx++, s += 2) {
                dw3_mac4(in + ky * row + kx * c, s[0], s[1], acc);
            }
        }
        for (j = 0; j < 4; j++, s += 4) {
            out[j] = (int8_t)dw3_requant(acc[j], s);
        }
        last = s[-1] & TQ_DW3_LAST;
        in += 4;
        out += 4;
    } while (!last);
}
#endif

/* The 3x3 window at (y0, x0) with its taps outside the image set to the padding value, as a 3 x 3 x c patch. */
static void dw3_patch(const tq_dw3_params *p, const int8_t *input, int32_t y0, int32_t x0, int8_t *patch)
{
    const int32_t c = p->channels;
    const int32_t kx0 = max_i32(0, -x0), kx1 = min_i32(3, p->in_w - x0);
    int32_t ky;
    for (ky = 0; ky < 3; ky++, patch += 3 * c) {
        const int32_t y = y0 + ky;
        if (y < 0 || y >= p->in_h || kx1 <= kx0) {
            memset(patch, p->pad_value, (size_t)(3 * c));
            continue;
        }
        memset(patch, p->pad_value, (size_t)(kx0 * c));
        memcpy(patch + kx0 * c, input + (y * p->in_w + x0 + kx0) * c, (size_t)((kx1 - kx0) * c));
        memset(patch + kx1 * c, p->pad_value, (size_t)((3 - kx1) * c));
    }
}

/* Bytes of one output pixel clamped to the activation range (four lanes at a time). */
static void dw3_clamp(const tq_dw3_params *p, int8_t *out)
{
    const int32_t lo = (int32_t)((uint32_t)(uint8_t)p->act_min * 0x01010101u);
    const int32_t hi = (int32_t)((uint32_t)(uint8_t)p->act_max * 0x01010101u);
    int32_t k;
    for (k = 0; k < p->channels; k += 4) {
        const int32_t v = tq_min_s8x4(tq_max_s8x4(tq_read_s8x4(out + k), lo), hi);
        memcpy(out + k, &v, sizeof v);
    }
}

TQ_INLINE void dw3_conv(const tq_dw3_params *p, const int8_t *input, int8_t *output, int8_t *patch)
{
    const int32_t c = p->channels, row = p->in_w * c;
    int32_t oy, ox;
    for (oy = 0; oy < p->out_h; oy++) {
        const int32_t y0 = oy * p->stride_h - p->pad_h;
        const int y_in = y0 >= 0 && y0 + 3 <= p->in_h;
        for (ox = 0; ox < p->out_w; ox++, output += c) {
            const int32_t x0 = ox * p->stride_w - p->pad_w;
            const int8_t *in = input + y0 * row + x0 * c;
            int32_t in_row = row;
            if (patch != 0 && !(y_in && x0 >= 0 && x0 + 3 <= p->in_w)) {
                dw3_patch(p, input, y0, x0, patch);
                in = patch;
                in_row = 3 * c;
            }
            dw3_pixel(in, p->stream, in_row, c, output); /* one copy of the pixel loop, for both */
            if (p->clamp) {
                dw3_clamp(p, output);
            }
        }
    }
}

void tq_dw_conv3x3(const tq_dw3_params *p, const int8_t *input, int8_t *output)
{
    dw3_conv(p, input, output, 0);
}

void tq_dw_conv3x3_pad(const tq_dw3_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    dw3_conv(p, input, output, (int8_t *)scratch);
}
