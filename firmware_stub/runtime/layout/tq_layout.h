/* The layout and indexing ops of the tinyq C engine: TRANSPOSE, SLICE, STRIDED_SLICE, SPLIT, SPLIT_V and TILE as
   one strided copy (an output in row-major order read from the input at precomputed strides), GATHER with
   constant indices. Pure data movement: the output bytes are input bytes, so any path gives TFLM's bytes. The
   parameters are precomputed by tinyq/engine/ops/layout.py, which also proves every offset lies inside the
   input (int8 elements; a wider element type only scales the copies). */
#ifndef TQ_LAYOUT_H_
#define TQ_LAYOUT_H_

#include "tq_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Output element (i0, ..., i7), written in row-major order, is input[base + i0*s0 + ... + i7*s7]; unused leading
   dimensions have n = 1. A stride may be negative (STRIDED_SLICE backwards) or 0 (TILE repeats). */
typedef struct {
    int32_t base;
    int32_t n0, n1, n2, n3, n4, n5, n6, n7;
    int32_t s0, s1, s2, s3, s4, s5, s6, s7;
} tq_strided_copy_params;

void tq_strided_copy(const tq_strided_copy_params *p, const int8_t *input, int8_t *output);

/* TFLite's GATHER over the input viewed as [batches][outer][axis_size][inner]: output row (b, o, c) is input
   row (b, o, indices[b * coords + c]); every index lies in [0, axis_size), proven when the C was generated. */
typedef struct {
    int32_t batches, outer, axis_size, coords, inner;
    const int32_t *indices;
} tq_gather_params;

void tq_gather(const tq_gather_params *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TQ_LAYOUT_H_ */
