/* SQUARED_DIFFERENCE of the tinyq C engine (int8, broadcasting over shapes extended to 4-D), TFLM's arithmetic:
   both inputs rescaled to a common scale with left_shift (7) bits of headroom, their difference squared and
   requantized. Parameters precomputed by tinyq/engine/ops/squared_difference.py, which also proves the int32
   arithmetic cannot overflow. */
#ifndef TQ_SQUARED_DIFFERENCE_H_
#define TQ_SQUARED_DIFFERENCE_H_

#include "tq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Input k's element at output index (i0, i1, i2, i3) is at i0*a0 + i1*a1 + i2*a2 + i3*a3 (b0..b3 for input 2);
   a stride is 0 where that input broadcasts. The multipliers of the inputs are below one (shift <= 0). */
typedef struct {
    int32_t n0, n1, n2, n3;
    int32_t a0, a1, a2, a3;
    int32_t b0, b1, b2, b3;
    int32_t left_shift;
    int32_t in1_offset, in1_mult, in1_shift;
    int32_t in2_offset, in2_mult, in2_shift;
    int32_t out_offset, out_mult, out_shift;
} tq_sqdiff_params;

void tq_squared_difference(const tq_sqdiff_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TQ_SQUARED_DIFFERENCE_H_ */
