/* Two-input elementwise ops of the tinyq C engine: ADD (same shape: generic and specialised; broadcasting), SUB,
   MUL, MAXIMUM, MINIMUM. */
#ifndef TQ_ELEMENTWISE_H_
#define TQ_ELEMENTWISE_H_

#include "tq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ADD of two tensors of the same shape, each rescaled to a common scale (left_shift bits of headroom). */
typedef struct {
    int32_t size;
    int32_t left_shift;
    int32_t in1_offset, in1_mult, in1_shift;
    int32_t in2_offset, in2_mult, in2_shift;
    int32_t out_offset, out_mult, out_shift;
    int32_t act_min, act_max;
} tq_add_params;

/* Specialised same-shape ADD, chosen at generation time (tinyq/engine/ops/elementwise.py), the same output bytes as
   tq_add. Each input's rescale (offset, left shift, multiplier) precomputed per int8 value, doubled; the output
   rescale's two roundings and zero point as one rounding multiply-accumulate and a shift (see tq_elementwise.c). */
typedef struct {
    int32_t size;
    int32_t mult;                /* output multiplier, >= 0 */
    int32_t acc;                 /* 2^(shift - 1) + output zero point * 2^shift */
    int32_t shift;               /* output right shift, 1..31 */
    int32_t act_min, act_max;
    const int32_t *table1;       /* [256]: twice input 1's rescaled value, at x + 128 */
    const int32_t *table2;       /* [256]: twice input 2's */
} tq_add_lut_params;

/* ADD (broadcasting), SUB, MUL, MAXIMUM, MINIMUM over shapes extended to 4-D. Input k's element at output index
   (i0, i1, i2, i3) is at i0*a0 + i1*a1 + i2*a2 + i3*a3 (b0..b3 for input 2); a stride is 0 where it broadcasts.
   ADD and SUB rescale both inputs to a common scale with left_shift bits of headroom (as tq_add); MUL rescales
   the product with out_mult/out_shift; MAXIMUM and MINIMUM compare the raw values. */
typedef struct {
    int32_t n0, n1, n2, n3;
    int32_t a0, a1, a2, a3;
    int32_t b0, b1, b2, b3;
    int32_t left_shift;
    int32_t in1_offset, in1_mult, in1_shift;
    int32_t in2_offset, in2_mult, in2_shift;
    int32_t out_offset, out_mult, out_shift;
    int32_t act_min, act_max;
} tq_binary_params;

void tq_add(const tq_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);

/* Output range all of int8 (no fused activation): one saturation per element. */
void tq_add_lut(const tq_add_lut_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);

/* Any activation range within int8. */
void tq_add_lut_clamp(const tq_add_lut_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);

void tq_add_broadcast(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void tq_sub(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void tq_mul(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void tq_maximum(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void tq_minimum(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TQ_ELEMENTWISE_H_ */
