/* CONV_2D of the tinyq C engine: the generic kernel and the specialised ones chosen per layer at generation time
   (tinyq/engine/ops/conv.py), each computing exactly what the generic one computes. tq_conv_params is also the
   generic depthwise and transpose conv kernels' parameter struct. */
#ifndef TQ_CONV_H_
#define TQ_CONV_H_

#include "tq_common.h"

#ifdef __cplusplus
extern "C" {
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

void tq_conv2d(const tq_conv_params *p, const int8_t *input, int8_t *output);

/* CONV_2D as a matrix product of output pixels by output channels, two of each per step, over the two pixels'
   inputs gathered as int16 into `scratch` (2 * k_padded int16, 4-byte aligned). K = k_h * k_w * in_c products
   per output, zero-padded to k_padded (a multiple of 4). `weights` holds the output channels in pairs (a copy of
   the last completes an odd out_c): for each pair and each group of 4 along K, 4 bytes of the first channel then
   4 of the second ([(out_c + 1) / 2][k_padded / 4][2][4]). `requant` holds a row of 6 per output channel (the
   completing copy too): for tq_conv2d_im2col and tq_conv2d_1x1 the rows of tq_conv_shallow_params
   (tq_requantize_fused); for their _lr twins, which take layers without the fused form, left shift (0..30), right
   shift (0..31), bias, multiplier (>= 0), 0, 0 (tq_requantize_lr). Separate entry points, so that a model links
   only the requantization it uses. */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_h, pad_w;
    int32_t k_padded;
    int32_t input_offset, output_offset;
    int32_t act_min, act_max;
    const int8_t *weights;   /* [(out_c + 1) / 2][k_padded / 4][2][4] */
    const int32_t *requant;  /* [(out_c + 1) / 2 * 2][6] */
} tq_conv_mm_params;

/* Any CONV_2D: two output pixels at a time are gathered (im2col) with the input offset added and padding
   taps 0, then multiplied by the weights. */
void tq_conv2d_im2col(const tq_conv_mm_params *p, const int8_t *input, int8_t *output, void *scratch);
void tq_conv2d_im2col_lr(const tq_conv_mm_params *p, const int8_t *input, int8_t *output, void *scratch);

/* 1x1 CONV_2D without padding, in_c a multiple of 4 (k_padded == in_c) and input_offset 0 (folded into the
   bias): each output pixel's input is one run of in_c bytes, widened to int16 without bounds checks. */
void tq_conv2d_1x1(const tq_conv_mm_params *p, const int8_t *input, int8_t *output, void *scratch);
void tq_conv2d_1x1_lr(const tq_conv_mm_params *p, const int8_t *input, int8_t *output, void *scratch);

/* CONV_2D over a shallow input (in_c 1 to 3; any kernel size, stride, padding and dilation): K = taps =
   k_h * k_w * in_c products per output, as int16 pairs (K rounded up to even, a zero tap completing it). Per two
   output pixels the taps are gathered once into `scratch` (the pixels' words interleaved: pair j of pixel a,
   then of pixel b), then every pair of output channels is a run of SMLAD over them. `weights` holds per pair of
   output channels (a copy of the last completes an odd out_c) and pair j of taps the first channel's int16
   pair (tap 2j in the low half) then the second's: [(out_c + 1) / 2][(K + 1) / 2][2]. `requant` holds per
   output channel (the completing copy too) the low and high words of the 64-bit rounding constant of
   tq_requantize_fused (output zero point folded in), the bias, the multiplier, the right shift minus 1 and
   INT32_MIN: [(out_c + 1) / 2 * 2][6]. `tap_offsets` holds each tap's byte offset from its window's first
   input byte, for windows inside the input. scratch: 2 * ((K + 1) / 2) int32, 4-byte aligned. */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_h, pad_w;
    int32_t taps;
    int32_t input_offset;
    int32_t act_min, act_max;
    const int32_t *weights;      /* [(out_c + 1) / 2][(taps + 1) / 2][2] int16 pairs */
    const int32_t *requant;      /* [(out_c + 1) / 2 * 2][6] */
    const int32_t *tap_offsets;  /* [taps] */
} tq_conv_shallow_params;

void tq_conv2d_shallow(const tq_conv_shallow_params *p, const int8_t *input, int8_t *output, void *scratch);

#ifdef __cplusplus
}
#endif

#endif /* TQ_CONV_H_ */
