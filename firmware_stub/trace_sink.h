/* Opening and closing the trace file of a `make TRACE=1` build (see trace.c). */
#ifndef TINYQ_TRACE_SINK_H_
#define TINYQ_TRACE_SINK_H_

/* 0 when `path` is open for writing; until then, and after close, traced outputs are dropped. */
int tinyq_trace_open(const char *path);

/* 0 when every record was written and the file closed. */
int tinyq_trace_close(void);

#endif /* TINYQ_TRACE_SINK_H_ */
