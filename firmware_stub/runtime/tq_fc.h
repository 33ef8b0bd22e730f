/* Specialised FULLY_CONNECTED kernels of the tinyq C engine, chosen per layer at generation time
   (tinyq/kernels/); each computes exactly what its generic twin in tinyq_kernels.h computes. */
#ifndef TQ_FC_H_
#define TQ_FC_H_

#include <stdint.h>

#include "tinyq_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* tq_fully_connected's parameters with its weights interleaved by tinyq/kernels/fully_connected.py, held in
   int32 words so they are word-aligned (several load with one LDM): each group of four output rows stores, for
   every 4 input columns, the rows' 4 weights one after another (one pointer streams them), then the rows'
   remaining in_depth % 4 weights; the out_depth % 4 last rows follow in plain [out][in] order; the bytes are
   zero-padded to whole words. Needs every mult >= 0 and -31 <= shift <= 30. */
typedef struct {
    int32_t rows, in_depth, out_depth;
    int32_t output_offset;
    int32_t act_min, act_max;
    const int32_t *weights; /* ceil(out_depth * in_depth / 4) words of int8 weights, little-endian */
    const int32_t *bias;
    const int32_t *mult;
    const int8_t *shift;
} tq_fc_il4_params;

/* Same output bytes as tq_fully_connected. */
void tq_fc_interleaved4(const tq_fc_il4_params *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TQ_FC_H_ */
