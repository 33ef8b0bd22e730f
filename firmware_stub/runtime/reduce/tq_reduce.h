/* MEAN of the tinyq C engine, over one contiguous run of axes. */
#ifndef TQ_REDUCE_H_
#define TQ_REDUCE_H_

#include "tq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* MEAN of `count` values at stride `inner`, for every (outer, inner) position; TFLM's QuantizedMeanOrSum. */
typedef struct {
    int32_t outer, count, inner;
    int32_t input_zp_sum;  /* input zero point * count */
    int32_t mult, shift;   /* input/output scale divided by count, as one fixed-point multiplier */
    int32_t output_offset;
} tq_mean_params;

void tq_mean(const tq_mean_params *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TQ_REDUCE_H_ */
