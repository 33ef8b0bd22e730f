/* One-input elementwise int8 kernels: a 256-entry table that tinyq computed with TFLM's arithmetic. */
#include "tq_activation.h"

void tq_lut(const tq_lut_params *p, const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < p->size; i++) {
        output[i] = p->table[(int32_t)input[i] + 128];
    }
}
