/* SOFTMAX (see tq_softmax.h): gemmlowp-style fixed point, as TFLite's reference int8 softmax, one path for
   every build. */
#include "tq_softmax.h"

#include "tq_requant.h"

/* ---- gemmlowp's fixed-point primitives, as TFLite's reference softmax uses them ---- */

/* High 32 bits of 2*a*b, rounded to nearest; saturates the single overflowing case. */
static int32_t srdhm(int32_t a, int32_t b)
{
    int64_t ab;
    int64_t nudge;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero. */
static int32_t rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * 2^exponent with saturation (exponent > 0) or rounding (exponent < 0). */
static int32_t saturating_rounding_mul_by_pot(int32_t x, int32_t exponent)
{
    int32_t threshold;
    if (exponent == 0) {
        return x;
    }
    if (exponent < 0) {
        return rounding_divide_by_pot(x, -exponent);
    }
    threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

static int32_t max_i32(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

#define FP_ONE_Q0 INT32_MAX               /* 1.0 in Q0.31 saturates to the largest value */
#define SCALED_DIFF_INTEGER_BITS 5        /* input differences in Q5.26 */
#define ACCUM_INTEGER_BITS 12             /* sum of exponentials in Q12.19 */

/* exp(a) for a in [-1/4, 0), a and result in Q0.31. */
static int32_t exp_on_interval_neg_quarter_to_zero(int32_t a)
{
    const int32_t constant_term = 1895147668;   /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;
    const int32_t x = a + (1 << 28);            /* a + 1/8 */
    const int32_t x2 = srdhm(x, x);
    const int32_t x3 = srdhm(x2, x);
    const int32_t x4 = srdhm(x2, x2);
    const int32_t x4_over_4 = saturating_rounding_mul_by_pot(x4, -2);
    const int32_t poly = saturating_rounding_mul_by_pot(srdhm(x4_over_4 + x3, constant_1_over_3) + x2, -1);
    return constant_term + srdhm(constant_term, x + poly);
}

/* exp(a) for a <= 0 given in Q5.26; result in Q0.31. */
static int32_t exp_on_negative_values(int32_t a)
{
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t fractional_bits = 31 - SCALED_DIFF_INTEGER_BITS;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_quarter = (a & mask) - one_quarter;
    int32_t result = exp_on_interval_neg_quarter_to_zero(
        saturating_rounding_mul_by_pot(a_mod_quarter_minus_quarter, SCALED_DIFF_INTEGER_BITS));
    const int32_t remainder = a_mod_quarter_minus_quarter - a;
    int32_t k;
    /* Barrel shifter: multiply by exp(-2^e) for every bit e = -2..4 set in the remainder. */
    for (k = 0; k < 7; k++) {
        const int32_t e = k - 2;
        if (SCALED_DIFF_INTEGER_BITS > e && (remainder & ((int32_t)1 << (fractional_bits + e))) != 0) {
            result = srdhm(result, multipliers[k]);
        }
    }
    return a == 0 ? FP_ONE_Q0 : result;
}

/* 1 / (1 + x) for x in [0, 1), x in Q0.31, result in Q0.31 (Newton-Raphson in Q2.29). */
static int32_t one_over_one_plus_x(int32_t a)
{
    const int64_t sum = (int64_t)a + (int64_t)FP_ONE_Q0;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t constant_48_over_17 = 1515870810;
    const int32_t constant_neg_32_over_17 = -1010580540;
    const int32_t one_q2 = (int32_t)1 << 29;
    int32_t x = constant_48_over_17 + srdhm(half_denominator, constant_neg_32_over_17);
    int i;
    for (i = 0; i < 3; i++) {
        const int32_t one_minus = one_q2 - srdhm(half_denominator, x);
        x = x + saturating_rounding_mul_by_pot(srdhm(x, one_minus), 2);
    }
    return saturating_rounding_mul_by_pot(x, 1);
}

static int32_t count_leading_zeros(uint32_t x)
{
    int32_t n = 0;
    if (x == 0u) {
        return 32;
    }
    while ((x & 0x80000000u) == 0u) {
        x <<= 1;
        n++;
    }
    return n;
}

/* A row's difference from its maximum in Q5.26: MultiplyByQuantizedMultiplierGreaterThanOne, which is the doubling
   high multiply of diff << left under double rounding and the single-rounding MultiplyByQuantizedMultiplier
   under TQ_SINGLE_ROUNDING (tq_requant.h). A macro: the double form expands to the very expression the kernel had,
   so its code is unchanged. */
#if TQ_SINGLE_ROUNDING
#define TQ_RESCALE_DIFF(diff, p) tq_requantize_lr((diff), (p)->input_multiplier, (p)->input_left_shift, 0)
#else
#define TQ_RESCALE_DIFF(diff, p) srdhm((int32_t)((uint32_t)(diff) << (p)->input_left_shift), (p)->input_multiplier)
#endif

void tq_softmax(const tq_softmax_params *p, const int8_t *input, int8_t *output)
{
    int32_t r, c;
    for (r = 0; r < p->rows; r++) {
        const int8_t *in = input + r * p->depth;
        int8_t *out = output + r * p->depth;
        int32_t max_in_row = -128;
        int32_t sum_of_exps = 0;
        int32_t headroom_plus_one, num_bits_over_unit, shifted_scale;
        for (c = 0; c < p->depth; c++) {
            max_in_row = max_i32(max_in_row, in[c]);
        }
        for (c = 0; c < p->depth; c++) {
            const int32_t diff = (int32_t)in[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t rescaled = TQ_RESCALE_DIFF(diff, p);
                sum_of_exps += saturating_rounding_mul_by_pot(exp_on_negative_values(rescaled), -ACCUM_INTEGER_BITS);
            }
        }
        headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
        num_bits_over_unit = ACCUM_INTEGER_BITS - headroom_plus_one;
        shifted_scale = one_over_one_plus_x(
            (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31)));
        for (c = 0; c < p->depth; c++) {
            const int32_t diff = (int32_t)in[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t rescaled = TQ_RESCALE_DIFF(diff, p);
                const int32_t exp_in_0 = exp_on_negative_values(rescaled);
                const int32_t unsat = rounding_divide_by_pot(srdhm(shifted_scale, exp_in_0), num_bits_over_unit + 31 - 8);
                out[c] = tq_clamp_s8(unsat - 128, -128, 127);
            } else {
                out[c] = -128;
            }
        }
    }
}
