"""256-entry int8 -> int8 tables of TFLite Micro's elementwise int8 kernels, computed at generation time.

Each function replays TFLM's integer arithmetic (its Prepare-time parameters from the same float/double
expressions, then gemmlowp's fixed-point evaluation) on all 256 inputs, so a table lookup in C gives TFLM's
result bit for bit. Python ints are unbounded: every step that wraps or saturates in C says so explicitly.
"""

from __future__ import annotations

import math

import numpy as np

from .fixedpoint import (Rounding, f32, quantize_multiplier, round_half_away,
                         rounding_divide_by_pot, saturating_rounding_mul_by_pot, srdhm, trunc_div, wrap32)

INT8_RANGE = range(-128, 128)


def _table(fn) -> np.ndarray:
    return np.array([max(-128, min(127, fn(x))) for x in INT8_RANGE], dtype=np.int8)


def requantize(in_scale: float, in_zp: int, out_scale: float, out_zp: int,
               rounding: Rounding = Rounding.DOUBLE) -> np.ndarray:
    """QUANTIZE int8 -> int8 (reference Requantize)."""
    mult, shift = quantize_multiplier(f32(in_scale) / f32(out_scale))
    return _table(lambda x: rounding.multiply(x - in_zp, mult, shift) + out_zp)


def relu(in_scale: float, in_zp: int, out_scale: float, out_zp: int,
         rounding: Rounding = Rounding.DOUBLE) -> np.ndarray:
    """RELU: rescale to the output, then clamp at the output's zero."""
    mult, shift = quantize_multiplier(float(np.float32(in_scale) / np.float32(out_scale)))
    lo = max(-128, out_zp)
    return _table(lambda x: max(lo, out_zp + rounding.multiply(x - in_zp, mult, shift)))


def relu6(in_scale: float, in_zp: int) -> np.ndarray:
    """RELU6: clamp in the input's domain to [q(0), q(6)] (TFLM ignores the output quantization)."""
    six = max(-128, min(127, round_half_away(float(np.float32(6.0) / np.float32(in_scale))) + in_zp))
    return _table(lambda x: min(six, max(in_zp, x)))


def leaky_relu(in_scale: float, in_zp: int, out_scale: float, out_zp: int, alpha: float,
               rounding: Rounding = Rounding.DOUBLE) -> np.ndarray:
    """LEAKY_RELU: identity and alpha multipliers from float32 products, as TFLM's Prepare computes them."""
    s_in, s_out, a = np.float32(in_scale), np.float32(out_scale), np.float32(alpha)
    m_alpha, sh_alpha = quantize_multiplier(float(s_in * a / s_out))
    m_id, sh_id = quantize_multiplier(float(s_in / s_out))
    negative = m_alpha < 0
    m_alpha = -m_alpha if negative else m_alpha

    def f(x: int) -> int:
        v = x - in_zp
        if v >= 0:
            return out_zp + rounding.multiply(v, m_id, sh_id)
        scaled = rounding.multiply(v, m_alpha, sh_alpha)
        return out_zp + (-scaled if negative else scaled)
    return _table(f)


# ---- gemmlowp fixed point on raw int32 values (FixedPoint<int32_t, IntegerBits>) ----

_ONE_Q0 = (1 << 31) - 1


