/* The per-op profile sink of `make PROFILE=1` Cortex-M builds: the generated engine's TINYQ_TRACE hook, after
   each kernel call, marks the instruction counter (board.c); the instructions since the previous mark (the
   invoke's start, marked by measure.c's wrapper, or the previous kernel call) go to that call. At exit one
   `tinyq-profile:` line and one `tinyq-op:` line per kernel call give the sums over every inference.

   Overhead: a mark reads the counter on entry and again just before it returns, so its own bookkeeping is not
   counted; what remains between two marks besides the kernel (the return from one mark, the call to the next,
   the reads' own instructions) is timed at start-up over 256 back-to-back marks and printed as overhead_x256,
   to be taken off every mark (tinyq/targets/profile.py does it).
   Resolution: each reading is quantised to one SysTick tick (40 instructions on the mps2 boards), so a single
   op's count is only meaningful as a mean over many inferences, where the tick phases average out. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "board_cortex_m.h"
#include "profile.h"
#include "tinyq_trace.h"

#define CALIBRATION_MARKS 256u
#ifndef TINYQ_PROFILE_MAX_CALLS
#define TINYQ_PROFILE_MAX_CALLS 128u
#endif

enum mark_state { IDLE, CALIBRATING, INVOKING };

static enum mark_state g_state;
static uint64_t g_prev;
static uint64_t g_overhead;
static uint64_t g_sum[TINYQ_PROFILE_MAX_CALLS];
static int32_t g_op[TINYQ_PROFILE_MAX_CALLS];
static uint64_t g_tail;
static uint32_t g_call;
static uint32_t g_calls;
static uint32_t g_invokes;
static uint32_t g_overflow;
static uint32_t g_mismatch;

/* Instructions since the previous mark go to kernel call `g_call` of this invoke (op `op_index`). */
static void attribute(uint64_t now, int32_t op_index)
{
    uint64_t n = now - g_prev;
    if (g_state == CALIBRATING) {
        g_overhead += n;
        return;
    }
    if (g_call >= TINYQ_PROFILE_MAX_CALLS) {
        g_overflow++;
    } else {
        if (g_invokes == 0u) {
            g_op[g_call] = op_index;
        } else if (g_op[g_call] != op_index) {
            g_mismatch++;
        }
        g_sum[g_call] += n;
    }
    g_call++;
}

/* Not inlined into the calibration loop below, so that loop times the same call the engine makes. */
__attribute__((noinline)) void tinyq_trace(int32_t op_index, const int8_t *data, int32_t bytes)
{
    uint64_t now = tinyq_board_instructions();
    (void)data;
    (void)bytes;
    if (g_state == IDLE) {
        return;
    }
    attribute(now, op_index);
    g_prev = tinyq_board_instructions();
}

void tinyq_profile_begin(void)
{
    g_state = INVOKING;
    g_call = 0u;
    g_prev = tinyq_board_instructions();
}

void tinyq_profile_end(void)
{
    uint64_t now = tinyq_board_instructions();
    if (g_state != INVOKING) {
        return;
    }
    g_tail += now - g_prev;
    if (g_invokes == 0u) {
        g_calls = g_call;
    } else if (g_call != g_calls) {
        g_mismatch++;
    }
    g_invokes++;
    g_state = IDLE;
}

static void report(void)
{
    char b[3][21];
    uint32_t i;
    uint32_t slots = g_calls < TINYQ_PROFILE_MAX_CALLS ? g_calls : TINYQ_PROFILE_MAX_CALLS;
    printf("tinyq-profile: invokes=%lu calls=%lu overhead_x256=%s tail_sum=%s instructions_per_tick=%u "
           "max_calls=%lu overflow=%lu mismatch=%lu\n",
           (unsigned long)g_invokes, (unsigned long)g_calls, tinyq_board_u64_text(b[0], g_overhead),
           tinyq_board_u64_text(b[1], g_tail), TINYQ_INSTRUCTIONS_PER_TICK,
           (unsigned long)TINYQ_PROFILE_MAX_CALLS, (unsigned long)g_overflow, (unsigned long)g_mismatch);
    for (i = 0u; i < slots; i++) {
        printf("tinyq-op: call=%lu op=%ld sum=%s\n", (unsigned long)i, (long)g_op[i],
               tinyq_board_u64_text(b[2], g_sum[i]));
    }
    fflush(stdout);
}

void tinyq_profile_start(void)
{
    uint32_t i;
    g_state = CALIBRATING;
    g_prev = tinyq_board_instructions();
    tinyq_trace(-1, 0, 0); /* the first mark follows a plain read, not a mark: not counted */
    g_overhead = 0u;
    for (i = 0u; i < CALIBRATION_MARKS; i++) {
        tinyq_trace((int32_t)i, 0, 0);
    }
    g_state = IDLE;
    atexit(report);
}
