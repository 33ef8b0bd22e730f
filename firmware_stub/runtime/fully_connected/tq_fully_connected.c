/* FULLY_CONNECTED kernels (see tq_fully_connected.h). The generic tq_fully_connected follows TFLM's reference
   loop by loop.

   tq_fc_stacked4: the input row is widened once into an int16 scratch ((x0, x2), (x1, x3) per 4 columns,
   zero-padded); each weight word carries two output rows stacked in its 16-bit lanes, so on the packed path one
   SMLAD of the raw word and one of its sign-extended low bytes give both rows' products of two columns (three
   instructions for four MACs), four rows per pass over the scratch. Cores without DSP read the lanes as int16 and
   take the low row's weight as the lane's low byte (two MACs per multiply for the high row's stacked sum, one for
   the low row's); on ARMv6-M that loop is Thumb-1 assembly, three pairs per pass. tq_fc_rows4 (further down) takes
   weights that do not stack exactly. Sums wrap modulo 2^32 (SMLAD does); every sum the kernels return is exact, so
   wrapping in between is harmless. Each path's functions sit side by side under its TQ_PATH_* (tq_path.h). */
#include "tq_fully_connected.h"

#include "tq_requant.h"
#include "tq_simd.h"

/* ---- Generic ---- */

void tq_fully_connected(const tq_fc_params *p, const int8_t *input, int8_t *output)
{
    int32_t r, o, i;
    for (r = 0; r < p->rows; r++, input += p->in_depth, output += p->out_depth) {
        for (o = 0; o < p->out_depth; o++) {
            const int8_t *w = p->weights + (int32_t)o * p->in_depth;
            int32_t acc = p->bias[o];
            for (i = 0; i < p->in_depth; i++) {
                acc += (int32_t)w[i] * (int32_t)input[i];
            }
            acc = tq_multiply_by_quantized_multiplier(acc, p->mult[o], p->shift[o]) + p->output_offset;
            output[o] = tq_clamp_s8(acc, p->act_min, p->act_max);
        }
    }
}

/* ---- Specialised: each path's building blocks, side by side (tq_path.h) ---- */

/* TQ_FC_QUAD(ra, ba, rb, bb, s, w): two pairs' raw and low-row sums over 4 columns (the scratch's two words at s,
   the pairs' four weight words at w), both pointers advanced; TQ_FC_PAIR(ra, ba, s, w): one pair's. */
#if TQ_DSP_ASM
/* Two pairs over 4 columns: the scratch's two words and the four weight words with LDRD (GCC loads them one by
   one), both pointers advanced; registers named by the compiler, the memory clobber keeps the scratch's stores
   before it. */
#define TQ_FC_QUAD(ra, ba, rb, bb, s, w)                                                                       \
    do {                                                                                                       \
        int32_t e_, o_, w0_, w1_, w2_, w3_;                                                                    \
        __asm__("ldrd %[e], %[o], [%[s]], #8\n\t"                                                              \
                "ldrd %[w2], %[w3], [%[w], #8]\n\t"                                                            \
                "ldrd %[w0], %[w1], [%[w]], #16\n\t"                                                           \
                "smlad %[ra], %[w0], %[e], %[ra]\n\t"                                                          \
                "sxtb16 %[w0], %[w0]\n\t"                                                                      \
                "smlad %[ba], %[w0], %[e], %[ba]\n\t"                                                          \
                "smlad %[ra], %[w1], %[o], %[ra]\n\t"                                                          \
                "sxtb16 %[w1], %[w1]\n\t"                                                                      \
                "smlad %[ba], %[w1], %[o], %[ba]\n\t"                                                          \
                "smlad %[rb], %[w2], %[e], %[rb]\n\t"                                                          \
                "sxtb16 %[w2], %[w2]\n\t"                                                                      \
                "smlad %[bb], %[w2], %[e], %[bb]\n\t"                                                          \
                "smlad %[rb], %[w3], %[o], %[rb]\n\t"                                                          \
                "sxtb16 %[w3], %[w3]\n\t"                                                                      \
                "smlad %[bb], %[w3], %[o], %[bb]"                                                              \
                : [ra] "+r"(ra), [ba] "+r"(ba), [rb] "+r"(rb), [bb] "+r"(bb), [s] "+r"(s), [w] "+r"(w),        \
                  [e] "=&r"(e_), [o] "=&r"(o_), [w0] "=&r"(w0_), [w1] "=&r"(w1_), [w2] "=&r"(w2_),             \
                  [w3] "=&r"(w3_)                                                                              \
                :                                                                                              \
                : "memory");                                                                                   \
    } while (0)

/* One pair over 4 columns, as TQ_FC_QUAD. */
#define TQ_FC_PAIR(ra, ba, s, w)                                                                               \
    do {                                                                                                       \
        int32_t e_, o_, w0_, w1_;                                                                              \
        __asm__("ldrd %[e], %[o], [%[s]], #8\n\t"                                                              \
                "ldrd %[w0], %[w1], [%[w]], #8\n\t"                                                            \
                "smlad %[ra], %[w0], %[e], %[ra]\n\t"                                                          \
                "sxtb16 %[w0], %[w0]\n\t"                                                                      \
                "smlad %[ba], %[w0], %[e], %[ba]\n\t"                                                          \
                "smlad %[ra], %[w1], %[o], %[ra]\n\t"                                                          \
                "sxtb16 %[w1], %[w1]\n\t"                                                                      \
                "smlad %[ba], %[w1], %[o], %[ba]"                                                              \
                : [ra] "+r"(ra), [ba] "+r"(ba), [s] "+r"(s), [w] "+r"(w), [e] "=&r"(e_), [o] "=&r"(o_),        \
                  [w0] "=&r"(w0_), [w1] "=&r"(w1_)                                                             \
                :                                                                                              \
                : "memory");                                                                                   \
    } while (0)
