/* Host board: nothing to set up; no cycle counter (instruction counts come from the Cortex-M4 target). */
#include "board.h"

void tinyq_board_init(void)
{
}

uint32_t tinyq_board_cycles(void)
{
    return 0u;
}
