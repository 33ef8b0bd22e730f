/* FULLY_CONNECTED of the tinyq C engine: the generic kernel and the specialised ones chosen per layer at
   generation time (tinyq/engine/ops/fully_connected.py), each computing exactly what the generic one computes. */
#ifndef TQ_FULLY_CONNECTED_H_
#define TQ_FULLY_CONNECTED_H_

#include "tq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

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

void tq_fully_connected(const tq_fc_params *p, const int8_t *input, int8_t *output);

/* tq_fully_connected's parameters with its weights stacked by tinyq/engine/ops/fully_connected.py: rows 2i and 2i + 1
   share int16 lanes 256 * w[2i + 1][k] + w[2i][k] (an odd out_depth completed by a zero row, in_depth zero-padded
   to `depth`, a multiple of 8), two lanes (columns k, k + 2) per word; per group of two pairs and 4 columns the
   first pair's two words then the second's, an odd last pair after. Needs 256 times each odd row's sum within int32
   and every row's requantization in tq_requantize_fused's form (both checked at generation time). */
typedef struct {
    int32_t rows, in_depth, out_depth, depth;
    int32_t act_min, act_max;
    const int32_t *weights; /* ceil(out_depth / 2) * depth / 2 words */
    const int32_t *bias;
    const int32_t *requant; /* per row: tq_requantize_fused's c (low, high word; output zero point folded in),
                               multiplier, right shift - 1 */
} tq_fc_st4_params;

/* Same output bytes as tq_fully_connected; scratch: 2 * depth bytes, 4-byte aligned (one input row as int16). */
void tq_fc_stacked4(const tq_fc_st4_params *p, const int8_t *input, int8_t *output, void *scratch);

/* tq_fully_connected's parameters with its weights unstacked, for weights stacking cannot hold exactly: the same
   fields, `weights` row-major int8 rows zero-padded to `depth` (a multiple of 8) as little-endian words,
   out_depth * depth / 4 of them. */
typedef tq_fc_st4_params tq_fc_rows_params;

/* Same output bytes as tq_fully_connected, four rows per pass over the input; scratch: 2 * depth bytes, 4-byte
   aligned (one input row as int16 on the packed path; cores without DSP read the input itself). */
void tq_fc_rows4(const tq_fc_rows_params *p, const int8_t *input, int8_t *output, void *scratch);

#ifdef __cplusplus
}
#endif

#endif /* TQ_FULLY_CONNECTED_H_ */