#elif TQ_PACKED
/* A pair's raw sum r and low-row sum b over one word w of stacked weights against the scratch word x. */
#define TQ_FC_LANES(r, b, w, x)         \
    do {                                \
        r = tq_smlad((w), (x), r);      \
        b = tq_smlad(tq_sxtb16(w), (x), b); \
    } while (0)
#define TQ_FC_QUAD(ra, ba, rb, bb, s, w)     \
    do {                                     \
        TQ_FC_LANES(ra, ba, (w)[0], (s)[0]); \
        TQ_FC_LANES(ra, ba, (w)[1], (s)[1]); \
        TQ_FC_LANES(rb, bb, (w)[2], (s)[0]); \
        TQ_FC_LANES(rb, bb, (w)[3], (s)[1]); \
        s += 2;                              \
        w += 4;                              \
    } while (0)
#define TQ_FC_PAIR(ra, ba, s, w)             \
    do {                                     \
        TQ_FC_LANES(ra, ba, (w)[0], (s)[0]); \
        TQ_FC_LANES(ra, ba, (w)[1], (s)[1]); \
        s += 2;                              \
        w += 2;                              \
    } while (0)
#else
/* One column of two pairs: lanes la, lb of stacked weights (rows 2i + 1, 2i in 256 * a + b) times the input x; the
   low row's weight is the lane's low byte. One multiply-accumulate per lane and row: MLA on ARMv7-M, MULS and
   ADDS on ARMv6-M, the operands loaded as int16 (LDRSH) and sign-extended once (SXTB). */
#define TQ_FC_COL(ra, ba, la, x)                                                   \
    do {                                                                          \
        const int32_t l_ = (la), c_ = (x);                                        \
        ra = (int32_t)((uint32_t)ra + (uint32_t)(l_ * c_));                       \
        ba = (int32_t)((uint32_t)ba + (uint32_t)((int32_t)(int8_t)(uint8_t)((uint32_t)l_ & 0xFFu) * c_)); \
    } while (0)
#define TQ_FC_COL2(ra, ba, rb, bb, v, x, j)    \
    do {                                        \
        const int32_t xj_ = (x)[j];             \
        TQ_FC_COL(ra, ba, (v)[j], xj_);         \
        TQ_FC_COL(rb, bb, (v)[4 + (j)], xj_);   \
        TQ_CHAIN4(ra, ba, rb, bb);              \
    } while (0)
#define TQ_FC_QUAD(ra, ba, rb, bb, s, w)                        \
    do {                                                        \
        const int16_t *x_ = (const int16_t *)(const void *)(s); \
        const int16_t *v_ = (const int16_t *)(const void *)(w); \
        TQ_FC_COL2(ra, ba, rb, bb, v_, x_, 0);                  \
        TQ_FC_COL2(ra, ba, rb, bb, v_, x_, 1);                  \
        TQ_FC_COL2(ra, ba, rb, bb, v_, x_, 2);                  \
        TQ_FC_COL2(ra, ba, rb, bb, v_, x_, 3);                  \
        s += 2;                                                 \
        w += 4;                                                 \
    } while (0)
#define TQ_FC_PAIR(ra, ba, s, w)                                \
    do {                                                        \
        const int16_t *x_ = (const int16_t *)(const void *)(s); \
        const int16_t *v_ = (const int16_t *)(const void *)(w); \
        TQ_FC_COL(ra, ba, v_[0], x_[0]);                        \
        TQ_FC_COL(ra, ba, v_[1], x_[1]);                        \
        TQ_FC_COL(ra, ba, v_[2], x_[2]);                        \
        TQ_FC_COL(ra, ba, v_[3], x_[3]);                        \
        s += 2;                                                 \
        w += 2;                                                 \
    } while (0)
#endif

#if TQ_PATH_ARMV6M
/* ARMv6-M (Cortex-M0/M0+): GCC spills the portable loop's sums and pointers (8 low registers, MULS only), so the
   passes over the depth are written out in assembly. Each takes one context in memory (sums, index, bases), keeps
   the four sums in r8-r11 (ADD reaches high registers) and saves and restores r4-r11 itself, so that it asks the
   compiler for one register at any optimization level (a frame pointer takes r7 at -O0). GCC reads Thumb-1
   inline assembly in divided syntax (MUL and ADD of low registers set the flags). */
#define TQ_FC_V6M_ENTER                                                                                        \
    "mov ip, %[c]\n\t"                                                                                         \
    "push {r4, r5, r6, r7}\n\t"                                                                                \
    "mov r4, r8\n\t"                                                                                           \
    "mov r5, r9\n\t"                                                                                           \
    "mov r6, r10\n\t"                                                                                          \
    "mov r7, r11\n\t"                                                                                          \
    "push {r4, r5, r6, r7}\n\t"                                                                                \
    "mov r7, ip\n\t"                                                                                           \
    "ldmia r7!, {r0, r1, r2, r3}\n\t"                                                                          \
    "mov r8, r0\n\t"                                                                                           \
    "mov r9, r1\n\t"                                                                                           \
    "mov r10, r2\n\t"                                                                                          \
    "mov r11, r3\n\t"
