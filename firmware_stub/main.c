/* The tinyq firmware stub.
   No arguments: run every golden vector, print one line each and a summary; exit 0 only if all match.
   IN.bin OUT.bin: read raw int8 input tensors back to back, write the raw int8 outputs (bulk runs).
   IN.bin OUT.bin TRACE.bin (a `make TRACE=1` build): the same, and every op's output into TRACE.bin.
   (A `make PROFILE=1` build uses the same trace hook for per-op instruction counts, not a trace file.) */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "board.h"
#include "tinyq_stub.h"
#if defined(TINYQ_TRACE_ENABLED) && !defined(TINYQ_PROFILE_ENABLED)
#include "trace_sink.h"
#endif

static int8_t s_input[TINYQ_INPUT_BYTES];
static int8_t s_output[TINYQ_OUTPUT_BYTES];

static int argmax(const int8_t *v, int n)
{
    int best = 0;
    int i;
    for (i = 1; i < n; i++) {
        if (v[i] > v[best]) {
            best = i;
        }
    }
    return best;
}

static int run_golden(void)
{
    int failures = 0;
    int i;
    for (i = 0; i < TINYQ_GOLDEN_COUNT; i++) {
        int diff = 0;
        int j;
        memcpy(s_input, TINYQ_GOLDEN_INPUTS[i], sizeof s_input);
        if (tinyq_backend_invoke(s_input, s_output) != 0) {
            printf("golden %d: invoke failed\n", i);
            failures++;
            continue;
        }
        for (j = 0; j < TINYQ_OUTPUT_BYTES; j++) {
            int d = (int)s_output[j] - (int)TINYQ_GOLDEN_OUTPUTS[i][j];
            d = d < 0 ? -d : d;
            diff = d > diff ? d : diff;
        }
        if (diff != 0) {
            failures++;
        }
        printf("golden %d: label %d predicted %d expected %d %s (max diff %d LSB)\n", i,
               (int)TINYQ_GOLDEN_LABELS[i], argmax(s_output, TINYQ_OUTPUT_BYTES),
               argmax(TINYQ_GOLDEN_OUTPUTS[i], TINYQ_OUTPUT_BYTES), diff == 0 ? "MATCH" : "MISMATCH", diff);
    }
    printf("%s: %d/%d golden vectors bit-exact\n", TINYQ_MODEL_NAME, TINYQ_GOLDEN_COUNT - failures,
           TINYQ_GOLDEN_COUNT);
    return failures == 0 ? 0 : 1;
}

static int run_files(const char *in_path, const char *out_path)
{
    FILE *in = fopen(in_path, "rb");
    FILE *out = fopen(out_path, "wb");
    long count = 0;
    size_t got;
    int rc = 0;
    if (in == NULL || out == NULL) {
        fprintf(stderr, "cannot open %s\n", in == NULL ? in_path : out_path);
        rc = 2;
    }
    while (rc == 0 && (got = fread(s_input, 1, sizeof s_input, in)) > 0) {
        if (got != sizeof s_input) {
            fprintf(stderr, "%s: last record has %lu bytes, expected %d\n", in_path, (unsigned long)got,
                    TINYQ_INPUT_BYTES);
            rc = 2;
        } else if (tinyq_backend_invoke(s_input, s_output) != 0) {
            fprintf(stderr, "invoke failed on record %ld\n", count);
            rc = 1;
        } else if (fwrite(s_output, 1, sizeof s_output, out) != sizeof s_output) {
            fprintf(stderr, "%s: write failed\n", out_path);
            rc = 2;
        } else {
            count++;
        }
    }
    if (in != NULL) {
        fclose(in);
    }
    if (out != NULL && fclose(out) != 0 && rc == 0) {
        rc = 2;
    }
    printf("%s: %ld inputs processed\n", TINYQ_MODEL_NAME, count);
    return rc;
}

int main(int argc, char **argv)
{
    tinyq_board_init();
    if (tinyq_backend_init() != 0) {
        fprintf(stderr, "%s: backend init failed\n", TINYQ_MODEL_NAME);
        return 2;
    }
    if (argc == 1) {
        return run_golden();
    }
    if (argc == 3) {
        return run_files(argv[1], argv[2]);
    }
#if defined(TINYQ_TRACE_ENABLED) && !defined(TINYQ_PROFILE_ENABLED)
    if (argc == 4) {
        int rc;
        if (tinyq_trace_open(argv[3]) != 0) {
            fprintf(stderr, "cannot open %s\n", argv[3]);
            return 2;
        }
        rc = run_files(argv[1], argv[2]);
        return tinyq_trace_close() != 0 && rc == 0 ? 2 : rc;
    }
#endif
    fprintf(stderr, "usage: %s [IN.bin OUT.bin]\n", argv[0]);
    return 2;
}
