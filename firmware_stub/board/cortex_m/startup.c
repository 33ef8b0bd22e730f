/* Reset and exception entry for the Cortex-M4 of QEMU's mps2-an386: vector table, .data copy, .bss zeroing,
   stack painting, semihosting set-up, then main() and exit() (whose code reaches the host via semihosting). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "board_cortex_m.h"

extern uint32_t __data_start__[], __data_end__[], __data_load__[];
extern uint32_t __bss_start__[], __bss_end__[];
extern uint32_t __stack_top__[], __stack_limit__[];

extern int main(int argc, char **argv);
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);
extern void tinyq_board_measure_start(void);

void Reset_Handler(void);
void SysTick_Handler(void);
void tinyq_fault_handler(void);

#define TINYQ_MAX_ARGS 8

typedef void (*tinyq_vector)(void);

/* Core exceptions only: the stub enables no peripheral interrupt. Entry 0 is the initial stack pointer. */
__attribute__((section(".vectors"), used)) static const tinyq_vector g_vectors[16] = {
    (tinyq_vector)(uintptr_t)__stack_top__,
    Reset_Handler,
    tinyq_fault_handler, /* NMI */
    tinyq_fault_handler, /* HardFault */
    tinyq_fault_handler, /* MemManage */
    tinyq_fault_handler, /* BusFault */
    tinyq_fault_handler, /* UsageFault */
    0, 0, 0, 0,
    tinyq_fault_handler, /* SVCall */
    tinyq_fault_handler, /* DebugMonitor */
    0,
    tinyq_fault_handler, /* PendSV */
    SysTick_Handler,
};

/* Fill the stack below the current frame with the paint word; tinyq_board_stack_high_water() reads it back. */
void tinyq_board_stack_paint(void)
{
    uintptr_t sp;
    uint32_t *p = __stack_limit__;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    sp -= 64u; /* keep clear of this function's own frame */
    while ((uintptr_t)p < sp) {
        *p++ = TINYQ_STACK_PAINT;
    }
}

uint32_t tinyq_board_stack_high_water(void)
{
    const uint32_t *p = __stack_limit__;
    while (p < __stack_top__ && *p == TINYQ_STACK_PAINT) {
        p++;
    }
    return (uint32_t)((uintptr_t)__stack_top__ - (uintptr_t)p);
}

uint32_t tinyq_board_stack_size(void)
{
    return (uint32_t)((uintptr_t)__stack_top__ - (uintptr_t)__stack_limit__);
}

/* __libc_init_array calls these; without crti/crtn (-nostartfiles) the constructors run from .init_array only. */
void _init(void);
void _fini(void);
void _init(void) {}
void _fini(void) {}

void Reset_Handler(void)
{
    uint32_t *src = __data_load__;
    uint32_t *dst = __data_start__;
    while (dst < __data_end__) {
        *dst++ = *src++;
    }
    for (dst = __bss_start__; dst < __bss_end__; dst++) {
        *dst = 0;
    }
    tinyq_board_stack_paint();
    initialise_monitor_handles();
    __libc_init_array();
    tinyq_board_counter_start();
    tinyq_board_measure_start();
    {
        static char cmdline[512];
        static char *argv[TINYQ_MAX_ARGS + 1];
        int argc = tinyq_board_cmdline(cmdline, sizeof cmdline, argv, TINYQ_MAX_ARGS);
        argv[argc] = 0;
        exit(main(argc, argv));
    }
}

/* Any unexpected exception: report through semihosting and stop with a distinctive exit code. */
void tinyq_fault_handler(void)
{
    tinyq_board_exit(TINYQ_EXIT_FAULT);
}
