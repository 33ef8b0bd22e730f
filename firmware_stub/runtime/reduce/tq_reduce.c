/* MEAN over one contiguous run of axes (see tq_reduce.h). */
#include "tq_reduce.h"

#include "tq_requant.h"

void tq_mean(const tq_mean_params *p, const int8_t *input, int8_t *output)
{
    int32_t o, i, k;
    for (o = 0; o < p->outer; o++) {
        const int8_t *base = input + o * p->count * p->inner;
        for (i = 0; i < p->inner; i++) {
            int32_t sum = 0;
            int32_t v;
            for (k = 0; k < p->count; k++) {
                sum += base[k * p->inner + i];
            }
            v = tq_multiply_by_quantized_multiplier(sum - p->input_zp_sum, p->mult, p->shift) + p->output_offset;
            output[o * p->inner + i] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
        }
    }
}
