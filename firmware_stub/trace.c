/* The trace sink of `make TRACE=1` builds: every kernel call's output, appended to one file as records of
   int32 op index, int32 byte count (both little-endian on every supported target) and the bytes.
   On Cortex-M the file is written on the host through semihosting. */
#include <stdio.h>

#include "tinyq_trace.h"
#include "trace_sink.h"

static FILE *s_trace;
static int s_trace_failed;

int tinyq_trace_open(const char *path)
{
    s_trace = fopen(path, "wb");
    s_trace_failed = 0;
    return s_trace == NULL ? 1 : 0;
}

int tinyq_trace_close(void)
{
    int failed = s_trace_failed;
    if (s_trace != NULL && fclose(s_trace) != 0) {
        failed = 1;
    }
    s_trace = NULL;
    return failed;
}

void tinyq_trace(int32_t op_index, const int8_t *data, int32_t bytes)
{
    int32_t header[2];
    if (s_trace == NULL) {
        return;
    }
    header[0] = op_index;
    header[1] = bytes;
    if (fwrite(header, sizeof header, 1, s_trace) != 1 || fwrite(data, 1, (size_t)bytes, s_trace) != (size_t)bytes) {
        s_trace_failed = 1;
    }
}
