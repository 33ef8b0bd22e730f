"""Specialised same-shape ADD: choice and constant tables (C in firmware_stub/runtime/tq_add.c).

The generic tq_add rescales each input as requant((x + offset) << left_shift), a function of the int8 x alone, so
generation time replays that arithmetic into a 256-entry int32 table per input (2 KB of flash per ADD, taken
whenever the chooser applies); each element then costs two table loads, one add and the output's
requantization as one rounding multiply-accumulate (SMMLAR), a sign correction and a shift."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..fixedpoint import INT32_MAX, mul_by_quantized_multiplier, wrap32
from .base import ConstArray, Variant

TABLE_SIZE = 256  # one int32 per int8 input value, index x + 128


def input_table(offset: int, mult: int, shift: int, left_shift: int) -> np.ndarray:
    """The generic tq_add's rescaled input for every int8 x, as int64 [256] indexed by x + 128: TFLite's
    MultiplyByQuantizedMultiplier of (x + offset) << left_shift, wrapped to int32 as the C shift wraps."""
    return np.array([mul_by_quantized_multiplier(wrap32((x + offset) << left_shift), mult, shift)
                     for x in range(-128, 128)], np.int64)


def output_acc(mult: int, shift: int, output_offset: int, max_sum: int) -> int | None:
    """tq_add_lut's accumulator 2^(r-1) + output_offset * 2^r for the output rescale (mult, shift = -r), or None
    where its exact form does not apply: a negative multiplier, r outside 1..31, or int32 overflow of the doubled
    sum (|2s| <= 2 * max_sum) or of acc + h - 1 with h the doubling high multiply of s."""
    r = -shift
    if mult < 0 or not 1 <= r <= 31 or 2 * max_sum > INT32_MAX:
        return None
    acc = (1 << (r - 1)) + output_offset * (1 << r)
    high = (max_sum * mult + (1 << 30)) // (1 << 31) + 1
    if abs(acc) + high + 1 > INT32_MAX:
        return None
    return acc


def choose(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str) -> Variant | None:
    """tq_add_lut (full int8 output range) or tq_add_lut_clamp (a fused activation narrows it) when the output
    rescale has output_acc's exact form; None (the generic kernel) else. The tables hold twice the generic's
    rescaled inputs, so the kernel's SMMLAR yields the doubling high multiply with its rounding."""
    tables = [input_table(int(fields[f"in{k}_offset"]), int(fields[f"in{k}_mult"]), int(fields[f"in{k}_shift"]),
                          int(fields["left_shift"])) for k in (1, 2)]
    max_sum = int(sum(np.abs(t).max() for t in tables))
    acc = output_acc(int(fields["out_mult"]), int(fields["out_shift"]), int(fields["out_offset"]), max_sum)
    if acc is None:
        return None
    act_min, act_max = int(fields["act_min"]), int(fields["act_max"])
    kernel = "tq_add_lut" if (act_min, act_max) == (-128, 127) else "tq_add_lut_clamp"
    values = (("size", int(fields["size"])), ("mult", int(fields["out_mult"])), ("acc", acc),
              ("shift", -int(fields["out_shift"])), ("act_min", act_min), ("act_max", act_max))
    arrays_out = tuple(ConstArray(f"{name}_add_table{k}", "int32_t", (2 * t).astype(np.int32))
                       for k, t in zip((1, 2), tables))
    return Variant(kernel, "tq_add_lut_params", values, arrays_out, ("table1", "table2"),
                   (TABLE_SIZE, TABLE_SIZE))
