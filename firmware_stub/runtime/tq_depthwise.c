/* Specialised DEPTHWISE_CONV_2D kernels (see tq_depthwise.h). Four channels per step: on the packed path one
   word of input bytes becomes two 16-bit lane pairs with the input offset added (SXTAB16), two words of weights
   stored as 16-bit lanes match them, and SMLABB/SMLATT accumulate each channel; the portable path (cores without DSP)
   runs the same order one channel at a time. Interior pixels read their window without bounds checks; border
   pixels read the rectangle of taps inside the image (no dilation, so the taps inside form one). */
#include "tq_depthwise.h"

#include "tinyq_kernels.h"
#include "tq_simd.h"

#include "tq_requant.h"

#if defined(__GNUC__)
#define TQ_DW_INLINE __attribute__((always_inline)) static inline
#else
#define TQ_DW_INLINE static inline
#endif

/* TFLite's per-channel requantization of x (bias added) with the output offset and clamp, exact; see
   tq_depthwise.h. Constants at each call site: `one_step` says every channel has the fused form, `clamp` that the
   activation range is narrower than int8's (else a saturation to 8 bits, one SSAT). */
TQ_DW_INLINE int32_t dw_requant(int32_t x, const int32_t *q, int32_t output_offset, int32_t act_min,
                                int32_t act_max, int one_step, int clamp)
{
    int32_t out;
    if (one_step || q[TQ_DW_SHIFT] >= 0) {
        const int64_t c = (int64_t)(((uint64_t)(uint32_t)q[TQ_DW_C_HI] << 32) | (uint32_t)q[TQ_DW_C_LO]);
        out = tq_requantize_fused(x, q[TQ_DW_MULT], c, q[TQ_DW_SHIFT]);
    } else {
        out = tq_requantize(x, q[TQ_DW_MULT], q[TQ_DW_C_LO]) + output_offset;
    }
    if (!clamp) {
        return tq_sat_s8(out);
    }
    out = out < act_min ? act_min : out;
    return out > act_max ? act_max : out;
}

#if TQ_PACKED

/* One tap of four channels: input bytes xw with the offset added in lanes (x0, x2) and (x1, x3), times the
   weights' matching 16-bit lanes w02 and w13, each product into its channel's sum. */
TQ_DW_INLINE void dw_mac4(int32_t xw, int32_t w02, int32_t w13, int32_t off2, int32_t acc[4])
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
TQ_DW_INLINE void dw_sum4(const int8_t *in, const int32_t *w, int32_t row, int32_t c, int32_t n_y, int32_t n_x,
                          int32_t k_w, int32_t off2, int32_t acc[4])
{
    int32_t ky, kx;
    for (ky = 0; ky < n_y; ky++, in += row, w += 2 * k_w) {
        for (kx = 0; kx < n_x; kx++) {
            dw_mac4(tq_read_s8x4(in + kx * c), w[2 * kx], w[2 * kx + 1], off2, acc);
        }
    }
}

