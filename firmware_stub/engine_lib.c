/* The C engine as a shared library for bulk runs on the host (`make LIB=1`, libtinyq_engine.so): tinyq loads it
   in a worker process and hands it whole arrays of int8 input tensors, with no files in between. Only the
   functions below are exported; the build hides every other symbol. */
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "tinyq_stub.h"

#define TINYQ_EXPORT __attribute__((visibility("default")))

TINYQ_EXPORT int32_t tinyq_engine_input_bytes(void);
TINYQ_EXPORT int32_t tinyq_engine_output_bytes(void);
TINYQ_EXPORT const char *tinyq_engine_model_name(void);
TINYQ_EXPORT int tinyq_engine_run_batch(const int8_t *in, int8_t *out, int32_t n);

static int s_ready;

/* Bytes of one input tensor (TINYQ_INPUT_BYTES), so the caller can check its array before running. */
int32_t tinyq_engine_input_bytes(void)
{
    return TINYQ_INPUT_BYTES;
}

/* Bytes of one output tensor (TINYQ_OUTPUT_BYTES). */
int32_t tinyq_engine_output_bytes(void)
{
    return TINYQ_OUTPUT_BYTES;
}

const char *tinyq_engine_model_name(void)
{
    return TINYQ_MODEL_NAME;
}

/* Runs n inputs stored back to back in `in`, writing n outputs back to back in `out`. Returns 0 when every
   input ran, -1 when the engine's init failed, -2 for a negative n or a null pointer, and 1 + i when the invoke
   of input i failed (the inputs before it have their outputs). */
int tinyq_engine_run_batch(const int8_t *in, int8_t *out, int32_t n)
{
    int32_t i;
    if (n < 0 || ((in == 0 || out == 0) && n > 0)) {
        return -2;
    }
    if (!s_ready) {
        if (tinyq_backend_init() != 0) {
            return -1;
        }
        s_ready = 1;
    }
    for (i = 0; i < n; i++) {
        if (tinyq_backend_invoke(in + (size_t)i * TINYQ_INPUT_BYTES, out + (size_t)i * TINYQ_OUTPUT_BYTES) != 0) {
            return 1 + (int)i;
        }
    }
    return 0;
}
