/* The one requantization of the tinyq C engine: TFLite's MultiplyByQuantizedMultiplier, i.e. the doubling high
   multiply rounded to nearest (SaturatingRoundingDoublingHighMul) then a rounding right shift, ties away from
   zero (RoundingDivideByPOT), and the fused forms the fast kernels use; every kernel, generic or specialised,
   requantizes through this header.

   For a non-negative multiplier (every multiplier tinyq's quantize_multiplier produces is >= 0; generation time
   checks it and -31 <= shift <= 30) the reference's sign-dependent nudge and its truncating division by 2^31
   collapse into floor((x * multiplier + 2^30) / 2^31): for a negative product, truncating (p + 1 - 2^30) / 2^31
   towards zero is flooring (p + 1 - 2^30 + 2^31 - 1) / 2^31. The saturating case of the doubling high multiply
   needs multiplier == INT32_MIN, which a non-negative multiplier never is. So the whole is one 32x32->64
   multiply-accumulate and a few 32-bit operations, no 64-bit division.

   TQ_SINGLE_ROUNDING (tq_rounding.h; the emitted folder's copy states the model's mode) selects TFLite's other
   rule, that of a TFLM built with TFLITE_SINGLE_ROUNDING (common.cc): one 64-bit product rounded once,
   (x * multiplier + 2^(30 - shift)) >> (31 - shift), ties upward, no wrap of x << left. Each form below has a
   whole definition per mode. */
#ifndef TQ_REQUANT_H_
#define TQ_REQUANT_H_

#include <stdint.h>

#include "tq_path.h"
#include "tq_rounding.h"

/* MultiplyByQuantizedMultiplier(x, multiplier, shift) with the shift split as the kernels keep it per channel:
   left = max(shift, 0), right = max(-shift, 0). */
#if TQ_SINGLE_ROUNDING
static inline int32_t tq_requantize_lr(int32_t x, int32_t multiplier, int32_t left, int32_t right)
{
    const int32_t total = 31 - left + right;
    return (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << (total - 1))) >> total);
}
#else
static inline int32_t tq_requantize_lr(int32_t x, int32_t multiplier, int32_t left, int32_t right)
{
    const int64_t product = (int64_t)(int32_t)((uint32_t)x << left) * multiplier + ((int64_t)1 << 30);
    const int32_t high = (int32_t)(product >> 31);
    const uint32_t mask = ((uint32_t)1 << right) - 1u;
    const int32_t remainder = (int32_t)((uint32_t)high & mask);
    const int32_t threshold = (int32_t)(mask >> 1) + (high < 0 ? 1 : 0);
    return (high >> right) + (remainder > threshold ? 1 : 0);
}
#endif

/* MultiplyByQuantizedMultiplier(x, multiplier, shift): shift > 0 left, < 0 right, as TFLite stores it. */
static inline int32_t tq_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    return tq_requantize_lr(x, multiplier, shift > 0 ? shift : 0, shift > 0 ? 0 : -shift);
}

/* tq_requantize out of line (tq_requant.c), for the generic kernels: one copy of its code however many kernels
   call it, the smallest code (--optimize size); the specialised kernels inline the forms above and below. */
int32_t tq_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift);

/* Both roundings and the output zero point in one multiply-accumulate, for a right shift r = -shift >= 1:
   tq_requantize(x, multiplier, -r) + zero_point == (x * multiplier + c - [x < 0] * 2^31) >> (31 + r), with
   c = 2^30 + 2^(30 + r) + zero_point * 2^(31 + r) (tinyq/engine/ops/requant.py computes it and checks that
   2^31 * (multiplier + 1) + |c| < 2^63). The doubling high multiply h = floor((x * m + 2^30) / 2^31) is rounded
   half away from zero by 2^r as floor((h + 2^(r-1) - [h < 0]) / 2^r); adding an integer to h is adding it times
   2^31 inside the floor, and two floors make one. [x < 0] stands for [h < 0]: they differ only where x < 0 and
   h == 0, which is no tie. The shift by 31 + r >= 32 reads the high word only (shifted by `shift_high` = r - 1),
   and subtracting 2^31 from the 64-bit sum borrows from it exactly when the low word's top bit is clear. */
#if TQ_SINGLE_ROUNDING
/* Single rounding: c = 2^(30 + r) + zero_point * 2^(31 + r) and no sign correction, (x * multiplier + c) >> (31 + r)
   read as the high word shifted by r - 1. */
static inline int32_t tq_requantize_fused(int32_t x, int32_t multiplier, int64_t c, int32_t shift_high)
{
    return (int32_t)((c + (int64_t)x * multiplier) >> 32) >> shift_high;
}
#else
static inline int32_t tq_requantize_fused(int32_t x, int32_t multiplier, int64_t c, int32_t shift_high)
{
    const int64_t t = c + (int64_t)x * multiplier;
    const uint32_t borrow = ((uint32_t)x & ~(uint32_t)t) >> 31;
    return (int32_t)((uint32_t)(t >> 32) - borrow) >> shift_high;
}
#endif

/* The fused form's 64-bit constant c from the two words the kernels' tables store it as (low, high). A macro:
   as an inline function GCC allocates the registers of the loops around it differently (0.2% more instructions
   in the M4's 1x1 conv). */
#define TQ_FUSED_CONSTANT(low_high) \
    ((int64_t)(((uint64_t)(uint32_t)(low_high)[1] << 32) | (uint32_t)(low_high)[0]))

/* x clamped to int8's range: one SSAT where the core has it (Armv7-M and later), compilers do not always find it. */
#if TQ_SSAT
static inline int32_t tq_sat_s8(int32_t x)
{
    return __ssat(x, 8);
}
#else
static inline int32_t tq_sat_s8(int32_t x)
{
    return x < -128 ? -128 : (x > 127 ? 127 : x);
}
#endif

/* x clamped to [lo, hi] as int8: a requantized value plus its zero point, clamped to the activation range. */
static inline int8_t tq_clamp_s8(int32_t x, int32_t lo, int32_t hi)
{
    if (x < lo) {
        x = lo;
    }
    if (x > hi) {
        x = hi;
    }
    return (int8_t)x;
}

#endif /* TQ_REQUANT_H_ */
