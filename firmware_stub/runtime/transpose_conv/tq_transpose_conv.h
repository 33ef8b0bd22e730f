/* TRANSPOSE_CONV of the tinyq C engine. */
#ifndef TQ_TRANSPOSE_CONV_H_
#define TQ_TRANSPOSE_CONV_H_

#include "tq_conv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TRANSPOSE_CONV with tq_conv_params: weights [out_c][k_h][k_w][in_c], input_offset applied per tap. */
void tq_transpose_conv(const tq_conv_params *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TQ_TRANSPOSE_CONV_H_ */
