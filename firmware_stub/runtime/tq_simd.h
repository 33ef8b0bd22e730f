/* The intrinsic layer of tinyq's fast kernels: one algorithm, two instruction sets (tq_path.h says which).
   With real DSP instructions (TQ_DSP_ASM: Cortex-M4, M7, M33, M55) these are the ACLE intrinsics of arm_acle.h,
   one instruction each. Elsewhere each has a plain-C twin with the same result bit for bit, so the host build runs
   the very kernel code the target runs and a host test over a whole test set checks the target's algorithm.
   Lanes: lo = bits 0..15, hi = bits 16..31. Then the host SIMD path's few SSE2 helpers. */
#ifndef TQ_SIMD_H_
#define TQ_SIMD_H_

#include <stdint.h>
#include <string.h>

#include "tq_path.h"

/* Unaligned word access through memcpy: one LDR/STR on cores that allow unaligned access. */
static inline int32_t tq_read_s8x4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline int32_t tq_read_s16x2(const int16_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void tq_write_s16x2(int16_t *p, int32_t v)
{
    memcpy(p, &v, sizeof v);
}

/* Two signed 16-bit lanes from lo and hi (each truncated to 16 bits). */
static inline int32_t tq_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}

static inline int32_t tq_lo16(int32_t x)
{
    return (int32_t)(int16_t)(uint16_t)((uint32_t)x & 0xFFFFu);
}

static inline int32_t tq_hi16(int32_t x)
{
    return (int32_t)(int16_t)(uint16_t)((uint32_t)x >> 16);
}

#if TQ_DSP_ASM

/* Bytes 0 and 2 of x, sign-extended into the two lanes. */
static inline int32_t tq_sxtb16(int32_t x)
{
    return (int32_t)__sxtb16((uint32_t)x);
}

/* Bytes 1 and 3 of x, sign-extended into the two lanes (SXTB16 with its rotation; GCC does not fuse a rotate). */
static inline int32_t tq_sxtb16_ror8(int32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"((uint32_t)x));
    return (int32_t)r;
}

/* Lanes of a plus bytes 0 and 2 of x, sign-extended (16-bit wrap per lane). */
static inline int32_t tq_sxtab16(int32_t a, int32_t x)
{
    return (int32_t)__sxtab16((uint32_t)a, (uint32_t)x);
}

/* acc + lo(x)*lo(y) + hi(x)*hi(y). */
static inline int32_t tq_smlad(int32_t x, int32_t y, int32_t acc)
{
    return __smlad(x, y, acc);
}

/* acc + lo(x)*hi(y) + hi(x)*lo(y). */
static inline int32_t tq_smladx(int32_t x, int32_t y, int32_t acc)
{
    return __smladx(x, y, acc);
}

/* acc + lo(x)*lo(y), and acc + hi(x)*hi(y). */
static inline int32_t tq_smlabb(int32_t x, int32_t y, int32_t acc)
{
    return __smlabb(x, y, acc);
}

static inline int32_t tq_smlatt(int32_t x, int32_t y, int32_t acc)
{
    return __smlatt(x, y, acc);
}

/* Lanes of a plus bytes 1 and 3 of x, sign-extended (SXTAB16 with its rotation). */
static inline int32_t tq_sxtab16_ror8(int32_t a, int32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"((uint32_t)a), "r"((uint32_t)x));
    return (int32_t)r;
}

/* Bytewise signed maximum and minimum of four int8 lanes: SSUB8 sets a GE flag per byte where a >= b, SEL picks
   by them (kept as one function so the plain-C twin needs no flag state). */
static inline int32_t tq_max_s8x4(int32_t a, int32_t b)
{
    (void)__ssub8(a, b);
    return (int32_t)__sel((uint32_t)a, (uint32_t)b);
}

static inline int32_t tq_min_s8x4(int32_t a, int32_t b)
{
    (void)__ssub8(a, b);
    return (int32_t)__sel((uint32_t)b, (uint32_t)a);
}

/* acc + the high word of x * y rounded to nearest: bits 63..32 of acc * 2^32 + x * y + 2^31 (SMMLAR, no ACLE name). */
static inline int32_t tq_smmlar(int32_t x, int32_t y, int32_t acc)
{
    uint32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"((uint32_t)x), "r"((uint32_t)y), "r"((uint32_t)acc));
    return (int32_t)r;
}

/* acc + the high word of x * y, truncated: bits 63..32 of acc * 2^32 + x * y (SMMLA, no ACLE name). */
static inline int32_t tq_smmla(int32_t x, int32_t y, int32_t acc)
{
    uint32_t r;
    __asm__("smmla %0, %1, %2, %3" : "=r"(r) : "r"((uint32_t)x), "r"((uint32_t)y), "r"((uint32_t)acc));
    return (int32_t)r;
}

#else

static inline int32_t tq_sxtb16(int32_t x)
{
    return tq_pack16((int8_t)(uint8_t)((uint32_t)x & 0xFFu), (int8_t)(uint8_t)(((uint32_t)x >> 16) & 0xFFu));
}

static inline int32_t tq_sxtb16_ror8(int32_t x)
{
    return tq_pack16((int8_t)(uint8_t)(((uint32_t)x >> 8) & 0xFFu), (int8_t)(uint8_t)((uint32_t)x >> 24));
}

