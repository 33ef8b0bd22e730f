/* The one place that decides which path of each kernel this build compiles. Exactly one of the four TQ_PATH_*
   macros is 1, the others 0; kernels choose between whole function definitions with them (and the two derived
   macros below), never inside a function body.

   TQ_PATH_DSP        the packed algorithm on the DSP extension's two-lane instructions (SMLAD, SXTB16, SSUB8/SEL):
                      Cortex-M4, M7, M33, M55 (__ARM_FEATURE_DSP), with ACLE intrinsics and a few inline-assembly
                      loops; also any build with -DTQ_EMULATE_DSP and hosts without SSE2, on the bit-identical
                      plain-C twins of the instructions (tq_simd.h) and the C twins of the assembly loops.
   TQ_PATH_HOST_SIMD  an x86-64 host: the packed algorithm's scratch and weight layouts, blocks and requantization,
                      with its innermost sums on SSE2 (PMADDWD is SMLAD on four lane pairs), 256 bits wide where the
                      compiler targets AVX2 (TQ_HOST_AVX2). The same exact integer sums, added in another order.
   TQ_PATH_ARMV6M     Cortex-M0/M0+ (Thumb-1, GCC): the portable algorithm, with its hottest loops in Thumb-1
                      assembly (GCC spills the C loops' sums and pointers over the 8 low registers).
   TQ_PATH_PORTABLE   every other build: Cortex-M3 and Arm cores without DSP, and -DTQ_PORTABLE on the host (so the
                      host can check this path over a whole test set). One value per lane, plain C.

   Derived: TQ_PACKED (DSP or host SIMD) says a kernel takes the packed path's layouts (two 16-bit lanes per word);
   TQ_DSP_ASM says the DSP instructions are real, so inline assembly may use them (not under emulation).
   Little-endian only, as every Cortex-M and the hosts tinyq runs on. */
#ifndef TQ_PATH_H_
#define TQ_PATH_H_

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define TQ_PATH_DSP 1
#define TQ_PATH_HOST_SIMD 0
#define TQ_PATH_ARMV6M 0
#define TQ_PATH_PORTABLE 0
#define TQ_DSP_ASM 1
#elif defined(__GNUC__) && !defined(__clang__) && defined(__ARM_ARCH_ISA_THUMB) && __ARM_ARCH_ISA_THUMB == 1
#define TQ_PATH_DSP 0
#define TQ_PATH_HOST_SIMD 0
#define TQ_PATH_ARMV6M 1
#define TQ_PATH_PORTABLE 0
#define TQ_DSP_ASM 0
#elif defined(__arm__) || defined(TQ_PORTABLE)
#define TQ_PATH_DSP 0
#define TQ_PATH_HOST_SIMD 0
#define TQ_PATH_ARMV6M 0
#define TQ_PATH_PORTABLE 1
#define TQ_DSP_ASM 0
#elif defined(__SSE2__) && !defined(TQ_EMULATE_DSP)
#define TQ_PATH_DSP 0
#define TQ_PATH_HOST_SIMD 1
#define TQ_PATH_ARMV6M 0
#define TQ_PATH_PORTABLE 0
#define TQ_DSP_ASM 0
#else
#define TQ_PATH_DSP 1
#define TQ_PATH_HOST_SIMD 0
#define TQ_PATH_ARMV6M 0
#define TQ_PATH_PORTABLE 0
#define TQ_DSP_ASM 0
#endif

#define TQ_PACKED (TQ_PATH_DSP || TQ_PATH_HOST_SIMD)

/* The instruction sets' headers: ACLE where the core has DSP or saturation (SSAT, Armv7-M and later: TQ_SSAT),
   SSE2 or AVX2 on the host. */
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#include <arm_acle.h>
#define TQ_SSAT 1
#else
#define TQ_SSAT 0
#endif

#if TQ_PATH_HOST_SIMD && defined(__AVX2__)
#include <immintrin.h>
#define TQ_HOST_AVX2 1
#elif TQ_PATH_HOST_SIMD
#include <emmintrin.h>
#define TQ_HOST_AVX2 0
#else
#define TQ_HOST_AVX2 0
#endif

#endif /* TQ_PATH_H_ */
