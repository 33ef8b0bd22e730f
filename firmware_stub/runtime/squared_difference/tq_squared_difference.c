/* SQUARED_DIFFERENCE: one portable path (no core has a faster form of it yet); every requantization goes through
   tq_requant.h, so the result is TFLM's reference SquaredDifference bit for bit. */
#include "tq_squared_difference.h"

#include "tq_requant.h"

static int8_t squared_difference(const tq_sqdiff_params *p, int32_t x, int32_t y)
{
    const int32_t sx = tq_multiply_by_quantized_multiplier((x + p->in1_offset) * (1 << p->left_shift), p->in1_mult,
                                                           p->in1_shift);
    const int32_t sy = tq_multiply_by_quantized_multiplier((y + p->in2_offset) * (1 << p->left_shift), p->in2_mult,
                                                           p->in2_shift);
    const int32_t d = sx - sy;
    const int32_t v = tq_multiply_by_quantized_multiplier(d * d, p->out_mult, p->out_shift) + p->out_offset;
    return (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
}

void tq_squared_difference(const tq_sqdiff_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->n0; i0++) {
        for (i1 = 0; i1 < p->n1; i1++) {
            for (i2 = 0; i2 < p->n2; i2++) {
                const int8_t *a = input1 + i0 * p->a0 + i1 * p->a1 + i2 * p->a2;
                const int8_t *b = input2 + i0 * p->b0 + i1 * p->b1 + i2 * p->b2;
                for (i3 = 0; i3 < p->n3; i3++) {
                    *output++ = squared_difference(p, a[i3 * p->a3], b[i3 * p->b3]);
                }
            }
        }
    }
}