static inline int32_t tq_sxtab16(int32_t a, int32_t x)
{
    const int32_t b = tq_sxtb16(x);
    return tq_pack16(tq_lo16(a) + tq_lo16(b), tq_hi16(a) + tq_hi16(b));
}

/* Sums in uint32: the hardware wraps where C's signed overflow would be undefined (tinyq proves no overflow). */
static inline int32_t tq_smlad(int32_t x, int32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tq_lo16(x) * tq_lo16(y)) + (uint32_t)(tq_hi16(x) * tq_hi16(y)));
}

static inline int32_t tq_smladx(int32_t x, int32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tq_lo16(x) * tq_hi16(y)) + (uint32_t)(tq_hi16(x) * tq_lo16(y)));
}

static inline int32_t tq_smlabb(int32_t x, int32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tq_lo16(x) * tq_lo16(y)));
}

static inline int32_t tq_smlatt(int32_t x, int32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tq_hi16(x) * tq_hi16(y)));
}

static inline int32_t tq_sxtab16_ror8(int32_t a, int32_t x)
{
    const int32_t b = tq_sxtb16_ror8(x);
    return tq_pack16(tq_lo16(a) + tq_lo16(b), tq_hi16(a) + tq_hi16(b));
}

#if defined(__GNUC__) && !defined(__arm__)
/* The host: four int8 lanes of a GCC vector, a byte compare and a select (a few SSE instructions, not a loop). */
typedef int8_t tq_s8x4_vec __attribute__((vector_size(4)));

/* Byte k of `on_ge` where a's signed byte k is >= b's (the GE flag SSUB8 sets), else `other`'s byte k (SEL). */
static inline int32_t tq_sel_ge_s8x4(int32_t a, int32_t b, int32_t on_ge, int32_t other)
{
    tq_s8x4_vec x, y, t, f, ge, r;
    int32_t v;
    memcpy(&x, &a, sizeof x);
    memcpy(&y, &b, sizeof y);
    memcpy(&t, &on_ge, sizeof t);
    memcpy(&f, &other, sizeof f);
    ge = x >= y;
    r = (t & ge) | (f & ~ge);
    memcpy(&v, &r, sizeof v);
    return v;
}
#else
/* Signed byte k (0..3) of x. */
static inline int32_t tq_s8_lane(int32_t x, int k)
{
    return (int8_t)(uint8_t)(((uint32_t)x >> (8 * k)) & 0xFFu);
}

/* Byte k of `on_ge` where a's signed byte k is >= b's (the GE flag SSUB8 sets), else `other`'s byte k (SEL). */
static inline int32_t tq_sel_ge_s8x4(int32_t a, int32_t b, int32_t on_ge, int32_t other)
{
    uint32_t r = 0;
    int k;
    for (k = 0; k < 4; k++) {
        const int32_t pick = tq_s8_lane(a, k) >= tq_s8_lane(b, k) ? on_ge : other;
        r |= (uint32_t)(uint8_t)tq_s8_lane(pick, k) << (8 * k);
    }
    return (int32_t)r;
}
#endif

/* Bytewise signed maximum and minimum of four int8 lanes, as SSUB8 and SEL compute them. */
static inline int32_t tq_max_s8x4(int32_t a, int32_t b)
{
    return tq_sel_ge_s8x4(a, b, a, b);
}

static inline int32_t tq_min_s8x4(int32_t a, int32_t b)
{
    return tq_sel_ge_s8x4(a, b, b, a);
}

/* The 64-bit sum wraps as the hardware's does; on cores without DSP this is one SMLAL and two moves. */
static inline int32_t tq_smmlar(int32_t x, int32_t y, int32_t acc)
{
    const uint64_t sum = ((uint64_t)(uint32_t)acc << 32) + (uint64_t)((int64_t)x * y) + 0x80000000u;
    return (int32_t)(uint32_t)(sum >> 32);
}

static inline int32_t tq_smmla(int32_t x, int32_t y, int32_t acc)
{
    const uint64_t sum = ((uint64_t)(uint32_t)acc << 32) + (uint64_t)((int64_t)x * y);
    return (int32_t)(uint32_t)(sum >> 32);
}

#endif

#if TQ_PATH_HOST_SIMD
/* 128-bit loads at any alignment (the scratch is 4-byte aligned, constants may be less). */
static inline __m128i tq_host_load128(const void *p)
{
    return _mm_loadu_si128((const __m128i *)p);
}

static inline __m128i tq_host_load64(const void *p)
{
    return _mm_loadl_epi64((const __m128i *)p);
}

/* Eight int8 as eight int16 lanes. */
static inline __m128i tq_host_widen8(__m128i v)
{
    return _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8);
}

/* acc + lane 0 + lane 1 of v, and acc + lane 2 + lane 3, wrapping as the DSP's sums do. */
static inline int32_t tq_host_sum01(int32_t acc, __m128i v)
{
    return (int32_t)((uint32_t)acc + (uint32_t)_mm_cvtsi128_si32(v) +
                     (uint32_t)_mm_cvtsi128_si32(_mm_shuffle_epi32(v, 0x55)));
}

static inline int32_t tq_host_sum23(int32_t acc, __m128i v)
{
    return (int32_t)((uint32_t)acc + (uint32_t)_mm_cvtsi128_si32(_mm_shuffle_epi32(v, 0xAA)) +
                     (uint32_t)_mm_cvtsi128_si32(_mm_shuffle_epi32(v, 0xFF)));
}
#endif

#endif /* TQ_SIMD_H_ */
