/* SOFTMAX of the tinyq C engine (see tq_common.h for the rules every kernel follows). */
#ifndef TQ_SOFTMAX_H_
#define TQ_SOFTMAX_H_

#include "tq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* SOFTMAX over the last dimension, int8 in, int8 out (scale 1/256, zero point -128). */
typedef struct {
    int32_t rows, depth;
    int32_t input_multiplier, input_left_shift, diff_min;
} tq_softmax_params;

void tq_softmax(const tq_softmax_params *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TQ_SOFTMAX_H_ */