#define TQ_FC_V6M_LEAVE                                                                                        \
    "mov r7, ip\n\t"                                                                                           \
    "mov r0, r8\n\t"                                                                                           \
    "mov r1, r9\n\t"                                                                                           \
    "mov r2, r10\n\t"                                                                                          \
    "mov r3, r11\n\t"                                                                                          \
    "stmia r7!, {r0, r1, r2, r3}\n\t"                                                                          \
    "pop {r4, r5, r6, r7}\n\t"                                                                                 \
    "mov r8, r4\n\t"                                                                                           \
    "mov r9, r5\n\t"                                                                                           \
    "mov r10, r6\n\t"                                                                                          \
    "mov r11, r7\n\t"                                                                                          \
    "pop {r4, r5, r6, r7}"

/* One column of two pairs, tq_fc_stacked4's products: input x (r0) by LDRSH at index k (r2) of the scratch (r3),
   each pair's lane l (r1) from its base (r4, r5) at the same index, its low byte b (r6) by SXTB, two MULs and two
   ADDs into the pair's sums (r8, r9 and r10, r11). */
#define TQ_FC_V6M_COL                                                                                          \
    "ldrsh r0, [r3, r2]\n\t"                                                                                   \
    "ldrsh r1, [r4, r2]\n\t"                                                                                   \
    "sxtb r6, r1\n\t"                                                                                          \
    "mul r1, r0\n\t"                                                                                           \
    "mul r6, r0\n\t"                                                                                           \
    "add r8, r1\n\t"                                                                                           \
    "add r9, r6\n\t"                                                                                           \
    "ldrsh r1, [r5, r2]\n\t"                                                                                   \
    "sxtb r6, r1\n\t"                                                                                          \
    "mul r1, r0\n\t"                                                                                           \
    "mul r6, r0\n\t"                                                                                           \
    "add r10, r1\n\t"                                                                                          \
    "add r11, r6\n\t"

/* One column of three pairs: TQ_FC_V6M_COL with b in r7 and a third pair (base r6, sums in ip and lr). */
#define TQ_FC_V6M_COL3                                                                                         \
    "ldrsh r0, [r3, r2]\n\t"                                                                                   \
    "ldrsh r1, [r4, r2]\n\t"                                                                                   \
    "sxtb r7, r1\n\t"                                                                                          \
    "mul r1, r0\n\t"                                                                                           \
    "mul r7, r0\n\t"                                                                                           \
    "add r8, r1\n\t"                                                                                           \
    "add r9, r7\n\t"                                                                                           \
    "ldrsh r1, [r5, r2]\n\t"                                                                                   \
    "sxtb r7, r1\n\t"                                                                                          \
    "mul r1, r0\n\t"                                                                                           \
    "mul r7, r0\n\t"                                                                                           \
    "add r10, r1\n\t"                                                                                          \
    "add r11, r7\n\t"                                                                                          \
    "ldrsh r1, [r6, r2]\n\t"                                                                                   \
    "sxtb r7, r1\n\t"                                                                                          \
    "mul r1, r0\n\t"                                                                                           \
    "mul r7, r0\n\t"                                                                                           \
    "add ip, r1\n\t"                                                                                           \
    "add lr, r7\n\t"

/* Two stacked pairs of a group over the depth (a multiple of 8): c holds their sums (raw, low per pair), the
   index (minus twice the depth: it counts the scratch's bytes up to zero), the scratch's end and each pair's
   base (its first lane plus twice the depth; it advances 8 bytes per 4 columns, the words of two pairs being
   interleaved per 4 columns). */
static void tq_fc_pairs2_v6m(int32_t c[8])
{
    __asm__ volatile(TQ_FC_V6M_ENTER
                     "ldmia r7!, {r2, r3, r4, r5}\n"
                     "1:\n\t"
                     TQ_FC_V6M_COL
                     "add r2, #2\n\t"
                     TQ_FC_V6M_COL
                     "add r2, #2\n\t"
                     TQ_FC_V6M_COL
                     "add r2, #2\n\t"
                     TQ_FC_V6M_COL
                     "add r4, #8\n\t"
                     "add r5, #8\n\t"
                     "add r2, #2\n\t"
                     "bne 1b\n\t"
                     TQ_FC_V6M_LEAVE
                     :
                     : [c] "l"(c)
                     : "r0", "r1", "r2", "r3", "ip", "cc", "memory");
}

/* Three stacked pairs of any groups, as tq_fc_pairs2_v6m: c holds three pairs' sums, the index, the scratch's end
   and three bases. The third pair's sums live in ip and lr, the context pointer and lr on the stack meanwhile. */
