/* Measurement around every inference, with no change to main.c: the cortex-m4 target links with
   -Wl,--wrap=tinyq_backend_invoke, so main's calls land here first. Each call is bracketed by two reads of the
   instruction counter (board.c) and the stack is repainted below the caller's frame just before it, so the
   figures printed at exit cover the inference alone: instructions per call and the deepest stack it reached
   (stack_invoke, from the top of the stack; stack_caller is the part already in use at the call).

   Overhead: the counter is read at the start and end of the bracket; the instructions of one empty
   read-read pair (mean of 256 pairs, measured at start-up) are subtracted from every figure.
   A `make PROFILE=1` build also marks each call's start and end for the per-op profile (profile.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "board_cortex_m.h"
#ifdef TINYQ_PROFILE_ENABLED
#include "profile.h"
#endif

#define CALIBRATION_PAIRS 256u

int __real_tinyq_backend_invoke(const int8_t *input, int8_t *output);
int __wrap_tinyq_backend_invoke(const int8_t *input, int8_t *output);
void tinyq_board_measure_start(void);
void *_sbrk(ptrdiff_t increment);
extern char end;
extern uint32_t __stack_top__[];

static uint64_t g_calls;
static uint64_t g_sum;
static uint64_t g_min = UINT64_MAX;
static uint64_t g_max;
static uint64_t g_overhead_x256;
static uint32_t g_stack_peak;
static uint32_t g_stack_invoke;
static uint32_t g_stack_caller;
static void *g_heap_start;

static uint32_t max_u32(uint32_t a, uint32_t b)
{
    return a > b ? a : b;
}

/* Bytes of stack in use at this point, from the top of the stack. */
static uint32_t stack_depth(void)
{
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return (uint32_t)((uintptr_t)__stack_top__ - sp);
}

int __wrap_tinyq_backend_invoke(const int8_t *input, int8_t *output)
{
    uint64_t t0;
    uint64_t t1;
    uint64_t n;
    int rc;
    g_stack_caller = max_u32(g_stack_caller, stack_depth());
    g_stack_peak = max_u32(g_stack_peak, tinyq_board_stack_high_water());
    tinyq_board_stack_paint();
    t0 = tinyq_board_instructions();
#ifdef TINYQ_PROFILE_ENABLED
    tinyq_profile_begin();
    rc = __real_tinyq_backend_invoke(input, output);
    tinyq_profile_end();
#else
    rc = __real_tinyq_backend_invoke(input, output);
#endif
    t1 = tinyq_board_instructions();
    g_stack_invoke = max_u32(g_stack_invoke, tinyq_board_stack_high_water());
    n = (t1 - t0) * CALIBRATION_PAIRS;
    n = n > g_overhead_x256 ? n - g_overhead_x256 : 0u;
    g_calls++;
    g_sum += n;
    if (n < g_min) {
        g_min = n;
    }
    if (n > g_max) {
        g_max = n;
    }
    return rc;
}

/* Decimal text of a 64-bit count: newlib-nano's printf has no %llu. */
const char *tinyq_board_u64_text(char buf[21], uint64_t v)
{
    char *p = buf + 20;
    *p = '\0';
    do {
        *--p = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    return p;
}

static void report(void)
{
    char b[5][21];
    uint32_t heap = (uint32_t)((char *)_sbrk(0) - (char *)g_heap_start);
    g_stack_peak = max_u32(max_u32(g_stack_peak, g_stack_invoke), tinyq_board_stack_high_water());
    /* Instruction figures are scaled by 256 (the calibration is a mean over 256 pairs). */
    printf("tinyq-board: invokes=%s instructions_x256_sum=%s instructions_x256_min=%s "
           "instructions_x256_max=%s overhead_x256=%s instructions_per_tick=%u stack_invoke=%lu "
           "stack_peak=%lu stack_size=%lu heap=%lu stack_caller=%lu\n",
           tinyq_board_u64_text(b[0], g_calls), tinyq_board_u64_text(b[1], g_sum),
           tinyq_board_u64_text(b[2], g_calls ? g_min : 0u), tinyq_board_u64_text(b[3], g_max),
           tinyq_board_u64_text(b[4], g_overhead_x256), TINYQ_INSTRUCTIONS_PER_TICK,
           (unsigned long)g_stack_invoke, (unsigned long)g_stack_peak, (unsigned long)tinyq_board_stack_size(),
           (unsigned long)heap, (unsigned long)g_stack_caller);
    fflush(stdout);
}

/* Called once from the reset handler after the C library is set up. */
void tinyq_board_measure_start(void)
{
    uint32_t i;
    uint64_t sum = 0;
    g_heap_start = &end;
    for (i = 0; i < CALIBRATION_PAIRS; i++) {
        uint64_t a = tinyq_board_instructions();
        uint64_t b = tinyq_board_instructions();
        sum += b - a;
    }
    g_overhead_x256 = sum;
    atexit(report);
#ifdef TINYQ_PROFILE_ENABLED
    tinyq_profile_start();
#endif
}
