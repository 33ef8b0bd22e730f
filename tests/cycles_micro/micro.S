/* Micro-benchmarks for the cycle model (tests/test_cycles.py): each is counted by hand from the timing tables
   in tinyq/targets/cycles/timing.py; the counts sit beside each function. Thumb-1 ones build for every core,
   the rest only where the core has Thumb-2 and the DSP extension. */
    .syntax unified
    .thumb
    .text

    .macro FUNC name
    .global \name
    .type \name, %function
    .thumb_func
\name:
    .endm

/* r0 = 5: 1 + 5 x (adds, subs) + 4 taken bne + 1 not taken + mov + bx */
    .balign 4
FUNC mb_loop
    movs r1, #0
1:  adds r1, r1, r0
    subs r0, r0, #1
    bne 1b
    mov r0, r1
    bx lr

/* three independent loads in a row (M4: the 2nd and 3rd pipeline) */
    .balign 4
FUNC mb_loads
    ldr r1, [r0]
    ldr r2, [r0, #4]
    ldr r3, [r0, #8]
    adds r0, r1, r2
    adds r0, r0, r3
    bx lr

/* a pointer chase: the 2nd load is addressed by the 1st's result (no pipelining) */
    .balign 4
FUNC mb_chase
    ldr r0, [r0]
    ldr r0, [r0]
    bx lr

/* push, one ALU op, pop with the return */
    .balign 4
FUNC mb_pushpop
    push {r4, r5, r6, r7, lr}
    movs r4, #1
    pop {r4, r5, r6, r7, pc}

/* load multiple of 3 registers (with writeback: Thumb-1 has no other form), one add */
    .balign 4
FUNC mb_ldm
    ldm r0!, {r1, r2, r3}
    adds r0, r1, r2
    bx lr

/* multiply: MULS */
    .balign 4
FUNC mb_muls
    muls r0, r1, r0
    bx lr

/* The driver main() calls: every call returns onto a 16-bit instruction, so no return pays the M4's extra
   refill for a 32-bit target at a halfword address. Returns the sum of the results (checked by main). */
    .balign 4
FUNC mb_run
    push {r4, lr}
    movs r0, #5
    bl mb_loop
    mov r4, r0
    ldr r0, =mb_words
    bl mb_loads
    adds r4, r4, r0
    ldr r0, =mb_outer
    bl mb_chase
    ldr r0, [r0]
    adds r4, r4, r0
    bl mb_pushpop
    nop
    ldr r0, =mb_words
    bl mb_ldm
    adds r4, r4, r0
    movs r0, #6
    movs r1, #7
    bl mb_muls
    adds r4, r4, r0
#if defined(__ARM_FEATURE_DSP)
    ldr r0, =mb_words
    bl mb_interlock
    adds r4, r4, r0
    movs r0, #0
    movs r1, #3
    movs r2, #5
    bl mb_dsp
    nop
    movs r0, #42
    movs r1, #6
    bl mb_div
    adds r4, r4, r0
    movs r0, #1
    bl mb_wide_target
    adds r4, r4, r0
#endif
    mov r0, r4
    pop {r4, pc}
    .ltorg

    .data
    .balign 4
mb_words:
    .word 1, 2, 3, 4
mb_inner:
    .word mb_words
mb_outer:
    .word mb_inner
    .text

#if defined(__ARM_FEATURE_DSP)
/* the address register written by the ALU op just before: M4 interlock */
    .balign 4
FUNC mb_interlock
    adds r0, r0, #4
    ldr r0, [r0]
    bx lr

/* DSP and long multiplies, one cycle each on the M4 */
    .balign 4
FUNC mb_dsp
    smlad r0, r1, r2, r0
    smulbb r3, r1, r2
    smlabb r0, r1, r2, r0
    umull r1, r2, r1, r2
    mla r0, r1, r2, r0
    bx lr

/* SDIV: timed at its worst case, 12 */
    .balign 4
FUNC mb_div
    sdiv r0, r0, r1
    bx lr

/* a taken branch to a 32-bit instruction at a halfword address: P = 2 on the M4 */
    .balign 4
FUNC mb_wide_target
    b.n 1f
    nop
    nop
1:  add.w r0, r0, #1
    bx lr
#endif
