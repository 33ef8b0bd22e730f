/* Specialised DEPTHWISE_CONV_2D kernels of the tinyq C engine, chosen per layer at generation time
   (tinyq/kernels/); each computes exactly what its generic twin in tinyq_kernels.h computes. */
#ifndef TQ_DEPTHWISE_H_
#define TQ_DEPTHWISE_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* TQ_DEPTHWISE_H_ */
