/* Specialised same-shape ADD of the tinyq C engine, chosen at generation time (tinyq/kernels/elementwise.py):
   the same output bytes as tq_add (tinyq_kernels.h), TFLM's reference int8 ADD. */
#ifndef TQ_ADD_H_
#define TQ_ADD_H_

#include <stdint.h>

#include "tinyq_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Each input's rescale (offset, left shift, multiplier) precomputed per int8 value, doubled; the output rescale's
   two roundings and zero point as one rounding multiply-accumulate and a shift (see tq_add.c). */
typedef struct {
    int32_t size;
    int32_t mult;                /* output multiplier, >= 0 */
    int32_t acc;                 /* 2^(shift - 1) + output zero point * 2^shift */
    int32_t shift;               /* output right shift, 1..31 */
    int32_t act_min, act_max;
    const int32_t *table1;       /* [256]: twice input 1's rescaled value, at x + 128 */
    const int32_t *table2;       /* [256]: twice input 2's */
} tq_add_lut_params;

/* Output range all of int8 (no fused activation): one saturation per element. */
void tq_add_lut(const tq_add_lut_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);

/* Any activation range within int8. */
void tq_add_lut_clamp(const tq_add_lut_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TQ_ADD_H_ */
