/* Cortex-M board support (QEMU microbit, mps2 and mps3 boards) beyond board.h: semihosting, exit, stack
   high-water mark, instruction counter. */
#ifndef TINYQ_BOARD_CORTEX_M_H
#define TINYQ_BOARD_CORTEX_M_H

#include <stdint.h>

#define TINYQ_STACK_PAINT 0xA5A5A5A5u
#define TINYQ_EXIT_FAULT 99

/* SysTick runs from the core clock; under `-icount shift=0` QEMU advances virtual time 1 ns per instruction, so
   one SysTick tick is 10^9 / f_clock executed instructions, given x256 by the target (tinyq/targets/registry.py):
   25 MHz (mps2-an385/386/500): 40 = 10240/256; 20 MHz (mps2-an505): 50; 32 MHz (mps3-an547): 31.25;
   16 MHz (micro:bit): 62.5. */
#ifndef TINYQ_INSTRUCTIONS_PER_TICK_X256
#define TINYQ_INSTRUCTIONS_PER_TICK_X256 10240u
#endif
/* One reading's resolution, in whole instructions (rounded up). */
#define TINYQ_INSTRUCTIONS_PER_TICK ((TINYQ_INSTRUCTIONS_PER_TICK_X256 + 255u) / 256u)

uintptr_t tinyq_semihost(uint32_t op, uintptr_t arg);
void tinyq_board_exit(int code) __attribute__((noreturn));
void tinyq_board_counter_start(void);
uint64_t tinyq_board_instructions(void);
void tinyq_board_stack_paint(void);
uint32_t tinyq_board_stack_high_water(void);
uint32_t tinyq_board_stack_size(void);
int tinyq_board_cmdline(char *buf, uint32_t size, char **argv, int max_args);
/* Decimal text of v in buf, returned (newlib-nano's printf has no %llu). */
const char *tinyq_board_u64_text(char buf[21], uint64_t v);

#endif