static void tq_fc_pairs3_v6m(int32_t c[11])
{
    __asm__ volatile("mov ip, %[c]\n\t"
                     "push {r4, r5, r6, r7}\n\t"
                     "mov r4, r8\n\t"
                     "mov r5, r9\n\t"
                     "mov r6, r10\n\t"
                     "mov r7, r11\n\t"
                     "push {r4, r5, r6, r7}\n\t"
                     "mov r4, lr\n\t"
                     "mov r5, ip\n\t"
                     "push {r4, r5}\n\t"
                     "mov r7, ip\n\t"
                     "ldmia r7!, {r0, r1, r2, r3}\n\t"
                     "mov r8, r0\n\t"
                     "mov r9, r1\n\t"
                     "mov r10, r2\n\t"
                     "mov r11, r3\n\t"
                     "ldmia r7!, {r0, r1}\n\t"
                     "mov ip, r0\n\t"
                     "mov lr, r1\n\t"
                     "ldmia r7!, {r2, r3, r4, r5, r6}\n"
                     "1:\n\t"
                     TQ_FC_V6M_COL3
                     "add r2, #2\n\t"
                     TQ_FC_V6M_COL3
                     "add r2, #2\n\t"
                     TQ_FC_V6M_COL3
                     "add r2, #2\n\t"
                     TQ_FC_V6M_COL3
                     "add r4, #8\n\t"
                     "add r5, #8\n\t"
                     "add r6, #8\n\t"
                     "add r2, #2\n\t"
                     "bne 1b\n\t"
                     "pop {r6, r7}\n\t"
                     "mov r4, ip\n\t"
                     "mov r5, lr\n\t"
                     "mov lr, r6\n\t"
                     "mov r0, r8\n\t"
                     "mov r1, r9\n\t"
                     "mov r2, r10\n\t"
                     "mov r3, r11\n\t"
                     "stmia r7!, {r0, r1, r2, r3, r4, r5}\n\t"
                     "pop {r4, r5, r6, r7}\n\t"
                     "mov r8, r4\n\t"
                     "mov r9, r5\n\t"
                     "mov r10, r6\n\t"
                     "mov r11, r7\n\t"
                     "pop {r4, r5, r6, r7}"
                     :
                     : [c] "l"(c)
                     : "r0", "r1", "r2", "r3", "ip", "cc", "memory");
}

/* tq_requantize_fused for ARMv6-M: it has no long multiply, and GCC calls its 64 x 64-bit routine for the product
   (about 50 instructions with the call). Here x * m (m >= 0, which fused_constant demands, so m = mh * 2^16 + ml
   with 0 <= mh < 2^15) is summed from four 16 x 16-bit products that each fit 32 bits: xl * ml unsigned, xl * mh
   in [0, 2^31), xh * ml signed, xh * mh; the middle two added at bit 16 with carries, the first unsigned, the
   second sign-extended. */
#define TQ_V6M_PRODUCT                                                                                         \
    "uxth %[xl], %[xh]\n\t"                                                                                    \
    "asr %[xh], %[xh], #16\n\t"                                                                                \
    "uxth %[ml], %[mh]\n\t"                                                                                    \
    "lsr %[mh], %[mh], #16\n\t"                                                                                \
    "mov %[lo], %[xl]\n\t"                                                                                     \
    "mul %[lo], %[ml]\n\t"                                                                                     \
    "mov %[hi], %[xh]\n\t"                                                                                     \
    "mul %[hi], %[mh]\n\t"                                                                                     \
    "mul %[xl], %[mh]\n\t"                                                                                     \
    "mul %[xh], %[ml]\n\t"                                                                                     \
    "lsl %[ml], %[xl], #16\n\t"                                                                                \
    "lsr %[xl], %[xl], #16\n\t"                                                                                \
    "add %[lo], %[lo], %[ml]\n\t"                                                                              \
    "adc %[hi], %[xl]\n\t"                                                                                     \
    "lsl %[ml], %[xh], #16\n\t"                                                                                \
    "asr %[xh], %[xh], #16\n\t"                                                                                \
    "add %[lo], %[lo], %[ml]\n\t"                                                                              \
    "adc %[hi], %[xh]"

#if TQ_SINGLE_ROUNDING
/* Single rounding (tq_requant.h): c + x * m without the sign correction. */
static inline int32_t requant_fused_v6m(int32_t x, int32_t m, uint32_t c_lo, uint32_t c_hi, int32_t shift_high)
{
    uint32_t xl, ml, lo, hi, t_lo, t_hi;
    int32_t xh = x, mh = m;
    __asm__(TQ_V6M_PRODUCT
            : [xh] "+l"(xh), [mh] "+l"(mh), [xl] "=&l"(xl), [ml] "=&l"(ml), [lo] "=&l"(lo), [hi] "=&l"(hi)
            :
            : "cc");
    t_lo = c_lo + lo;
    t_hi = c_hi + hi + (t_lo < lo ? 1u : 0u);
    return (int32_t)t_hi >> shift_high;
}
#else
static inline int32_t requant_fused_v6m(int32_t x, int32_t m, uint32_t c_lo, uint32_t c_hi, int32_t shift_high)
{
    uint32_t xl, ml, lo, hi, t_lo, t_hi;
    int32_t xh = x, mh = m;
    __asm__(TQ_V6M_PRODUCT
            : [xh] "+l"(xh), [mh] "+l"(mh), [xl] "=&l"(xl), [ml] "=&l"(ml), [lo] "=&l"(lo), [hi] "=&l"(hi)
            :
            : "cc");
    t_lo = c_lo + lo;
    t_hi = c_hi + hi + (t_lo < lo ? 1u : 0u);
    return (int32_t)(t_hi - (((uint32_t)x & ~t_lo) >> 31)) >> shift_high;
}
#endif

/* One column of four rows on ARMv6-M: the input x (r0) by LDRSB at index r2 from r3, each row's weight (r1) by
   LDRSB at the same index from the rows' bases r4, r6, r7, r5, MUL and an ADD into the row's sum (r8..r11). */
#define TQ_FC_V6M_ROWS_COL                                                                                     \
    "ldrsb r0, [r3, r2]\n\t"                                                                                   \
    "ldrsb r1, [r4, r2]\n\t"                                                                                   \
    "mul r1, r0\n\t"                                                                                           \
    "add r8, r1\n\t"                                                                                           \
    "ldrsb r1, [r6, r2]\n\t"                                                                                   \
    "mul r1, r0\n\t"                                                                                           \
    "add r9, r1\n\t"                                                                                           \
    "ldrsb r1, [r7, r2]\n\t"                                                                                   \
    "mul r1, r0\n\t"                                                                                           \
    "add r10, r1\n\t"                                                                                          \
    "ldrsb r1, [r5, r2]\n\t"                                                                                   \
    "mul r1, r0\n\t"                                                                                           \
    "add r11, r1\n\t"

