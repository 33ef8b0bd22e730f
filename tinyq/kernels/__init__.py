"""Kernel choice at generation time: for a generic kernel call (tinyq/lower.py) with its integer parameters and
constant arrays, the specialised variant that computes the same bytes faster, laid out for it, or None.

One module per op family holds its variants' choice and weight layout; the C lives in firmware_stub/runtime/
(one file per family), with a DSP path behind __ARM_FEATURE_DSP and its plain-C emulation (tq_simd.h)."""

from __future__ import annotations

from typing import Callable, Mapping

from . import conv, depthwise, elementwise, fully_connected, pool
from .base import ConstArray, Variant

Chooser = Callable[[Mapping[str, int], Mapping[str, ConstArray], str], "Variant | None"]

# Generic kernel -> the family function choosing its variant (by the generic kernel's C name, which lower.py
# picked from the TFLite op enum).
CHOOSERS: dict[str, Chooser] = {
    "tq_fully_connected": fully_connected.choose,
    "tq_conv2d": conv.choose,
    "tq_depthwise_conv2d": depthwise.choose,
    "tq_max_pool": pool.choose_max,
    "tq_average_pool": pool.choose_average,
    "tq_add": elementwise.choose,
}


def choose(kernel: str, fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str) -> Variant | None:
    """The fastest exact variant of `kernel` for these parameters (arrays keyed by pointer field), or None to keep
    the generic kernel; `name` prefixes the names of new constant arrays."""
    chooser = CHOOSERS.get(kernel)
    return chooser(fields, arrays, name) if chooser else None


__all__ = ["ConstArray", "Variant", "choose"]
