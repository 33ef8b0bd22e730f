/* Test harness for tests/test_kernels_add.py: tq_add and its specialised twin over all 65,536 int8 input pairs
   (input 1 = k % 256 - 128, input 2 = k / 256 - 128). Reads from stdin the generic parameters (size ignored),
   then the specialised ones and both tables; writes the generic outputs, then the specialised ones. */
#include <stdio.h>

#include "tq_elementwise.h"

#define PAIRS 65536

static int8_t s_in1[PAIRS], s_in2[PAIRS], s_generic[PAIRS], s_fast[PAIRS];
static int32_t s_table1[256], s_table2[256];

static int read_ints(int32_t *out, int n)
{
    int k;
    for (k = 0; k < n; k++) {
        long v;
        if (scanf("%ld", &v) != 1) {
            return 0;
        }
        out[k] = (int32_t)v;
    }
    return 1;
}

int main(void)
{
    int32_t g[14], f[6];
    tq_add_params generic;
    tq_add_lut_params fast;
    int32_t k;
    if (!read_ints(g, 14) || !read_ints(f, 6) || !read_ints(s_table1, 256) || !read_ints(s_table2, 256)) {
        fprintf(stderr, "add_pairs: short input\n");
        return 2;
    }
    generic.size = PAIRS;
    generic.left_shift = g[1];
    generic.in1_offset = g[2];
    generic.in1_mult = g[3];
    generic.in1_shift = g[4];
    generic.in2_offset = g[5];
    generic.in2_mult = g[6];
    generic.in2_shift = g[7];
    generic.out_offset = g[8];
    generic.out_mult = g[9];
    generic.out_shift = g[10];
    generic.act_min = g[11];
    generic.act_max = g[12];
    fast.size = PAIRS - g[13];  /* g[13]: elements left out at the end, so the tail loop runs too */
    fast.mult = f[0];
    fast.acc = f[1];
    fast.shift = f[2];
    fast.act_min = f[3];
    fast.act_max = f[4];
    fast.table1 = s_table1;
    fast.table2 = s_table2;
    for (k = 0; k < PAIRS; k++) {
        s_in1[k] = (int8_t)((k & 255) - 128);
        s_in2[k] = (int8_t)((k >> 8) - 128);
    }
    tq_add(&generic, s_in1, s_in2, s_generic);
    if (f[5]) {
        tq_add_lut_clamp(&fast, s_in1, s_in2, s_fast);
    } else {
        tq_add_lut(&fast, s_in1, s_in2, s_fast);
    }
    if (g[13] > 0) {  /* the left-out end through the tail loop alone */
        fast.size = g[13];
        (f[5] ? tq_add_lut_clamp : tq_add_lut)(&fast, s_in1 + PAIRS - g[13], s_in2 + PAIRS - g[13],
                                               s_fast + PAIRS - g[13]);
    }
    fwrite(s_generic, 1, PAIRS, stdout);
    fwrite(s_fast, 1, PAIRS, stdout);
    return 0;
}
