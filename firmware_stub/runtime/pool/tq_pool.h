/* MAX_POOL_2D and AVERAGE_POOL_2D of the tinyq C engine: the generic kernels and the specialised ones chosen per
   layer at generation time (tinyq/engine/ops/pool.py). All take tq_pool_params and compute exactly TFLM's reference:
   the window cut to the input, padding never counts. */
#ifndef TQ_POOL_H_
#define TQ_POOL_H_

#include "tq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    int32_t act_min, act_max;
} tq_pool_params;

void tq_max_pool(const tq_pool_params *p, const int8_t *input, int8_t *output);
void tq_average_pool(const tq_pool_params *p, const int8_t *input, int8_t *output);

/* Same output bytes as tq_max_pool: the window cut once per output pixel, then four channels per word. */
void tq_max_pool_c4(const tq_pool_params *p, const int8_t *input, int8_t *output);

/* Same output bytes as tq_average_pool; needs k_h * k_w <= 256 (four channels summed in 16-bit lanes). */
void tq_average_pool_c4(const tq_pool_params *p, const int8_t *input, int8_t *output);

/* Same output bytes as tq_average_pool when the one window is the whole input: out_h = out_w = 1, no padding,
   k_h >= in_h and k_w >= in_w. */
void tq_global_average_pool(const tq_pool_params *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TQ_POOL_H_ */