/* Four rows over columns [from, n) on ARMv6-M (n - from a positive multiple of 4), sums in acc; the index counts
   up to zero. */
static void rows4_cols_v6m(int32_t acc[4], const int8_t *x, const int8_t *w, int32_t depth, int32_t from, int32_t n)
{
    int32_t c[8];
    c[0] = acc[0];
    c[1] = acc[1];
    c[2] = acc[2];
    c[3] = acc[3];
    c[4] = from - n;
    c[5] = (int32_t)(intptr_t)(x + n);
    c[6] = (int32_t)(intptr_t)(w + n);
    c[7] = depth;
    __asm__ volatile(TQ_FC_V6M_ENTER
                     "ldmia r7!, {r2, r3, r4, r5}\n\t"
                     "add r6, r4, r5\n\t"
                     "add r7, r6, r5\n\t"
                     "add r5, r7, r5\n"
                     "1:\n\t"
                     TQ_FC_V6M_ROWS_COL
                     "add r2, #1\n\t"
                     TQ_FC_V6M_ROWS_COL
                     "add r2, #1\n\t"
                     TQ_FC_V6M_ROWS_COL
                     "add r2, #1\n\t"
                     TQ_FC_V6M_ROWS_COL
                     "add r2, #1\n\t"
                     "bne 1b\n\t"
                     TQ_FC_V6M_LEAVE
                     :
                     : [c] "l"(c)
                     : "r0", "r1", "r2", "r3", "ip", "cc", "memory");
    acc[0] = c[0];
    acc[1] = c[1];
    acc[2] = c[2];
    acc[3] = c[3];
}

/* Row sum x requantized with its row q of the fused form (tq_requantize_fused; see tq_fully_connected.h). */
static inline int32_t fused(int32_t x, const int32_t *q)
{
    return requant_fused_v6m(x, q[2], (uint32_t)q[0], (uint32_t)q[1], q[3]);
}
#else
static inline int32_t fused(int32_t x, const int32_t *q)
{
    return tq_requantize_fused(x, q[2], TQ_FUSED_CONSTANT(q), q[3]);
}
#endif

/* tq_fc_rows4: the weights as they are (row-major, zero-padded). On the packed path the input row is widened into
   the scratch as for tq_fc_stacked4, so SXTB16 of a weight word gives the weights of columns (k, k + 2) and with
   its rotation those of (k + 1, k + 3): two SMLADs per word, four rows per pass over the scratch. Elsewhere each
   weight and input byte is read as it is. */

/* Row sum a plus the products of one weight word w (4 columns) and the scratch words e, d of the same columns. */
#define TQ_FC_WORD(a, w, e, d)                         \
    do {                                               \
        const int32_t w_ = (w);                        \
        a = tq_smlad(tq_sxtb16(w_), (e), a);           \
        a = tq_smlad(tq_sxtb16_ror8(w_), (d), a);      \
    } while (0)

/* Four rows (`depth` bytes apart) over the input's columns [0, n), one byte at a time. */
TQ_INLINE void rows4_cols(int32_t acc[4], const int8_t *x, const int8_t *w, int32_t depth, int32_t n)
{
    int32_t k;
    for (k = 0; k < n; k++) {
        const int32_t v = x[k];
        acc[0] = (int32_t)((uint32_t)acc[0] + (uint32_t)(w[k] * v));
        acc[1] = (int32_t)((uint32_t)acc[1] + (uint32_t)(w[k + depth] * v));
        acc[2] = (int32_t)((uint32_t)acc[2] + (uint32_t)(w[k + 2 * depth] * v));
        acc[3] = (int32_t)((uint32_t)acc[3] + (uint32_t)(w[k + 3 * depth] * v));
    }
}

/* rows4_dot: the sums of four rows, over the scratch s (packed path: their words `words` apart) or over the
   input's n columns (elsewhere: the rows `depth` bytes apart). */
#if TQ_DSP_ASM
/* One weight word (4 columns of a row) loaded into t0 by `load`: both its SMLADs against the scratch words e, d
   into the row's sum r. */
#define TQ_FC_ROWS_WORD(r, load)                 \
    load "\n\t"                                  \
    "sxtb16 %[t1], %[t0]\n\t"                    \
    "smlad " r ", %[t1], %[e], " r "\n\t"         \
    "sxtb16 %[t0], %[t0], ror #8\n\t"            \
    "smlad " r ", %[t0], %[d], " r "\n\t"

/* Four rows over 4 columns: the scratch's two words, then rows 1 and 0 through pointer a (row 1 `depth` bytes on,
   row 0 read with post-increment), rows 3 and 2 through b; registers named by the compiler, the memory clobber
   keeps the scratch's stores before it. */
#define TQ_FC_ROWS4_STEP(a0, a1, a2, a3, s, a, b, st)                                                         \
    do {                                                                                                       \
        int32_t e_, d_, t0_, t1_;                                                                              \
        __asm__("ldrd %[e], %[d], [%[s]], #8\n\t"                                                              \
                TQ_FC_ROWS_WORD("%[a1]", "ldr %[t0], [%[a], %[st]]")                                           \
                TQ_FC_ROWS_WORD("%[a0]", "ldr %[t0], [%[a]], #4")                                              \
                TQ_FC_ROWS_WORD("%[a3]", "ldr %[t0], [%[b], %[st]]")                                           \
                TQ_FC_ROWS_WORD("%[a2]", "ldr %[t0], [%[b]], #4")                                              \
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [s] "+r"(s), [a] "+r"(a),        \
                  [b] "+r"(b), [e] "=&r"(e_), [d] "=&r"(d_), [t0] "=&r"(t0_), [t1] "=&r"(t1_)                  \
                : [st] "r"(st)                                                                                 \
                : "memory");                                                                                   \
    } while (0)

