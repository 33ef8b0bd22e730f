/* Data movement: concatenation, pad, nearest-neighbour resize, copy (see tq_shape.h). */
#include "tq_shape.h"

void tq_concatenation(const tq_concat_params *p, const int8_t *const *inputs, int8_t *output)
{
    int32_t o, k;
    for (o = 0; o < p->outer; o++) {
        for (k = 0; k < p->count; k++) {
            memcpy(output, inputs[k] + o * p->chunk[k], (size_t)p->chunk[k]);
            output += p->chunk[k];
        }
    }
}

void tq_pad(const tq_pad_params *p, const int8_t *input, int8_t *output)
{
    int32_t i0, i1, i2;
    for (i0 = 0; i0 < p->out0; i0++) {
        const int32_t s0 = i0 - p->before0;
        for (i1 = 0; i1 < p->out1; i1++) {
            const int32_t s1 = i1 - p->before1;
            for (i2 = 0; i2 < p->out2; i2++) {
                const int32_t s2 = i2 - p->before2;
                int8_t *row = output + ((i0 * p->out1 + i1) * p->out2 + i2) * p->out3;
                memset(row, p->value, (size_t)p->out3);
                if (s0 >= 0 && s0 < p->in0 && s1 >= 0 && s1 < p->in1 && s2 >= 0 && s2 < p->in2) {
                    memcpy(row + p->before3, input + ((s0 * p->in1 + s1) * p->in2 + s2) * p->in3, (size_t)p->in3);
                }
            }
        }
    }
}

void tq_resize_nearest(const tq_resize_params *p, const int8_t *input, int8_t *output)
{
    int32_t y, x;
    for (y = 0; y < p->out_h; y++) {
        const int8_t *row = input + p->rows[y] * p->in_w * p->channels;
        for (x = 0; x < p->out_w; x++) {
            memcpy(output, row + p->cols[x] * p->channels, (size_t)p->channels);
            output += p->channels;
        }
    }
}

void tq_copy(int32_t size, const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < size; i++) {
        output[i] = input[i];
    }
}
