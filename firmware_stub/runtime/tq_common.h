/* What every file of the tinyq C engine's runtime shares: C99, no malloc, no floating point, standard library
   only; batch 1, tensors NHWC; results equal to TFLite Micro's reference kernels bit for bit. Every kernel
   parameter is precomputed by tinyq and stored in flash. The kernels live one op family per folder
   (runtime/<family>/tq_<family>.[ch]); the emitted folder holds them flat, and its tinyq_kernels.h includes every
   family's header. */
#ifndef TQ_COMMON_H_
#define TQ_COMMON_H_

#include <stdint.h>
#include <string.h>

/* Compiler hints, all empty for a compiler that knows none of them (the same results, only slower).
   TQ_ALIGNED: the engine's arena alignment (kernel scratch in it is read and written as 16- and 32-bit words).
   TQ_INLINE / TQ_NOINLINE: a helper that must be inlined into the loop calling it (GCC at -O2 keeps some out
   of line), or kept as one shared copy. TQ_ASSUME_ALIGNED4: a pointer known to be 4-byte aligned (word loads,
   paired where they can). TQ_CHAIN4: four sums kept as separate chains of multiply-accumulates (GCC would
   otherwise regroup wrapping sums into separate products added up at the end of a loop body); changes no value. */
#if defined(__GNUC__) || defined(__clang__)
#define TQ_ALIGNED(n) __attribute__((aligned(n)))
#define TQ_INLINE static inline __attribute__((always_inline))
#define TQ_NOINLINE static __attribute__((noinline))
#define TQ_ASSUME_ALIGNED4(p) __builtin_assume_aligned((p), 4)
#define TQ_CHAIN4(a, b, c, d) __asm__("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d))
#else
#define TQ_ALIGNED(n)
#define TQ_INLINE static inline
#define TQ_NOINLINE static
#define TQ_ASSUME_ALIGNED4(p) (p)
#define TQ_CHAIN4(a, b, c, d) ((void)0)
#endif

#endif /* TQ_COMMON_H_ */
