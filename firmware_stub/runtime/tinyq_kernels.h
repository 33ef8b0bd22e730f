/* Portable int8 kernels of the tinyq C engine: C99, no malloc, no floating point, standard library only.
   The arithmetic follows the TFLite quantization specification (fixed-point multiplier and shift, rounding,
   saturation) so that results equal TFLite Micro's reference kernels bit for bit. Batch is always 1; tensors
   are NHWC. Every parameter is precomputed by tinyq (tinyq/lower.py) and stored in flash. */
#ifndef TINYQ_KERNELS_H_
#define TINYQ_KERNELS_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Alignment of the engine's arena: kernel scratch in it is read and written as 16- and 32-bit words. */
#if defined(__GNUC__) || defined(__clang__)
#define TQ_ALIGNED(n) __attribute__((aligned(n)))
#else
#define TQ_ALIGNED(n)
#endif

/* CONV_2D and DEPTHWISE_CONV_2D. `bias` may have the input zero point folded in, then input_offset is 0. */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_h, pad_w;
    int32_t depth_multiplier;
    int32_t input_offset, output_offset;
    int32_t act_min, act_max;
    const int8_t *weights;  /* conv: [out_c][k_h][k_w][in_c]; depthwise: [k_h][k_w][out_c] */
    const int32_t *bias;    /* [out_c] */
    const int32_t *mult;    /* [out_c] fixed-point multipliers */
    const int8_t *shift;    /* [out_c] their shifts (>0 left, <0 right) */
} tq_conv_params;

/* FULLY_CONNECTED over `rows` input rows of in_depth values. The input zero point is always folded into `bias`. */
typedef struct {
    int32_t rows, in_depth, out_depth;
    int32_t output_offset;
    int32_t act_min, act_max;
    const int8_t *weights;  /* [out_depth][in_depth] */
    const int32_t *bias;
    const int32_t *mult;
    const int8_t *shift;
} tq_fc_params;

/* MAX_POOL_2D and AVERAGE_POOL_2D. */
typedef struct {
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    int32_t act_min, act_max;
} tq_pool_params;

/* ADD of two tensors of the same shape, each rescaled to a common scale (left_shift bits of headroom). */
typedef struct {
    int32_t size;
    int32_t left_shift;
    int32_t in1_offset, in1_mult, in1_shift;
    int32_t in2_offset, in2_mult, in2_shift;
    int32_t out_offset, out_mult, out_shift;
    int32_t act_min, act_max;
} tq_add_params;

/* SOFTMAX over the last dimension, int8 in, int8 out (scale 1/256, zero point -128). */
typedef struct {
    int32_t rows, depth;
    int32_t input_multiplier, input_left_shift, diff_min;
} tq_softmax_params;

int32_t tq_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift);

void tq_conv2d(const tq_conv_params *p, const int8_t *input, int8_t *output);
void tq_depthwise_conv2d(const tq_conv_params *p, const int8_t *input, int8_t *output);
void tq_fully_connected(const tq_fc_params *p, const int8_t *input, int8_t *output);
void tq_max_pool(const tq_pool_params *p, const int8_t *input, int8_t *output);
void tq_average_pool(const tq_pool_params *p, const int8_t *input, int8_t *output);
void tq_add(const tq_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void tq_softmax(const tq_softmax_params *p, const int8_t *input, int8_t *output);
void tq_copy(int32_t size, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TINYQ_KERNELS_H_ */
