/* Layout ops: one portable path for every core. Each output row's input offset is recomputed from its indices
   (every partial sum lies between the smallest and largest offset the generator proved in bounds, so no
   intermediate leaves the input); a row of unit stride is one memcpy, the only shortcut, and it copies the
   same bytes. */
#include "tq_layout.h"

#define TQ_COPY_DIMS 8

void tq_strided_copy(const tq_strided_copy_params *p, const int8_t *input, int8_t *output)
{
    const int32_t n[TQ_COPY_DIMS] = {p->n0, p->n1, p->n2, p->n3, p->n4, p->n5, p->n6, p->n7};
    const int32_t s[TQ_COPY_DIMS] = {p->s0, p->s1, p->s2, p->s3, p->s4, p->s5, p->s6, p->s7};
    int32_t idx[TQ_COPY_DIMS - 1] = {0, 0, 0, 0, 0, 0, 0};
    const int32_t row = n[TQ_COPY_DIMS - 1], step = s[TQ_COPY_DIMS - 1];
    int32_t rows = 1, r, k, j;
    for (k = 0; k < TQ_COPY_DIMS - 1; k++) {
        rows *= n[k];
    }
    for (r = 0; r < rows; r++) {
        int32_t offset = p->base;
        for (k = 0; k < TQ_COPY_DIMS - 1; k++) {
            offset += idx[k] * s[k];
        }
        if (step == 1) {
            memcpy(output, input + offset, (size_t)row);
        } else {
            for (j = 0; j < row; j++) {
                output[j] = input[offset + j * step];
            }
        }
        output += row;
        for (k = TQ_COPY_DIMS - 2; k >= 0; k--) {
            if (++idx[k] < n[k]) {
                break;
            }
            idx[k] = 0;
        }
    }
}

void tq_gather(const tq_gather_params *p, const int8_t *input, int8_t *output)
{
    int32_t b, o, c;
    for (b = 0; b < p->batches; b++) {
        for (o = 0; o < p->outer; o++) {
            const int8_t *block = input + (b * p->outer + o) * p->axis_size * p->inner;
            for (c = 0; c < p->coords; c++) {
                memcpy(output, block + p->indices[b * p->coords + c] * p->inner, (size_t)p->inner);
                output += p->inner;
            }
        }
    }
}
