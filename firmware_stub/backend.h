/* The inference backend interface: the stub's main knows only these two functions. */
#ifndef TINYQ_BACKEND_H_
#define TINYQ_BACKEND_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Prepares the backend; returns 0 on success. */
int tinyq_backend_init(void);

/* One inference: TINYQ_INPUT_BYTES int8 values in, TINYQ_OUTPUT_BYTES int8 values out; 0 on success. */
int tinyq_backend_invoke(const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TINYQ_BACKEND_H_ */
