/* Specialised ADD (see tq_add.h), four elements per loop step. With s the sum of the generic kernel's rescaled
   inputs (whose int32 range tinyq/lower.py proves), m >= 0 and a right shift r >= 1, TFLite's requantization is
   RoundingDivideByPOT(h, r) with h = floor((s * m + 2^30) / 2^31) (tq_requant.h), which is
   floor((h + 2^(r-1) - [h < 0]) / 2^r), and [s < 0] may stand for [h < 0] (they differ only at h == 0, no tie).
   The tables hold 2 * s's terms, so SMMLAR(2s, m, acc) = acc + h, the output zero point folded into acc; the
   generator checks that 2s and acc + h fit int32. */
#include "tq_add.h"

#include "tq_requant.h"
#include "tq_simd.h"

/* The requantized sum of one element plus the output zero point, before the activation clamp. */
static inline int32_t add_one(const int32_t *t1, const int32_t *t2, int8_t x1, int8_t x2, int32_t m, int32_t acc,
                              int32_t shift)
{
    const int32_t s2 = t1[x1] + t2[x2];
    return (tq_smmlar(s2, m, acc) - (int32_t)((uint32_t)s2 >> 31)) >> shift;
}

/* The element loop of both kernels; `clamp` is a constant at each call: the activation range narrower than int8's
   (else a saturation to 8 bits). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void add_all(const tq_add_lut_params *p, const int8_t *input1, const int8_t *input2, int8_t *output,
                           int clamp)
{
    const int32_t *t1 = p->table1 + 128;
    const int32_t *t2 = p->table2 + 128;
    const int32_t m = p->mult, acc = p->acc, shift = p->shift, lo = p->act_min, hi = p->act_max;
    int32_t n = p->size;
#define TQ_ADD_ONE(k)                                                       \
    do {                                                                    \
        int32_t v = add_one(t1, t2, input1[k], input2[k], m, acc, shift);  \
        if (clamp) {                                                        \
            v = v < lo ? lo : v;                                            \
            v = v > hi ? hi : v;                                            \
        } else {                                                            \
            v = tq_sat_s8(v);                                               \
        }                                                                   \
        output[k] = (int8_t)v;                                              \
    } while (0)
    for (; n >= 4; n -= 4) {
        TQ_ADD_ONE(0);
        TQ_ADD_ONE(1);
        TQ_ADD_ONE(2);
        TQ_ADD_ONE(3);
        input1 += 4;
        input2 += 4;
        output += 4;
    }
    for (; n > 0; n--) {
        TQ_ADD_ONE(0);
        input1++;
        input2++;
        output++;
    }
#undef TQ_ADD_ONE
}

void tq_add_lut(const tq_add_lut_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    add_all(p, input1, input2, output, 0);
}

void tq_add_lut_clamp(const tq_add_lut_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    add_all(p, input1, input2, output, 1);
}
