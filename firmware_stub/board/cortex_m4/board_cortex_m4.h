/* Cortex-M4 (QEMU mps2-an386) board support beyond board.h: semihosting, exit, stack high-water mark. */
#ifndef TINYQ_BOARD_CORTEX_M4_H
#define TINYQ_BOARD_CORTEX_M4_H

#include <stdint.h>

#define TINYQ_STACK_PAINT 0xA5A5A5A5u
#define TINYQ_EXIT_FAULT 99

/* SysTick runs from the 25 MHz core clock; under `-icount shift=0` QEMU advances virtual time 1 ns per
   instruction, so one SysTick tick is exactly this many executed instructions. */
#define TINYQ_INSTRUCTIONS_PER_TICK 40u

uintptr_t tinyq_semihost(uint32_t op, uintptr_t arg);
void tinyq_board_exit(int code) __attribute__((noreturn));
void tinyq_board_counter_start(void);
uint64_t tinyq_board_instructions(void);
void tinyq_board_stack_paint(void);
uint32_t tinyq_board_stack_high_water(void);
uint32_t tinyq_board_stack_size(void);
int tinyq_board_cmdline(char *buf, uint32_t size, char **argv, int max_args);

#endif
