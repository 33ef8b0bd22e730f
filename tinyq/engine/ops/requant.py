"""The constants of the kernels' division-free requantization (firmware_stub/runtime/tq_requant.h), shared by every
family that uses it."""

from __future__ import annotations

from ..fixedpoint import Rounding

SHIFT_RANGE = (-31, 30)  # tq_requantize's shifts: left up to 30, right up to 31


def fused_constant(mult: int, shift: int, output_offset: int, rounding: Rounding = Rounding.DOUBLE) -> int | None:
    """tq_requantize_fused's 64-bit c = 2^30 + 2^(30 + r) + output_offset * 2^(31 + r) for a right shift
    r = -shift (single rounding: without the first 2^30), or None where the fused form is not exact: r < 1, a
    negative multiplier, or 2^31 * (mult + 1) + |c| >= 2^63 (the 64-bit sum could overflow)."""
    r = -shift
    if r < 1 or mult < 0:
        return None
    c = (0 if rounding is Rounding.SINGLE else 1 << 30) + (1 << (30 + r)) + output_offset * (1 << (31 + r))
    if (mult << 31) + abs(c) + (1 << 31) >= 1 << 63:
        return None
    return c
