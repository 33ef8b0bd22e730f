/* Two-input elementwise int8 kernels (see tq_elementwise.h): same-shape ADD, generic and specialised, and the
   broadcasting ops. One path for every build (tq_sat_s8 and tq_smmlar are one instruction where the core has
   them). */
#include "tq_elementwise.h"

#include "tq_requant.h"
#include "tq_simd.h"

/* ---- Same-shape ADD, generic (tq_add): TFLM's reference int8 ADD ---- */

void tq_add(const tq_add_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    int32_t i;
    for (i = 0; i < p->size; i++) {
        const int32_t a = (int32_t)((uint32_t)(p->in1_offset + input1[i]) << p->left_shift);
        const int32_t b = (int32_t)((uint32_t)(p->in2_offset + input2[i]) << p->left_shift);
        const int32_t sa = tq_multiply_by_quantized_multiplier(a, p->in1_mult, p->in1_shift);
        const int32_t sb = tq_multiply_by_quantized_multiplier(b, p->in2_mult, p->in2_shift);
        const int32_t sum = tq_multiply_by_quantized_multiplier(sa + sb, p->out_mult, p->out_shift) + p->out_offset;
        output[i] = tq_clamp_s8(sum, p->act_min, p->act_max);
    }
}

/* ---- Same-shape ADD, specialised (tq_add_lut, tq_add_lut_clamp) ---- */

/* Four elements per loop step. With s the sum of the generic kernel's rescaled inputs (whose int32 range
   tinyq/engine/ops/ proves), m >= 0 and a right shift r >= 1, TFLite's requantization is RoundingDivideByPOT(h, r)
   with h = floor((s * m + 2^30) / 2^31) (tq_requant.h), which is floor((h + 2^(r-1) - [h < 0]) / 2^r), and
   [s < 0] may stand for [h < 0] (they differ only at h == 0, no tie). The tables hold 2 * s's terms, so
   SMMLAR(2s, m, acc) = acc + h, the output zero point folded into acc; the generator checks that 2s and acc + h
   fit int32. */

/* The requantized sum of one element plus the output zero point, before the activation clamp. Single rounding
   (tq_requant.h): floor((s * m + 2^(30 + r)) / 2^(31 + r)) + zero point; with the same acc, 2^(r-1) + zero point *
   2^r, that is (acc + floor(2s * m / 2^32)) >> r, as acc * 2^32 is a multiple of 2^(31 + r) for r >= 1: the
   truncating SMMLA and no sign correction. */
#if TQ_SINGLE_ROUNDING
static inline int32_t add_one(const int32_t *t1, const int32_t *t2, int8_t x1, int8_t x2, int32_t m, int32_t acc,
                              int32_t shift)
{
    return tq_smmla(t1[x1] + t2[x2], m, acc) >> shift;
}
#else
static inline int32_t add_one(const int32_t *t1, const int32_t *t2, int8_t x1, int8_t x2, int32_t m, int32_t acc,
                              int32_t shift)
{
    const int32_t s2 = t1[x1] + t2[x2];
    return (tq_smmlar(s2, m, acc) - (int32_t)((uint32_t)s2 >> 31)) >> shift;
}
#endif

/* The element loop of both kernels; `clamp` is a constant at each call: the activation range narrower than int8's
   (else a saturation to 8 bits). */
TQ_INLINE void add_all(const tq_add_lut_params *p, const int8_t *input1, const int8_t *input2, int8_t *output,
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

/* ---- Broadcasting ADD, SUB, MUL, MAXIMUM, MINIMUM ---- */

typedef int32_t (*binary_fn)(const tq_binary_params *p, int32_t a, int32_t b);

static int32_t clamp_act(const tq_binary_params *p, int32_t v)
{
    if (v < p->act_min) {
        v = p->act_min;
    }
    if (v > p->act_max) {
        v = p->act_max;
    }
    return v;
}

/* Each input rescaled to twice the larger input scale, in left_shift bits of headroom. */
static int32_t rescaled(int32_t value, int32_t offset, int32_t left_shift, int32_t mult, int32_t shift)
{
    return tq_multiply_by_quantized_multiplier((int32_t)((uint32_t)(value + offset) << left_shift), mult, shift);
}

static int32_t add_fn(const tq_binary_params *p, int32_t a, int32_t b)
{
    const int32_t sum = rescaled(a, p->in1_offset, p->left_shift, p->in1_mult, p->in1_shift) +
                        rescaled(b, p->in2_offset, p->left_shift, p->in2_mult, p->in2_shift);
    return clamp_act(p, tq_multiply_by_quantized_multiplier(sum, p->out_mult, p->out_shift) + p->out_offset);
}

static int32_t sub_fn(const tq_binary_params *p, int32_t a, int32_t b)
{
    const int32_t diff = rescaled(a, p->in1_offset, p->left_shift, p->in1_mult, p->in1_shift) -
                         rescaled(b, p->in2_offset, p->left_shift, p->in2_mult, p->in2_shift);
    return clamp_act(p, tq_multiply_by_quantized_multiplier(diff, p->out_mult, p->out_shift) + p->out_offset);
}

static int32_t mul_fn(const tq_binary_params *p, int32_t a, int32_t b)
{
    const int32_t product = (a + p->in1_offset) * (b + p->in2_offset);
    return clamp_act(p, tq_multiply_by_quantized_multiplier(product, p->out_mult, p->out_shift) + p->out_offset);
}

static int32_t max_fn(const tq_binary_params *p, int32_t a, int32_t b)
{
    (void)p;
    return a > b ? a : b;
}

static int32_t min_fn(const tq_binary_params *p, int32_t a, int32_t b)
{
    (void)p;
    return a < b ? a : b;
}

static void binary(const tq_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out, binary_fn fn)
{
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < p->n0; i0++) {
        for (i1 = 0; i1 < p->n1; i1++) {
            for (i2 = 0; i2 < p->n2; i2++) {
                const int8_t *a = in1 + i0 * p->a0 + i1 * p->a1 + i2 * p->a2;
                const int8_t *b = in2 + i0 * p->b0 + i1 * p->b1 + i2 * p->b2;
                for (i3 = 0; i3 < p->n3; i3++) {
                    *out++ = (int8_t)fn(p, a[i3 * p->a3], b[i3 * p->b3]);
                }
            }
        }
    }
}

void tq_add_broadcast(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    binary(p, input1, input2, output, add_fn);
}

void tq_sub(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    binary(p, input1, input2, output, sub_fn);
}

void tq_mul(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    binary(p, input1, input2, output, mul_fn);
}

void tq_maximum(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    binary(p, input1, input2, output, max_fn);
}

void tq_minimum(const tq_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    binary(p, input1, input2, output, min_fn);
}
