/* Specialised FULLY_CONNECTED kernels of the tinyq C engine, chosen per layer at generation time
   (tinyq/kernels/); each computes exactly what its generic twin in tinyq_kernels.h computes. */
#ifndef TQ_FC_H_
#define TQ_FC_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* TQ_FC_H_ */
