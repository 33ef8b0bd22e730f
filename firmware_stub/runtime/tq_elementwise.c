/* Two-input elementwise int8 kernels with broadcasting (see tq_ops.h). */
#include "tq_ops.h"

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
