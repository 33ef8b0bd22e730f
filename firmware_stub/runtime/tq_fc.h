/* Specialised FULLY_CONNECTED kernels of the tinyq C engine, chosen per layer at generation time
   (tinyq/kernels/); each computes exactly what its generic twin in tinyq_kernels.h computes. */
#ifndef TQ_FC_H_
#define TQ_FC_H_

#include <stdint.h>

#include "tinyq_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* tq_fully_connected with its weights interleaved by tinyq/kernels/fully_connected.py: each group of four output
   rows stores, for every 4 input columns, the rows' 4 weights one after another (one pointer streams them), then
   the rows' remaining in_depth % 4 weights; the out_depth % 4 last rows follow in plain [out][in] order.
   Same parameters as tq_fully_connected (tq_fc_params), same output bytes. Needs every mult >= 0. */
void tq_fc_interleaved4(const tq_fc_params *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TQ_FC_H_ */
