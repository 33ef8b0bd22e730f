/* Exact requantization for the specialised kernels: TFLite's MultiplyByQuantizedMultiplier (doubling high
   multiply rounded to nearest, then a rounding right shift, ties away from zero) for a non-negative multiplier,
   as one 32x32->64 multiply-accumulate and a few 32-bit operations; no 64-bit division. Generation time checks
   the multiplier's sign (every multiplier quantize_multiplier produces is >= 0) and -31 <= shift <= 30.
   With multiplier >= 0 the reference's sign-dependent nudge and its truncating division by 2^31 collapse into
   floor((x * multiplier + 2^30) / 2^31): for a negative product, truncating (p + 1 - 2^30) / 2^31 towards zero
   is flooring (p + 1 - 2^30 + 2^31 - 1) / 2^31. */
#ifndef TQ_REQUANT_H_
#define TQ_REQUANT_H_

#include <stdint.h>

static inline int32_t tq_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int64_t product = (int64_t)(int32_t)((uint32_t)x << left) * multiplier + ((int64_t)1 << 30);
    const int32_t high = (int32_t)(product >> 31);
    const uint32_t mask = ((uint32_t)1 << right) - 1u;
    const int32_t remainder = (int32_t)((uint32_t)high & mask);
    const int32_t threshold = (int32_t)(mask >> 1) + (high < 0 ? 1 : 0);
    return (high >> right) + (remainder > threshold ? 1 : 0);
}

/* Requantized accumulator plus the output zero point, clamped to the activation range, as int8. */
static inline int8_t tq_requantize_s8(int32_t acc, int32_t multiplier, int32_t shift, int32_t output_offset,
                                      int32_t act_min, int32_t act_max)
{
    int32_t v = tq_requantize(acc, multiplier, shift) + output_offset;
    v = v < act_min ? act_min : v;
    v = v > act_max ? act_max : v;
    return (int8_t)v;
}

#endif /* TQ_REQUANT_H_ */