def _exp_on_interval_neg_quarter_to_zero(a: int) -> int:
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = saturating_rounding_mul_by_pot(x4, -2)
    poly = saturating_rounding_mul_by_pot(wrap32(srdhm(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), -1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


def _exp_on_negative_values(a: int, integer_bits: int) -> int:
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_quarter = wrap32((a & mask) - one_quarter)
    result = _exp_on_interval_neg_quarter_to_zero(
        saturating_rounding_mul_by_pot(a_mod_quarter_minus_quarter, integer_bits))
    remainder = wrap32(a_mod_quarter_minus_quarter - a)
    for exponent, multiplier in zip(range(-2, 5), (1672461947, 1302514674, 790015084, 290630308, 39332535,
                                                   720401, 242)):
        if integer_bits > exponent and remainder & (1 << (fractional_bits + exponent)):
            result = srdhm(result, multiplier)
    if integer_bits > 5 and a < -(1 << (36 - integer_bits)):
        result = 0
    return _ONE_Q0 if a == 0 else result


def _newton_reciprocal_q2(a: int) -> int:
    """x ~ 1 / half_denominator in Q2.29 with half_denominator = (a + 1) / 2 (gemmlowp's shared loop)."""
    total = a + _ONE_Q0
    half_denominator = trunc_div(total + (1 if total >= 0 else -1), 2)
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = wrap32((1 << 29) - srdhm(half_denominator, x))
        x = wrap32(x + saturating_rounding_mul_by_pot(srdhm(x, one_minus), 2))
    return x


def _one_over_one_plus_x(a: int) -> int:
    return saturating_rounding_mul_by_pot(_newton_reciprocal_q2(a), 1)


def _one_minus_x_over_one_plus_x(a: int) -> int:
    return saturating_rounding_mul_by_pot(wrap32(_newton_reciprocal_q2(a) - (1 << 29)), 2)


def _logistic_q4(a: int) -> int:
    if a == 0:
        return 1 << 30
    positive = _one_over_one_plus_x(_exp_on_negative_values(-abs(a), 4))
    return positive if a > 0 else wrap32(_ONE_Q0 - positive)


def _tanh_q4(a: int) -> int:
    if a == 0:
        return 0
    t = _one_minus_x_over_one_plus_x(_exp_on_negative_values(-abs(a), 5))  # ExactMulByPot<1>: Q4 read as Q5
    return -t if a < 0 else t


def _sigmoid_params(in_scale: float) -> tuple[int, int, int]:
    """TFLM's Prepare for int8 LOGISTIC and TANH: multiplier and left shift from frexp, and the input radius."""
    real = f32(in_scale) * float(1 << (31 - 4))
    q, left_shift = math.frexp(real)
    multiplier = round_half_away(q * float(1 << 31))
    radius = math.floor(((1 << 4) - 1) * float(1 << (31 - 4)) / float(2.0 ** left_shift))
    return multiplier, left_shift, radius


def _sigmoid_table(in_scale: float, in_zp: int, q4_function, out_shift: int, out_offset: int,
                   rounding: Rounding) -> np.ndarray:
    """LOGISTIC and TANH share TFLM's int8 path: saturate outside the radius, else a Q4 input into the Q0.31
    function, rounded down to the output's bits."""
    multiplier, left_shift, radius = _sigmoid_params(in_scale)

    def f(x: int) -> int:
        v = x - in_zp
        if v <= -radius:
            return -128
        if v >= radius:
            return 127
        q4 = rounding.multiply(v, multiplier, left_shift)
        return rounding_divide_by_pot(q4_function(q4), out_shift) + out_offset
    return _table(f)


def logistic(in_scale: float, in_zp: int, rounding: Rounding = Rounding.DOUBLE) -> np.ndarray:
    """LOGISTIC: output fixed at scale 1/256, zero point -128."""
    return _sigmoid_table(in_scale, in_zp, _logistic_q4, 31 - 8, -128, rounding)


def tanh(in_scale: float, in_zp: int, rounding: Rounding = Rounding.DOUBLE) -> np.ndarray:
    """TANH: output fixed at scale 1/128, zero point 0."""
    return _sigmoid_table(in_scale, in_zp, _tanh_q4, 31 - 7, 0, rounding)


# ---- HARD_SWISH: int16 fixed point ----

def _wrap16(x: int) -> int:
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def _srdhm16(a: int, b: int) -> int:
    if a == b == -(1 << 15):
        return (1 << 15) - 1
    ab = a * b
    nudge = (1 << 14) if ab >= 0 else 1 - (1 << 14)
    return _wrap16(trunc_div(ab + nudge, 1 << 15))


def _sdhm16(a: int, b: int) -> int:
    if a == b == -(1 << 15):
        return (1 << 15) - 1
    return _wrap16(trunc_div(a * b, 1 << 15))


def _saturating_left_shift16(v: int, amount: int) -> int:
    return max(-(1 << 15), min((1 << 15) - 1, v * (1 << amount)))


def _downscale_to_int16(multiplier: int) -> int:
    if multiplier >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (multiplier + (1 << 15)) >> 16


def hard_swish(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """HARD_SWISH: x * relu6(x + 3) / 6 in TFLM's int16 fixed point (scales combined in float32)."""
    hires = np.float32(1.0 / 128.0) * np.float32(in_scale)
    out_m32, out_exp = quantize_multiplier(float(hires / np.float32(out_scale)))
    relu_m32, relu_exp = quantize_multiplier(float(hires / np.float32(np.float32(3.0) / np.float32(32768.0))))
    out_m16, relu_m16 = _downscale_to_int16(out_m32), _downscale_to_int16(relu_m32)
    if out_exp > 0:
        raise ValueError(f"hard swish output multiplier exponent {out_exp} > 0")

    def f(x: int) -> int:
        v = _wrap16(x - in_zp)
        hires_v = _wrap16(v * (1 << 7))
        preshift = _srdhm16(hires_v, out_m16)
        reluish = hires_v
        if relu_exp > 0:
            reluish = _saturating_left_shift16(reluish, relu_exp - 1)
        reluish = _srdhm16(reluish, relu_m16)
        if relu_exp > 0:
            reluish = _saturating_left_shift16(reluish, 1)
        if relu_exp < 0:
            reluish = rounding_divide_by_pot(reluish, -relu_exp)
        reluish = _wrap16((reluish + (1 << 15)) >> 1)
        out = _sdhm16(reluish, preshift)
        out = _wrap16(rounding_divide_by_pot(out, -out_exp) + out_zp)
        return out
    return _table(f)
