"""Specialised pooling kernels: choice only, they need no constant arrays (C in firmware_stub/runtime/tq_pool.c)."""

from __future__ import annotations

from typing import Mapping

from .base import ConstArray, Variant

# Taps of one window whose int8 sum a 16-bit lane holds exactly: 256 * -128 = -32768, 256 * 127 = 32512.
LANE_TAPS = 256
FIELDS = ("in_h", "in_w", "channels", "out_h", "out_w", "k_h", "k_w", "stride_h", "stride_w", "pad_h", "pad_w",
          "act_min", "act_max")


def is_global(fields: Mapping[str, int]) -> bool:
    """Whether the one output pixel's window is the whole input (global average pooling)."""
    return (fields["out_h"] == 1 and fields["out_w"] == 1 and fields["pad_h"] == 0 and fields["pad_w"] == 0
            and fields["k_h"] >= fields["in_h"] and fields["k_w"] >= fields["in_w"])


def _variant(kernel: str, fields: Mapping[str, int]) -> Variant:
    return Variant(kernel, "tq_pool_params", tuple((k, int(fields[k])) for k in FIELDS), (), (), ())


def choose_max(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str) -> Variant | None:
    """tq_max_pool_c4 for every max pool: the window cut once per pixel, four channels per word."""
    return _variant("tq_max_pool_c4", fields)


def choose_average(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str) -> Variant | None:
    """tq_global_average_pool when the window is the whole input; else tq_average_pool_c4 when a window's sum fits
    16-bit lanes; else None (the generic kernel)."""
    if is_global(fields):
        return _variant("tq_global_average_pool", fields)
    if fields["k_h"] * fields["k_w"] <= LANE_TAPS:
        return _variant("tq_average_pool_c4", fields)
    return None
