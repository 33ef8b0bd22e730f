/* int8 kernels of the tinyq C engine beyond the core set in tinyq_kernels.h, one C file per op family:
   tq_elementwise.c (two-input ops with broadcasting), tq_activation.c (256-entry tables), tq_reduce.c (MEAN),
   tq_shape.c (concatenation, pad, nearest-neighbour resize), tq_transpose_conv.c. Same rules as
   tinyq_kernels.h: C99, no malloc, no floating point, parameters precomputed by tinyq/lower.py, results equal
   to TFLite Micro's reference kernels bit for bit. */
#ifndef TQ_OPS_H_
#define TQ_OPS_H_

#include <stdint.h>

#include "tinyq_kernels.h"
#include "tq_conv.h"
#include "tq_depthwise.h"
#include "tq_fc.h"
#include "tq_pool.h"
#include "tq_add.h"

#ifdef __cplusplus
extern "C" {
#endif

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

/* LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, RELU, RELU6, QUANTIZE (int8 -> int8): out = table[in + 128]. */
typedef struct {
    int32_t size;
    const int8_t *table;  /* [256] */
} tq_lut_params;

/* MEAN of `count` values at stride `inner`, for every (outer, inner) position; TFLM's QuantizedMeanOrSum. */
typedef struct {
    int32_t outer, count, inner;
    int32_t input_zp_sum;  /* input zero point * count */
    int32_t mult, shift;   /* input/output scale divided by count, as one fixed-point multiplier */
    int32_t output_offset;
} tq_mean_params;

/* CONCATENATION of `count` inputs of equal quantization: for each of `outer` steps, chunk[k] values of each. */
typedef struct {
    int32_t outer, count;
    const int32_t *chunk;  /* [count] */
} tq_concat_params;

/* PAD and PADV2 of a 4-D tensor: `before` values of `value` ahead of each dimension, the rest after it. */
typedef struct {
    int32_t in0, in1, in2, in3;
    int32_t out0, out1, out2, out3;
    int32_t before0, before1, before2, before3;
    int32_t value;
} tq_pad_params;

/* RESIZE_NEAREST_NEIGHBOR: output pixel (y, x) copies input pixel (rows[y], cols[x]). */
typedef struct {
    int32_t in_w, channels, out_h, out_w;
    const int32_t *rows;  /* [out_h] */
    const int32_t *cols;  /* [out_w] */
} tq_resize_params;

void tq_add_broadcast(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void tq_sub(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void tq_mul(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void tq_maximum(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void tq_minimum(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void tq_lut(const tq_lut_params *p, const int8_t *input, int8_t *output);
void tq_mean(const tq_mean_params *p, const int8_t *input, int8_t *output);
void tq_concatenation(const tq_concat_params *p, const int8_t *const *inputs, int8_t *output);
void tq_pad(const tq_pad_params *p, const int8_t *input, int8_t *output);
void tq_resize_nearest(const tq_resize_params *p, const int8_t *input, int8_t *output);
/* TRANSPOSE_CONV with tq_conv_params: weights [out_c][k_h][k_w][in_c], input_offset applied per tap. */
void tq_transpose_conv(const tq_conv_params *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TQ_OPS_H_ */
