/* The trace hook of the generated C engine: after each kernel call, TINYQ_TRACE(op index, output, bytes).
   Empty unless the build defines TINYQ_TRACE_ENABLED (the stub's `make TRACE=1`, used by `tinyq diff`), in
   which case the build supplies tinyq_trace() (firmware_stub/trace.c records each op's output). */
#ifndef TINYQ_TRACE_H_
#define TINYQ_TRACE_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef TINYQ_TRACE_ENABLED
void tinyq_trace(int32_t op_index, const int8_t *data, int32_t bytes);
#define TINYQ_TRACE(op_index, data, bytes) tinyq_trace((op_index), (data), (bytes))
#else
#define TINYQ_TRACE(op_index, data, bytes) ((void)0)
#endif

#ifdef __cplusplus
}
#endif

#endif /* TINYQ_TRACE_H_ */
