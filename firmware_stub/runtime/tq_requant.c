/* The one out-of-line copy of the requantization (see tq_requant.h), shared by the generic kernels. */
#include "tq_requant.h"

int32_t tq_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift)
{
    return tq_requantize(x, multiplier, shift);
}