#if TQ_DSP
/* One row of taps k..k+2 (input at p, p + c, p + 2c; weights w[2k..2k+5]), then p moves down a row. */
#define DW_ROW3(k)                                                                                             \
    "ldr %[x], [%[p]]\n\t"                                                                                     \
    "ldrd %[u], %[v], [%[w], #" #k "*8]\n\t"                                                                   \
    "sxtab16 %[t], %[f], %[x]\n\t"                                                                             \
    "smlabb %[a0], %[t], %[u], %[a0]\n\t"                                                                      \
    "smlatt %[a2], %[t], %[u], %[a2]\n\t"                                                                      \
    "sxtab16 %[x], %[f], %[x], ror #8\n\t"                                                                     \
    "smlabb %[a1], %[x], %[v], %[a1]\n\t"                                                                      \
    "smlatt %[a3], %[x], %[v], %[a3]\n\t"                                                                      \
    "ldr %[x], [%[p], %[c]]\n\t"                                                                               \
    "ldrd %[u], %[v], [%[w], #" #k "*8+8]\n\t"                                                                 \
    "sxtab16 %[t], %[f], %[x]\n\t"                                                                             \
    "smlabb %[a0], %[t], %[u], %[a0]\n\t"                                                                      \
    "smlatt %[a2], %[t], %[u], %[a2]\n\t"                                                                      \
    "sxtab16 %[x], %[f], %[x], ror #8\n\t"                                                                     \
    "smlabb %[a1], %[x], %[v], %[a1]\n\t"                                                                      \
    "smlatt %[a3], %[x], %[v], %[a3]\n\t"                                                                      \
    "ldr %[x], [%[p], %[c], lsl #1]\n\t"                                                                       \
    "ldrd %[u], %[v], [%[w], #" #k "*8+16]\n\t"                                                                \
    "sxtab16 %[t], %[f], %[x]\n\t"                                                                             \
    "smlabb %[a0], %[t], %[u], %[a0]\n\t"                                                                      \
    "smlatt %[a2], %[t], %[u], %[a2]\n\t"                                                                      \
    "sxtab16 %[x], %[f], %[x], ror #8\n\t"                                                                     \
    "smlabb %[a1], %[x], %[v], %[a1]\n\t"                                                                      \
    "smlatt %[a3], %[x], %[v], %[a3]\n\t"                                                                      \
    "add %[p], %[p], %[r]\n\t"

/* The whole 3x3 window as one block of dw_mac4 steps with their loads, three per input row at constant offsets
   from one pointer: compiled from C, GCC's scheduler hoists the nine taps' loads and spills them. The block reads
   input and weights, which the kernel never writes. */
TQ_DW_INLINE void dw_sum4_3x3(const int8_t *in, const int32_t *w, int32_t row, int32_t c, int32_t off2,
                              int32_t acc[4])
{
    int32_t x, u, v, t;
    const int8_t *p = in;
    __asm__(DW_ROW3(0) DW_ROW3(3) DW_ROW3(6)
            : [x] "=&r"(x), [u] "=&r"(u), [v] "=&r"(v), [t] "=&r"(t), [p] "+&r"(p), [a0] "+r"(acc[0]),
              [a1] "+r"(acc[1]), [a2] "+r"(acc[2]), [a3] "+r"(acc[3])
            : [w] "r"(w), [c] "r"(c), [r] "r"(row), [f] "r"(off2)
            : "memory");
}
#else
/* The whole 3x3 window, unrolled: one input pointer walks the nine pixels, the weights are eighteen consecutive
   words (the DSP build runs the same steps as one assembly block). */
TQ_DW_INLINE void dw_sum4_3x3(const int8_t *in, const int32_t *w, int32_t row, int32_t c, int32_t off2,
                              int32_t acc[4])
{
    int32_t k;
    for (k = 0; k < 9; k += 3, in += row) {
        dw_mac4(tq_read_s8x4(in), w[2 * k], w[2 * k + 1], off2, acc);
        dw_mac4(tq_read_s8x4(in + c), w[2 * k + 2], w[2 * k + 3], off2, acc);
        dw_mac4(tq_read_s8x4(in + 2 * c), w[2 * k + 4], w[2 * k + 5], off2, acc);
    }
}
#endif

#else

