/* The 256-entry table ops of the tinyq C engine: LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, RELU, RELU6 and int8
   QUANTIZE, each one table computed by tinyq (tinyq/engine/lut.py) with TFLM's arithmetic. */
#ifndef TQ_ACTIVATION_H_
#define TQ_ACTIVATION_H_

#include "tq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* int8 -> int8: out = table[in + 128]. */
typedef struct {
    int32_t size;
    const int8_t *table;  /* [256] */
} tq_lut_params;

void tq_lut(const tq_lut_params *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TQ_ACTIVATION_H_ */
