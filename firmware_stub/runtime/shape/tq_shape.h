/* Data movement of the tinyq C engine: CONCATENATION, PAD/PADV2, RESIZE_NEAREST_NEIGHBOR and a plain copy. */
#ifndef TQ_SHAPE_H_
#define TQ_SHAPE_H_

#include "tq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

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

void tq_concatenation(const tq_concat_params *p, const int8_t *const *inputs, int8_t *output);
void tq_pad(const tq_pad_params *p, const int8_t *input, int8_t *output);
void tq_resize_nearest(const tq_resize_params *p, const int8_t *input, int8_t *output);
void tq_copy(int32_t size, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TQ_SHAPE_H_ */
