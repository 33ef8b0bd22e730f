/* DEPTHWISE_CONV_2D of the tinyq C engine: the generic kernel (tq_conv_params, see tq_conv.h) and the
   specialised ones chosen per layer at generation time (tinyq/engine/ops/depthwise.py), each computing exactly what
   the generic one computes. */
#ifndef TQ_DEPTHWISE_H_
#define TQ_DEPTHWISE_H_

#include "tq_conv.h"

#ifdef __cplusplus
extern "C" {
#endif

void tq_depthwise_conv2d(const tq_conv_params *p, const int8_t *input, int8_t *output);

/* Per-channel requantization of a depthwise output (TQ_DW_REQUANT_SIZE int32 per channel), precomputed by
   tinyq/engine/ops/depthwise.py: TFLite's two roundings and the output zero point as tq_requantize_fused (tq_requant.h)
   of x = acc + bias, with the 64-bit constant c (low and high words), the multiplier and shift_high = r - 1 for a
   right shift r >= 1 where that form is exact; otherwise shift_high is -1, C_LO holds TFLite's shift and
   tq_requantize rescales before the output offset is added (tq_dw_conv). */
enum { TQ_DW_C_LO, TQ_DW_C_HI, TQ_DW_MULT, TQ_DW_SHIFT, TQ_DW_BIAS, TQ_DW_REQUANT_SIZE };

/* DEPTHWISE_CONV_2D with depth multiplier 1 and no dilation (in_c == out_c == channels), any window, any rescale.
   Weights are grouped by four channels as 16-bit lanes: [ceil(channels / 4)][k_h * k_w][2] words, taps in
   row-major order, the first word (w0, w2) and the second (w1, w3) of the group's channels (lo, hi lanes), zero
   past the last channel. The input offset is added per tap inside the image and padding taps are skipped (it is 0
   when folded into bias). */
typedef struct {
    int32_t in_h, in_w, channels, out_h, out_w, k_h, k_w;
    int32_t stride_h, stride_w, pad_h, pad_w;
    int32_t input_offset, output_offset, act_min, act_max;
    const int32_t *weights;
    const int32_t *requant; /* [channels][TQ_DW_REQUANT_SIZE] */
} tq_dw_params;

void tq_dw_conv(const tq_dw_params *p, const int8_t *input, int8_t *output);

/* The 3x3 kernels, for channels a multiple of four and every channel's rescale in the fused form, read one stream
   of TQ_DW3_GROUP_WORDS words per group of four channels (tinyq/engine/ops/depthwise.py): the four sums' start values
   (bias plus the input offset times the weights' sum, so taps add input bytes alone), nine taps' weights as in
   tq_dw_params (w0, w2), (w1, w3), then per channel (c lo, c hi, mult, r) of tq_requantize_fused for the doubled
   sum, TQ_DW3_LAST set in the last group's last r. Start values and weights are doubled: the requantization then
   needs no borrow. Padding taps read pad_value (the input zero point) from a 3 x 3 x channels scratch patch
   (tq_dw_conv3x3_pad; tq_dw_conv3x3 is for windows that never leave the image). clamp says the activation range
   is narrower than int8's. */
enum { TQ_DW3_GROUP_WORDS = 38, TQ_DW3_LAST = 0x100 };

typedef struct {
    int32_t in_h, in_w, channels, out_h, out_w, stride_h, stride_w, pad_h, pad_w;
    int32_t pad_value, act_min, act_max, clamp;
    const int32_t *stream;
} tq_dw3_params;

void tq_dw_conv3x3(const tq_dw3_params *p, const int8_t *input, int8_t *output);
void tq_dw_conv3x3_pad(const tq_dw3_params *p, const int8_t *input, int8_t *output, void *scratch);

#ifdef __cplusplus
}
#endif

#endif /* TQ_DEPTHWISE_H_ */
