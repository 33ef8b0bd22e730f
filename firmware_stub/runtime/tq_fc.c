/* Specialised FULLY_CONNECTED kernels (see tq_fc.h). tq_fc_stacked4: the input row is widened once into an int16
   scratch ((x0, x2), (x1, x3) per 4 columns, zero-padded); each weight word carries two output rows stacked in its
   16-bit lanes, so on the packed path one SMLAD of the raw word and one of its sign-extended low bytes give both rows'
   products of two columns (three instructions for four MACs), four rows per pass over the scratch. Cores without DSP
   read the lanes as int16 and take the low row's weight as the lane's low byte (two MACs per multiply for the high
   row's stacked sum, one for the low row's). Sums wrap modulo 2^32 (SMLAD does); every sum the kernel returns is
   exact, so wrapping in between is harmless. */
#include "tq_fc.h"

#include "tq_requant.h"
#include "tq_simd.h"

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
#endif

#if TQ_PACKED
/* A pair's raw sum r and low-row sum b over one word w of stacked weights against the scratch word x. */
#define TQ_FC_LANES(r, b, w, x)         \
    do {                                \
        r = tq_smlad((w), (x), r);      \
        b = tq_smlad(tq_sxtb16(w), (x), b); \
    } while (0)
#endif

#if TQ_DSP
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
#elif !TQ_PACKED
/* One column of two pairs: lanes la, lb of stacked weights (rows 2i + 1, 2i in 256 * a + b) times the input x; the
   low row's weight is the lane's low byte. One multiply-accumulate per lane and row: MLA on ARMv7-M, MULS and
   ADDS on ARMv6-M, the operands loaded as int16 (LDRSH) and sign-extended once (SXTB). */
#define TQ_FC_COL(ra, ba, la, x)                                                   \
    do {                                                                          \
        const int32_t l_ = (la), c_ = (x);                                        \
        ra = (int32_t)((uint32_t)ra + (uint32_t)(l_ * c_));                       \
        ba = (int32_t)((uint32_t)ba + (uint32_t)((int32_t)(int8_t)(uint8_t)((uint32_t)l_ & 0xFFu) * c_)); \
    } while (0)
#if defined(__GNUC__)
/* Keeps each sum one chain of multiply-accumulates: GCC would otherwise regroup the wrapping sums into separate
   products and add them up at the end of the loop body (more instructions and registers). Changes no value. */
#define TQ_FC_CHAIN(ra, ba, rb, bb) __asm__("" : "+r"(ra), "+r"(ba), "+r"(rb), "+r"(bb))
#else
#define TQ_FC_CHAIN(ra, ba, rb, bb) ((void)0)
#endif
#define TQ_FC_COL2(ra, ba, rb, bb, v, x, j)    \
    do {                                        \
        const int32_t xj_ = (x)[j];             \
        TQ_FC_COL(ra, ba, (v)[j], xj_);         \
        TQ_FC_COL(rb, bb, (v)[4 + (j)], xj_);   \
        TQ_FC_CHAIN(ra, ba, rb, bb);            \
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
#else
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
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__ARM_ARCH_ISA_THUMB) && __ARM_ARCH_ISA_THUMB == 1
/* ARMv6-M (Cortex-M0/M0+): GCC spills the portable loop's four sums and pointers (8 low registers, MULS only), so
   the whole pass over the depth is written out, same products and sums as TQ_FC_QUAD: per column one LDRSH of the
   input and per pair one LDRSH of the lane (register offset, the only form Thumb-1 has), its low byte by SXTB, two
   MULS and two ADDs into sums kept in high registers. One index k counts the scratch's bytes up to zero; the
   pairs' bases advance 8 bytes per 4 columns (their words are interleaved per 4 columns). GCC reads Thumb-1
   inline assembly in divided syntax (MUL and ADD with a low register and an immediate set the flags). */
#define TQ_FC_V6M 1
#define TQ_FC_V6M_COL(ra, ba, rb, bb)                                                                          \
    "ldrsh %[x], [%[s], %[k]]\n\t"                                                                             \
    "ldrsh %[l], [%[wa], %[k]]\n\t"                                                                            \
    "sxtb %[b], %[l]\n\t"                                                                                      \
    "mul %[l], %[x]\n\t"                                                                                \
    "mul %[b], %[x]\n\t"                                                                                \
    "add " ra ", %[l]\n\t"                                                                                     \
    "add " ba ", %[b]\n\t"                                                                                     \
    "ldrsh %[l], [%[wb], %[k]]\n\t"                                                                            \
    "sxtb %[b], %[l]\n\t"                                                                                      \
    "mul %[l], %[x]\n\t"                                                                                \
    "mul %[b], %[x]\n\t"                                                                                \
    "add " rb ", %[l]\n\t"                                                                                     \
    "add " bb ", %[b]\n\t"

