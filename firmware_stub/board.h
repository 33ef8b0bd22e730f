/* What main needs from a board: set-up, and a free-running counter (0 where the board has none). */
#ifndef TINYQ_BOARD_H
#define TINYQ_BOARD_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void tinyq_board_init(void);
uint32_t tinyq_board_cycles(void);

#ifdef __cplusplus
}
#endif

#endif
