"""TFLite's integer primitives in Python: QuantizeMultiplier and the gemmlowp fixed-point steps on int32 values.

The lowering uses them for parameters, and tinyq/engine/lut.py to replay whole kernels at generation time. Python ints
are unbounded, so every step that wraps or saturates in C does so here explicitly.
"""

from __future__ import annotations

import enum
import math

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def round_half_away(x: float) -> int:
    """Round to nearest, ties away from zero (C's round())."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = q * 2^(shift - 31) with q a Q0.31 value in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * float(1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return int(q_fixed), int(shift)


def f32(x: float) -> float:
    """The double value of a float32 scale, as C++ gets from static_cast<double>(float)."""
    return float(np.float32(x))


def wrap32(x: int) -> int:
    """Two's complement int32 wrap-around."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def trunc_div(a: int, b: int) -> int:
    """C integer division (rounds toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul on int32: high 32 bits of 2*a*b, rounded to nearest."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return wrap32(trunc_div(ab + nudge, 1 << 31))


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """x / 2^exponent rounded to nearest, ties away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def saturating_rounding_mul_by_pot(x: int, exponent: int) -> int:
    """x * 2^exponent, saturating on int32 (exponent > 0) or rounding (exponent < 0)."""
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return wrap32(x << exponent)


def mul_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier: x * multiplier * 2^(shift - 31) with TFLite's double rounding."""
    left, right = max(shift, 0), max(-shift, 0)
    return rounding_divide_by_pot(srdhm(wrap32(x * (1 << left)), multiplier), right)


def mul_by_quantized_multiplier_single(x: int, multiplier: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier as a TFLM built with TFLITE_SINGLE_ROUNDING runs it (common.cc): one 64-bit
    product, one shift by 31 - shift rounding ties upward; x << shift is not wrapped to int32 first."""
    total = 31 - shift
    return (x * multiplier + (1 << (total - 1))) >> total


class Rounding(str, enum.Enum):
    """TFLite's two requantization rules. DOUBLE: SaturatingRoundingDoublingHighMul then RoundingDivideByPOT, as
    pip TFLM and TFLite's reference kernels by default; SINGLE: a TFLM (or CMSIS-NN) built with
    TFLITE_SINGLE_ROUNDING. Every kernel that calls MultiplyByQuantizedMultiplier (or its SmallerThanOneExp /
    GreaterThanOne forms) follows the rule; the C engine selects it with TQ_SINGLE_ROUNDING."""

    DOUBLE = "double"
    SINGLE = "single"

    def multiply(self, x: int, multiplier: int, shift: int) -> int:
        """MultiplyByQuantizedMultiplier(x, multiplier, shift) under this rule."""
        if self is Rounding.SINGLE:
            return mul_by_quantized_multiplier_single(x, multiplier, shift)
        return mul_by_quantized_multiplier(x, multiplier, shift)
