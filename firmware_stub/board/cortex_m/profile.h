/* The per-op profile of `make PROFILE=1` Cortex-M builds (profile.c): measure.c marks each invoke's start and
   end, the generated engine's TINYQ_TRACE hook marks each kernel call in between. */
#ifndef TINYQ_BOARD_PROFILE_H
#define TINYQ_BOARD_PROFILE_H

/* Times the marks' own overhead and registers the report printed at exit; once, before any invoke. */
void tinyq_profile_start(void);
/* The invoke starts: the next kernel call is the first. */
void tinyq_profile_begin(void);
/* The invoke has returned: what followed the last kernel call is counted apart. */
void tinyq_profile_end(void);

#endif
