/* Specialised CONV_2D kernels of the tinyq C engine, chosen per layer at generation time
   (tinyq/kernels/); each computes exactly what its generic twin in tinyq_kernels.h computes. */
#ifndef TQ_CONV_H_
#define TQ_CONV_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CONV_2D as a matrix product of output pixels by output channels, two of each per step.
   K = k_h * k_w * in_c products per output, zero-padded to k_padded (a multiple of 4). `weights` holds the
   output channels in pairs (a zero channel completes an odd out_c): for each pair and each group of 4 along K,
   4 bytes of the first channel then 4 of the second ([out_c/2][k_padded/4][2][4]). `requant` holds per output
   channel its bias, multiplier (>= 0), left shift (0..30) and right shift (0..31), the shift split in two. */
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
    const int32_t *requant;  /* [out_c][4] */
} tq_conv_mm_params;

/* Any CONV_2D: two output pixels at a time are gathered (im2col) into `scratch` as int16 with the input offset
   added and padding taps 0, then multiplied by the weights. scratch: 2 * k_padded int16, 4-byte aligned. */
void tq_conv2d_im2col(const tq_conv_mm_params *p, const int8_t *input, int8_t *output, void *scratch);

/* 1x1 CONV_2D without padding, in_c a multiple of 4 (k_padded == in_c) and input_offset 0 (folded into the
   bias): each output pixel's input is one run of in_c bytes, multiplied in place without a gather. */
void tq_conv2d_1x1(const tq_conv_mm_params *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TQ_CONV_H_ */