/* Two pairs over `depth` columns (a multiple of 8): s the scratch, w the group's first word; returns past it. */
static inline const int32_t *tq_fc_quads_v6m(int32_t acc[4], const int32_t *s, const int32_t *w, int32_t depth)
{
    int32_t ra = acc[0], ba = acc[1], rb = acc[2], bb = acc[3], x, l, b;
    int32_t k = -2 * depth;
    const char *se = (const char *)s + 2 * depth, *wa = (const char *)w + 2 * depth, *wb = wa + 8;
    __asm__("1:\n\t"
            TQ_FC_V6M_COL("%[ra]", "%[ba]", "%[rb]", "%[bb]")
            "add %[k], #2\n\t"
            TQ_FC_V6M_COL("%[ra]", "%[ba]", "%[rb]", "%[bb]")
            "add %[k], #2\n\t"
            TQ_FC_V6M_COL("%[ra]", "%[ba]", "%[rb]", "%[bb]")
            "add %[k], #2\n\t"
            TQ_FC_V6M_COL("%[ra]", "%[ba]", "%[rb]", "%[bb]")
            "add %[wa], #8\n\t"
            "add %[wb], #8\n\t"
            "add %[k], #2\n\t"
            "bne 1b"
            : [ra] "+h"(ra), [ba] "+h"(ba), [rb] "+h"(rb), [bb] "+h"(bb), [k] "+l"(k), [wa] "+l"(wa),
              [wb] "+l"(wb), [x] "=&l"(x), [l] "=&l"(l), [b] "=&l"(b)
            : [s] "l"(se)
            : "cc", "memory");
    acc[0] = ra;
    acc[1] = ba;
    acc[2] = rb;
    acc[3] = bb;
    return w + depth;
}
#endif

/* The high row's sum: (raw - low) / 256 plus its bias. */
static inline int32_t high_row(int32_t r, int32_t b, int32_t bias)
{
    return ((int32_t)((uint32_t)r - (uint32_t)b) >> 8) + bias;
}

/* Row o's sum requantized, zero point added, clamped to the activation range. */
static inline int8_t requant(const tq_fc_st4_params *p, int32_t acc, int32_t o)
{
    const int32_t *q = p->requant + 4 * o;
    int32_t v = tq_requantize_fused(acc, q[2], (int64_t)(((uint64_t)(uint32_t)q[1] << 32) | (uint32_t)q[0]), q[3]);
    v = v < p->act_min ? p->act_min : v;
    v = v > p->act_max ? p->act_max : v;
    return (int8_t)v;
}

void tq_fc_stacked4(const tq_fc_st4_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    const int32_t depth = p->depth, out_depth = p->out_depth, even = out_depth + (out_depth & 1);
    const int32_t *const s0 = (const int32_t *)scratch;
    int32_t r, o, k;
    for (r = 0; r < p->rows; r++, input += p->in_depth, output += out_depth) {
        const int32_t *w = p->weights;
        widen(input, p->in_depth, depth, scratch);
        for (o = 0; o + 4 <= even; o += 4) {
            const int32_t *s = s0;
            int32_t ra = p->bias[o], ba = ra, rb = p->bias[o + 2], bb = rb;
#if defined(TQ_FC_V6M)
            int32_t acc[4];
            acc[0] = ra;
            acc[1] = ba;
            acc[2] = rb;
            acc[3] = bb;
            w = tq_fc_quads_v6m(acc, s, w, depth);
            ra = acc[0];
            ba = acc[1];
            rb = acc[2];
            bb = acc[3];
            (void)k;
#else
            for (k = depth >> 3; k > 0; k--) {
                TQ_FC_QUAD(ra, ba, rb, bb, s, w);
                TQ_FC_QUAD(ra, ba, rb, bb, s, w);
            }
#endif
            output[o] = requant(p, ba, o);
            output[o + 1] = requant(p, high_row(ra, ba, p->bias[o + 1]), o + 1);
            output[o + 2] = requant(p, bb, o + 2);
            if (o + 3 < out_depth) {
                output[o + 3] = requant(p, high_row(rb, bb, p->bias[o + 3]), o + 3);
            }
        }
        if (o < out_depth) {
            const int32_t *s = s0;
            int32_t ra = p->bias[o], ba = ra;
            for (k = depth >> 3; k > 0; k--) {
                TQ_FC_PAIR(ra, ba, s, w);
                TQ_FC_PAIR(ra, ba, s, w);
            }
            output[o] = requant(p, ba, o);
            if (o + 1 < out_depth) {
                output[o + 1] = requant(p, high_row(ra, ba, p->bias[o + 1]), o + 1);
            }
        }
    }
}
