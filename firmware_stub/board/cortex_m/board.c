/* Instruction counter, semihosting calls and exit for the Cortex-M cores QEMU emulates (micro:bit, mps2, mps3).

   What is counted: SysTick is clocked by the core clock (CLKSOURCE = 1), e.g. 25 MHz on QEMU's mps2 boards.
   With `-icount shift=0` every executed guest instruction advances virtual time by 1 ns, so SysTick
   decrements once per 10^9 / f instructions (40 at 25 MHz) and the count below is "instructions executed",
   quantised to that.
   Exception entry and return are not instructions; the wrap handler's few instructions (once every
   2^24 ticks, about 671 million instructions) are counted. */
#include <stdint.h>

#include "board.h"
#include "board_cortex_m.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define SYST_RELOAD 0x00FFFFFFu
#define ICSR_PENDSTSET (1u << 26)
#define ICSR_PENDSTCLR (1u << 25)

#define SEMIHOST_GET_CMDLINE 0x15u
#define SEMIHOST_EXIT_EXTENDED 0x20u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

static volatile uint32_t g_wraps;

void SysTick_Handler(void)
{
    g_wraps++;
}

uintptr_t tinyq_semihost(uint32_t op, uintptr_t arg)
{
    register uintptr_t r0 __asm__("r0") = op;
    register uintptr_t r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void tinyq_board_exit(int code)
{
    uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    tinyq_semihost(SEMIHOST_EXIT_EXTENDED, (uintptr_t)block);
    for (;;) {
    }
}

/* Started by the reset handler, so the count runs from reset whether or not main calls tinyq_board_init(). */
void tinyq_board_counter_start(void)
{
    SYST_CSR = 0;
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* core clock, wrap interrupt, enabled */
    /* The first tick only loads the reload value; wait for it so counting starts from a clean period. */
    while (SYST_CVR == 0u) {
    }
    SCB_ICSR = ICSR_PENDSTCLR;
    g_wraps = 0;
}

void tinyq_board_init(void)
{
    if ((SYST_CSR & 1u) == 0u) {
        tinyq_board_counter_start();
    }
}

/* Ticks since the counter started: each period runs RELOAD, ..., 1, 0 and the wrap interrupt comes as the
   counter reaches 0, so 0 is counted as the first tick of the next period. */
uint64_t tinyq_board_instructions(void)
{
    uint32_t wraps;
    uint32_t value;
    uint32_t phase;
    __asm__ volatile("cpsid i" ::: "memory");
    wraps = g_wraps;
    value = SYST_CVR;
    /* A wrap that happened while interrupts were masked is still pending: count it here. */
    if ((SCB_ICSR & ICSR_PENDSTSET) != 0u) {
        value = SYST_CVR;
        wraps++;
    }
    __asm__ volatile("cpsie i" ::: "memory");
    phase = value == 0u ? 0u : SYST_RELOAD + 1u - value;
    return ((uint64_t)wraps * (SYST_RELOAD + 1u) + phase) * TINYQ_INSTRUCTIONS_PER_TICK_X256 / 256u;
}

uint32_t tinyq_board_cycles(void)
{
    return (uint32_t)tinyq_board_instructions();
}

/* The command line QEMU passes with `-append` (after the kernel's own name), split on spaces into argv. */
int tinyq_board_cmdline(char *buf, uint32_t size, char **argv, int max_args)
{
    uintptr_t block[2] = {(uintptr_t)buf, size};
    int argc = 0;
    char *p = buf;
    if (size == 0u || tinyq_semihost(SEMIHOST_GET_CMDLINE, (uintptr_t)block) != 0u) {
        return 0;
    }
    buf[size - 1u] = '\0';
    while (*p != '\0' && argc < max_args) {
        while (*p == ' ') {
            *p++ = '\0';
        }
        if (*p == '\0') {
            break;
        }
        argv[argc++] = p;
        while (*p != '\0' && *p != ' ') {
            p++;
        }
    }
    return argc;
}
