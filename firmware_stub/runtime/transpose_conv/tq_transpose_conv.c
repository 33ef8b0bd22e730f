/* TRANSPOSE_CONV (see tq_transpose_conv.h), computed per output value: the input pixels whose filter taps land on
   it. One path for every build. */
#include "tq_transpose_conv.h"

#include "tq_requant.h"

void tq_transpose_conv(const tq_conv_params *p, const int8_t *input, int8_t *output)
{
    int32_t oy, ox, oc, ky, kx, ic;
    for (oy = 0; oy < p->out_h; oy++) {
        for (ox = 0; ox < p->out_w; ox++) {
            for (oc = 0; oc < p->out_c; oc++) {
                int32_t acc = 0;
                for (ky = 0; ky < p->k_h; ky++) {
                    const int32_t ny = oy + p->pad_h - ky;
                    int32_t iy;
                    if (ny < 0 || ny % p->stride_h != 0 || (iy = ny / p->stride_h) >= p->in_h) {
                        continue;
                    }
                    for (kx = 0; kx < p->k_w; kx++) {
                        const int32_t nx = ox + p->pad_w - kx;
                        int32_t ix;
                        const int8_t *in;
                        const int8_t *w;
                        if (nx < 0 || nx % p->stride_w != 0 || (ix = nx / p->stride_w) >= p->in_w) {
                            continue;
                        }
                        in = input + (iy * p->in_w + ix) * p->in_c;
                        w = p->weights + ((oc * p->k_h + ky) * p->k_w + kx) * p->in_c;
                        for (ic = 0; ic < p->in_c; ic++) {
                            acc += ((int32_t)in[ic] + p->input_offset) * (int32_t)w[ic];
                        }
                    }
                }
                acc += p->bias[oc];
                acc = tq_multiply_by_quantized_multiplier(acc, p->mult[oc], p->shift[oc]) + p->output_offset;
                acc = acc < p->act_min ? p->act_min : (acc > p->act_max ? p->act_max : acc);
                output[(oy * p->out_w + ox) * p->out_c + oc] = (int8_t)acc;
            }
        }
    }
}