/* Sums of four rows (their words `words` apart, `words` even) over the scratch s. */
static void rows4_dot(int32_t acc[4], const int32_t *s, const int32_t *w, int32_t words)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], k;
    const int32_t *a = w, *b = w + 2 * words;
    const int32_t st = 4 * words;
    for (k = words >> 1; k > 0; k--) {
        TQ_FC_ROWS4_STEP(a0, a1, a2, a3, s, a, b, st);
        TQ_FC_ROWS4_STEP(a0, a1, a2, a3, s, a, b, st);
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
#elif TQ_PACKED
/* Sums of four rows (their words `words` apart) over the scratch s. */
static void rows4_dot(int32_t acc[4], const int32_t *s, const int32_t *w, int32_t words)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], k;
    for (k = 0; k < words; k++, s += 2) {
        const int32_t e = s[0], d = s[1];
        TQ_FC_WORD(a0, w[k], e, d);
        TQ_FC_WORD(a1, w[k + words], e, d);
        TQ_FC_WORD(a2, w[k + 2 * words], e, d);
        TQ_FC_WORD(a3, w[k + 3 * words], e, d);
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
#elif TQ_PATH_ARMV6M
static void rows4_dot(int32_t acc[4], const int8_t *x, const int8_t *w, int32_t depth, int32_t n)
{
    const int32_t head = n & 3; /* columns before whole blocks of 4, in C below */
    if (n > head) {
        rows4_cols_v6m(acc, x, w, depth, head, n);
    }
    rows4_cols(acc, x, w, depth, head);
}
#else
static void rows4_dot(int32_t acc[4], const int8_t *x, const int8_t *w, int32_t depth, int32_t n)
{
    rows4_cols(acc, x, w, depth, n);
}
#endif

/* widen: one input row into the scratch, the layout both kernels read on the packed path (elsewhere only
   tq_fc_stacked4 reads it). What tq_fc_rows4 does per path: rows_begin before a row (the packed path widens it
   into the scratch), rows_four the sums of four rows, rows_one of one (its weights `words` words, in_depth bytes
   of them used). */
#if TQ_PACKED
/* One input row as int16 pairs (x[k], x[k + 2]), (x[k + 1], x[k + 3]) per 4 columns, zero-padded to depth. */
static void widen(const int8_t *x, int32_t in_depth, int32_t depth, void *scratch)
{
    int32_t *s = (int32_t *)scratch;
    int32_t k;
    for (k = in_depth >> 2; k > 0; k--, x += 4, s += 2) {
        const int32_t v = tq_read_s8x4(x);
        s[0] = tq_sxtb16(v);
        s[1] = tq_sxtb16_ror8(v);
    }
    if (in_depth & 3) {
        uint32_t v = 0;
        for (k = (in_depth & 3) - 1; k >= 0; k--) {
            v = (v << 8) | (uint8_t)x[k];
        }
        s[0] = tq_sxtb16((int32_t)v);
        s[1] = tq_sxtb16_ror8((int32_t)v);
        s += 2;
    }
    if (depth > ((in_depth + 3) & ~3)) { /* one block of padding at most: two stores, not a memset call */
        s[0] = 0;
        s[1] = 0;
    }
}

static int32_t row_dot(int32_t a, const int32_t *s, const int32_t *w, int32_t words)
{
    int32_t k;
    for (k = 0; k < words; k++, s += 2) {
        TQ_FC_WORD(a, w[k], s[0], s[1]);
    }
    return a;
}

TQ_INLINE void rows_begin(const int8_t *input, int32_t in_depth, int32_t depth, void *scratch)
{
    widen(input, in_depth, depth, scratch);
}

TQ_INLINE void rows_four(int32_t acc[4], const int8_t *input, const void *scratch, const int32_t *w, int32_t words,
                         int32_t depth, int32_t in_depth)
{
    (void)input, (void)depth, (void)in_depth;
    rows4_dot(acc, (const int32_t *)scratch, w, words);
}

TQ_INLINE int32_t rows_one(int32_t a, const int8_t *input, const void *scratch, const int32_t *w, int32_t words,
                           int32_t in_depth)
{
    (void)input, (void)in_depth;
    return row_dot(a, (const int32_t *)scratch, w, words);
}
#else
/* The same scratch bytes as int16 stores (x[k], x[k + 2], x[k + 1], x[k + 3]): byte reads, no word reads, which
   cores without unaligned access would split. */
static void widen(const int8_t *x, int32_t in_depth, int32_t depth, void *scratch)
{
    int16_t *s = (int16_t *)scratch;
    int32_t k, j;
    for (k = in_depth >> 2; k > 0; k--, x += 4, s += 4) {
        s[0] = x[0];
        s[1] = x[2];
        s[2] = x[1];
        s[3] = x[3];
    }
    for (k = in_depth & ~3; k < depth; k += 4, s += 4) {
        for (j = 0; j < 4; j++) {
            s[(j & 1) * 2 + (j >> 1)] = (int16_t)(k + j < in_depth ? x[j] : 0);
        }
        x += 4;
    }
}

static int32_t row_dot(int32_t a, const int8_t *x, const int8_t *w, int32_t n)
{
    int32_t k;
    for (k = 0; k < n; k++) {
        a = (int32_t)((uint32_t)a + (uint32_t)(w[k] * x[k]));
    }
    return a;
}

TQ_INLINE void rows_begin(const int8_t *input, int32_t in_depth, int32_t depth, void *scratch)
{
    (void)input, (void)in_depth, (void)depth, (void)scratch;
}

TQ_INLINE void rows_four(int32_t acc[4], const int8_t *input, const void *scratch, const int32_t *w, int32_t words,
                         int32_t depth, int32_t in_depth)
{
    (void)scratch, (void)words;
    rows4_dot(acc, input, (const int8_t *)(const void *)w, depth, in_depth);
}

TQ_INLINE int32_t rows_one(int32_t a, const int8_t *input, const void *scratch, const int32_t *w, int32_t words,
                           int32_t in_depth)
{
    (void)scratch, (void)words;
    return row_dot(a, input, (const int8_t *)(const void *)w, in_depth);
}
#endif

/* ---- Specialised: tq_fc_stacked4 ---- */

/* The high row's sum: (raw - low) / 256 plus its bias. */
static inline int32_t high_row(int32_t r, int32_t b, int32_t bias)
{
    return ((int32_t)((uint32_t)r - (uint32_t)b) >> 8) + bias;
}

/* Row o's sum requantized, zero point added, clamped to the activation range. */
static inline int8_t requant(const tq_fc_st4_params *p, int32_t acc, int32_t o)
{
    int32_t v = fused(acc, p->requant + 4 * o);
    v = v < p->act_min ? p->act_min : v;
    v = v > p->act_max ? p->act_max : v;
    return (int8_t)v;
}

/* An odd last pair (rows o and o + 1, the latter only where out_depth has it) over the scratch s, its stacked
   words from w on. */
static void last_pair(const tq_fc_st4_params *p, const int32_t *s, const int32_t *w, int32_t o, int8_t *output)
{
    int32_t ra = p->bias[o], ba = ra, k;
    for (k = p->depth >> 3; k > 0; k--) {
        TQ_FC_PAIR(ra, ba, s, w);
        TQ_FC_PAIR(ra, ba, s, w);
    }
    output[o] = requant(p, ba, o);
    if (o + 1 < p->out_depth) {
        output[o + 1] = requant(p, high_row(ra, ba, p->bias[o + 1]), o + 1);
    }
}

/* Rows o .. o + 3 (the last only where out_depth has it) from two pairs' raw and low-row sums. */
static inline void quad_out(const tq_fc_st4_params *p, int32_t o, int32_t ra, int32_t ba, int32_t rb, int32_t bb,
                            int32_t out_depth, int8_t *output)
{
    output[o] = requant(p, ba, o);
    output[o + 1] = requant(p, high_row(ra, ba, p->bias[o + 1]), o + 1);
    output[o + 2] = requant(p, bb, o + 2);
    if (o + 3 < out_depth) {
        output[o + 3] = requant(p, high_row(rb, bb, p->bias[o + 3]), o + 3);
    }
}

#if TQ_PATH_ARMV6M
/* tq_fc_stacked4's pass over one widened input row on ARMv6-M: the grouped pairs three at a time (two at a time
   for the last two or four), the odd last pair in C. */
static void stacked_row(const tq_fc_st4_params *p, const int32_t *s, int8_t *output)
{
    const int32_t depth = p->depth, out_depth = p->out_depth, pairs = (out_depth + 1) >> 1, grouped = pairs & ~1;
    const char *const w = (const char *)p->weights;
    int32_t c[11], q, n, i;
    for (q = 0; q < grouped; q += n) {
        n = grouped - q >= 3 && grouped - q != 4 ? 3 : 2;
        for (i = 0; i < n; i++) {
            const int32_t pair = q + i;
            c[2 * i] = p->bias[2 * pair];
            c[2 * i + 1] = c[2 * i];
            c[2 * n + 2 + i] = (int32_t)(intptr_t)(w + (pair >> 1) * 4 * depth + 8 * (pair & 1) + 2 * depth);
        }
        c[2 * n] = -2 * depth;
        c[2 * n + 1] = (int32_t)(intptr_t)((const char *)s + 2 * depth);
        if (n == 3) {
            tq_fc_pairs3_v6m(c);
        } else {
            tq_fc_pairs2_v6m(c);
        }
        for (i = 0; i < n; i++) {
            const int32_t o = 2 * (q + i);
            output[o] = requant(p, c[2 * i + 1], o);
            if (o + 1 < out_depth) {
                output[o + 1] = requant(p, high_row(c[2 * i], c[2 * i + 1], p->bias[o + 1]), o + 1);
            }
        }
    }
    if (pairs & 1) {
        last_pair(p, s, (const int32_t *)(const void *)(w + grouped * 2 * depth), 2 * grouped, output);
    }
}
#elif TQ_PATH_HOST_SIMD
#if TQ_HOST_AVX2
/* The host's first blocks two per 256-bit step (see host_quads) into raw and low; returns the blocks left (0 or
   1), s and w advanced past the ones taken. */
TQ_INLINE int32_t host_quads_avx2(const int32_t **s, const int32_t **w, int32_t quads, __m128i *raw, __m128i *low)
{
    __m256i raw2 = _mm256_setzero_si256(), low2 = _mm256_setzero_si256();
    for (; quads > 1; quads -= 2, *s += 4, *w += 8) {
        const __m256i x2 = _mm256_permute4x64_epi64(_mm256_castsi128_si256(tq_host_load128(*s)), 0x50);
        const __m256i v2 = _mm256_loadu_si256((const __m256i *)(const void *)*w);
        raw2 = _mm256_add_epi32(raw2, _mm256_madd_epi16(v2, x2));
        low2 = _mm256_add_epi32(low2, _mm256_madd_epi16(_mm256_srai_epi16(_mm256_slli_epi16(v2, 8), 8), x2));
    }
    *raw = _mm_add_epi32(_mm256_castsi256_si128(raw2), _mm256_extracti128_si256(raw2, 1));
    *low = _mm_add_epi32(_mm256_castsi256_si128(low2), _mm256_extracti128_si256(low2, 1));
    return quads;
}
#else
TQ_INLINE int32_t host_quads_avx2(const int32_t **s, const int32_t **w, int32_t quads, __m128i *raw, __m128i *low)
{
    (void)s, (void)w, (void)raw, (void)low;
    return quads;
}
#endif

/* The host's own sums of two pairs over `quads` blocks of 4 columns (w's stream, 4 words a block): PMADDWD of the
   stacked words and of their sign-extended low bytes with the block's scratch words, lanes 0-1 pair 0 and lanes
   2-3 pair 1; two blocks per 256-bit step where the host has AVX2. acc = {ra, ba, rb, bb}, added to. */
static void host_quads(const int32_t *s, const int32_t *w, int32_t quads, int32_t acc[4])
{
    __m128i raw = _mm_setzero_si128(), low = _mm_setzero_si128(), x, v;
    quads = host_quads_avx2(&s, &w, quads, &raw, &low);
    for (; quads > 0; quads--, s += 2, w += 4) {
        x = tq_host_load64(s);
        x = _mm_unpacklo_epi64(x, x);
        v = tq_host_load128(w);
        raw = _mm_add_epi32(raw, _mm_madd_epi16(v, x));
        low = _mm_add_epi32(low, _mm_madd_epi16(_mm_srai_epi16(_mm_slli_epi16(v, 8), 8), x));
    }
    acc[0] = tq_host_sum01(acc[0], raw);
    acc[1] = tq_host_sum01(acc[1], low);
    acc[2] = tq_host_sum23(acc[2], raw);
    acc[3] = tq_host_sum23(acc[3], low);
}

static void stacked_row(const tq_fc_st4_params *p, const int32_t *s0, int8_t *output)
{
    const int32_t depth = p->depth, out_depth = p->out_depth, even = out_depth + (out_depth & 1);
    const int32_t *w = p->weights;
    int32_t o;
    for (o = 0; o + 4 <= even; o += 4) {
        int32_t acc[4];
        acc[0] = acc[1] = p->bias[o];
        acc[2] = acc[3] = p->bias[o + 2];
        host_quads(s0, w, depth >> 2, acc);
        w += depth;
        quad_out(p, o, acc[0], acc[1], acc[2], acc[3], out_depth, output);
    }
    if (o < out_depth) {
        last_pair(p, s0, w, o, output);
    }
}
#else
/* Two pairs (four rows) per pass over the scratch. */
static void stacked_row(const tq_fc_st4_params *p, const int32_t *s0, int8_t *output)
{
    const int32_t depth = p->depth, out_depth = p->out_depth, even = out_depth + (out_depth & 1);
    const int32_t *w = p->weights;
    int32_t o;
    for (o = 0; o + 4 <= even; o += 4) {
        const int32_t *s = s0;
        int32_t ra = p->bias[o], ba = ra, rb = p->bias[o + 2], bb = rb, k;
        for (k = depth >> 3; k > 0; k--) {
            TQ_FC_QUAD(ra, ba, rb, bb, s, w);
            TQ_FC_QUAD(ra, ba, rb, bb, s, w);
        }
        quad_out(p, o, ra, ba, rb, bb, out_depth, output);
    }
    if (o < out_depth) {
        last_pair(p, s0, w, o, output);
    }
}
#endif

void tq_fc_stacked4(const tq_fc_st4_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    int32_t r;
    for (r = 0; r < p->rows; r++, input += p->in_depth, output += p->out_depth) {
        widen(input, p->in_depth, p->depth, scratch);
        stacked_row(p, (const int32_t *)scratch, output);
    }
}

/* ---- Specialised: tq_fc_rows4 ---- */

void tq_fc_rows4(const tq_fc_rows_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    const int32_t depth = p->depth, words = depth >> 2, out_depth = p->out_depth;
    int32_t r, o;
    for (r = 0; r < p->rows; r++, input += p->in_depth, output += out_depth) {
        const int32_t *w = p->weights;
        rows_begin(input, p->in_depth, depth, scratch);
        for (o = 0; o + 4 <= out_depth; o += 4, w += 4 * words) {
            int32_t acc[4];
            acc[0] = p->bias[o];
            acc[1] = p->bias[o + 1];
            acc[2] = p->bias[o + 2];
            acc[3] = p->bias[o + 3];
            rows_four(acc, input, scratch, w, words, depth, p->in_depth);
            output[o] = requant(p, acc[0], o);
            output[o + 1] = requant(p, acc[1], o + 1);
            output[o + 2] = requant(p, acc[2], o + 2);
            output[o + 3] = requant(p, acc[3], o + 3);
        }
        for (; o < out_depth; o++, w += words) {
            output[o] = requant(p, rows_one(p->bias[o], input, scratch, w, words, p->in_depth), o);
        }
    }
}