TQ_DW_INLINE void dw_sum4(const int8_t *in, const int32_t *w, int32_t row, int32_t c, int32_t n_y, int32_t n_x,
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

TQ_DW_INLINE void dw_sum4_3x3(const int8_t *in, const int32_t *w, int32_t row, int32_t c, int32_t off2,
                              int32_t acc[4])
{
    dw_sum4(in, w, row, c, 3, 3, 3, off2, acc);
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
   inside the image and its weights; n_y x n_x taps of a k_h x k_w window are inside (all of it when `interior`:
   the 3x3 window then unrolls). Each sum starts from its channel's bias. */
TQ_DW_INLINE void dw_pixel(const tq_dw_params *p, const dw_layer *l, const int8_t *in, const int32_t *w,
                           int8_t *out, int32_t n_y, int32_t n_x, int32_t k_h, int32_t k_w, int interior,
                           int one_step, int clamp)
{
    const int32_t taps2 = k_h * k_w * 2;
    const int32_t *q = p->requant;
    const int8_t *end = out + (l->c & ~3);
    int32_t j;
    for (; out < end; out += 4, in += 4, w += taps2, q += 4 * TQ_DW_REQUANT_SIZE) {
        int32_t acc[4];
        acc[0] = q[TQ_DW_BIAS];
        acc[1] = q[TQ_DW_REQUANT_SIZE + TQ_DW_BIAS];
        acc[2] = q[2 * TQ_DW_REQUANT_SIZE + TQ_DW_BIAS];
        acc[3] = q[3 * TQ_DW_REQUANT_SIZE + TQ_DW_BIAS];
        if (interior && k_h == 3 && k_w == 3) {
            dw_sum4_3x3(in, w, l->row, l->c, l->off2, acc);
        } else {
            dw_sum4(in, w, l->row, l->c, n_y, n_x, k_w, l->off2, acc);
        }
        out[0] = (int8_t)dw_requant(acc[0], q, l->out_off, l->act_min, l->act_max, one_step, clamp);
        out[1] = (int8_t)dw_requant(acc[1], q + TQ_DW_REQUANT_SIZE, l->out_off, l->act_min, l->act_max, one_step,
                                    clamp);
        out[2] = (int8_t)dw_requant(acc[2], q + 2 * TQ_DW_REQUANT_SIZE, l->out_off, l->act_min, l->act_max,
                                    one_step, clamp);
        out[3] = (int8_t)dw_requant(acc[3], q + 3 * TQ_DW_REQUANT_SIZE, l->out_off, l->act_min, l->act_max,
                                    one_step, clamp);
    }
    for (j = 0; j < (l->c & 3); j++, q += TQ_DW_REQUANT_SIZE) {
        const int32_t acc = dw_sum1(in, w, l->row, l->c, n_y, n_x, k_w, p->input_offset, j, q[TQ_DW_BIAS]);
        out[j] = (int8_t)dw_requant(acc, q, l->out_off, l->act_min, l->act_max, one_step, clamp);
    }
}

/* The kernel body for a window of k_h x k_w taps; the 3x3 entry points pass constants, so their interior window
   unrolls and their requantization has no branch. */
TQ_DW_INLINE void dw_conv(const tq_dw_params *p, const int8_t *input, int8_t *output, int32_t k_h, int32_t k_w,
                          int one_step, int clamp)
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
        const int32_t ky1 = min_i32(k_h, p->in_h - y0);
        for (ox = 0; ox < p->out_w; ox++, output += l.c) {
            const int32_t x0 = ox * p->stride_w - p->pad_w;
            const int32_t kx0 = max_i32(0, -x0);
            const int32_t kx1 = min_i32(k_w, p->in_w - x0);
            const int32_t n_y = ky1 - ky0, n_x = kx1 - kx0;
            const int8_t *in = input + (y0 + ky0) * l.row + (x0 + kx0) * l.c;
            const int32_t *w = p->weights + (ky0 * k_w + kx0) * 2;
            if (n_y == k_h && n_x == k_w) {
                dw_pixel(p, &l, in, w, output, k_h, k_w, k_h, k_w, 1, one_step, clamp);
            } else {
                dw_pixel(p, &l, in, w, output, n_y, n_x, k_h, k_w, 0, one_step, clamp);
            }
        }
    }
}

void tq_dw_conv3x3(const tq_dw_params *p, const int8_t *input, int8_t *output)
{
    dw_conv(p, input, output, 3, 3, 1, 0);
}

void tq_dw_conv3x3_clamp(const tq_dw_params *p, const int8_t *input, int8_t *output)
{
    dw_conv(p, input, output, 3, 3, 1, 1);
}

void tq_dw_conv(const tq_dw_params *p, const int8_t *input, int8_t *output)
{
    dw_conv(p, input, output, p->k_h, p->k_w, 0, 1);
}
