/* Specialised FULLY_CONNECTED kernels (see tq_fc.h). One algorithm for every core: four output rows per pass,
   so each group of four input bytes is loaded (and on DSP cores sign-extended into two int16 pairs) once for
   four rows; the packed path multiplies pairs with SMLAD, the portable path (Cortex-M0/M3) byte by byte. */
#include "tq_fc.h"

#include "tq_requant.h"
#include "tq_simd.h"

#if TQ_PACKED
/* acc += the products of 4 input bytes xv with one row's 4 weight bytes wv. */
#define TQ_FC_MAC4(acc, wv, xe, xo) \
    acc = tq_smlad(tq_sxtb16_ror8(wv), xo, tq_smlad(tq_sxtb16(wv), xe, acc))

/* One block of 4 input columns against the four rows' words w[0..3]. */
#define TQ_FC_BLOCK(x, w)                          \
    do {                                           \
        const int32_t xv = tq_read_s8x4(x);        \
        const int32_t xe = tq_sxtb16(xv);          \
        const int32_t xo = tq_sxtb16_ror8(xv);     \
        const int32_t w0 = (w)[0], w1 = (w)[1];    \
        const int32_t w2 = (w)[2], w3 = (w)[3];    \
        TQ_FC_MAC4(a0, w0, xe, xo);                \
        TQ_FC_MAC4(a1, w1, xe, xo);                \
        TQ_FC_MAC4(a2, w2, xe, xo);                \
        TQ_FC_MAC4(a3, w3, xe, xo);                \
    } while (0)
#endif

#if TQ_DSP
/* Keeps the compiler from hoisting the next block's loads above this one's multiplies: with both blocks' eight
   weight words live at once the four accumulators spill to the stack. */
#define TQ_FC_BARRIER() __asm__ volatile("" ::: "memory")
#else
#define TQ_FC_BARRIER() ((void)0)
#endif

/* acc[0..3] += the dot products of four interleaved weight rows (in_depth words from w) with x. */
static inline void dot4(const int8_t *x, const int32_t *w, int32_t in_depth, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t k;
    const int32_t tail = in_depth & 3;
    const int8_t *wb;
#if TQ_PACKED
    for (k = in_depth >> 3; k > 0; k--) {
        TQ_FC_BLOCK(x, w);
        TQ_FC_BARRIER();
        TQ_FC_BLOCK(x + 4, w + 4);
        x += 8;
        w += 8;
    }
    if (in_depth & 4) {
        TQ_FC_BLOCK(x, w);
        x += 4;
        w += 4;
    }
    wb = (const int8_t *)w;
#else
    wb = (const int8_t *)w;
    for (k = in_depth >> 2; k > 0; k--) {
        const int32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
        a0 += wb[0] * x0 + wb[1] * x1 + wb[2] * x2 + wb[3] * x3;
        a1 += wb[4] * x0 + wb[5] * x1 + wb[6] * x2 + wb[7] * x3;
        a2 += wb[8] * x0 + wb[9] * x1 + wb[10] * x2 + wb[11] * x3;
        a3 += wb[12] * x0 + wb[13] * x1 + wb[14] * x2 + wb[15] * x3;
        x += 4;
        wb += 16;
    }
#endif
    for (k = 0; k < tail; k++) {
        const int32_t xk = x[k];
        a0 += wb[k] * xk;
        a1 += wb[tail + k] * xk;
        a2 += wb[2 * tail + k] * xk;
        a3 += wb[3 * tail + k] * xk;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* acc + the dot product of one weight row (in_depth bytes from w, any alignment) with x. */
static inline int32_t dot1(const int8_t *x, const int8_t *w, int32_t in_depth, int32_t acc)
{
    int32_t k;
#if TQ_PACKED
    for (k = in_depth >> 2; k > 0; k--) {
        const int32_t xv = tq_read_s8x4(x);
        const int32_t wv = tq_read_s8x4(w);
        acc = tq_smlad(tq_sxtb16(wv), tq_sxtb16(xv), acc);
        acc = tq_smlad(tq_sxtb16_ror8(wv), tq_sxtb16_ror8(xv), acc);
        x += 4;
        w += 4;
    }
    in_depth &= 3;
#endif
    for (k = 0; k < in_depth; k++) {
        acc += w[k] * x[k];
    }
    return acc;
}

void tq_fc_interleaved4(const tq_fc_il4_params *p, const int8_t *input, int8_t *output)
{
    const int32_t in_depth = p->in_depth;
    const int32_t groups = p->out_depth >> 2;
    int32_t r, g, o, j;
    for (r = 0; r < p->rows; r++, input += in_depth, output += p->out_depth) {
        const int32_t *w = p->weights;
        const int8_t *wb;
        for (g = 0, o = 0; g < groups; g++, o += 4, w += in_depth) {
            int32_t acc[4];
            acc[0] = p->bias[o];
            acc[1] = p->bias[o + 1];
            acc[2] = p->bias[o + 2];
            acc[3] = p->bias[o + 3];
            dot4(input, w, in_depth, acc);
            for (j = 0; j < 4; j++) {
                output[o + j] = tq_requantize_s8(acc[j], p->mult[o + j], p->shift[o + j], p->output_offset,
                                                 p->act_min, p->act_max);
            }
        }
        for (wb = (const int8_t *)w; o < p->out_depth; o++, wb += in_depth) {
            const int32_t acc = dot1(input, wb, in_depth, p->bias[o]);
            output[o] = tq_requantize_s8(acc, p->mult[o], p->shift[o], p->output_offset, p->act_min, p->act_max);
        }
    }
}
