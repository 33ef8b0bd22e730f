"""The rounding rules int8 runtimes are known to differ by, for the families' exact recomputation of one output
element (what `tinyq diff` explains a divergence with). The primitives are engine/fixedpoint.py."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..fixedpoint import mul_by_quantized_multiplier, mul_by_quantized_multiplier_single, round_half_away
from ..graph import Graph, Operator
from .base import Rule

DOUBLE = "double rounding (TFLite reference, TFLM, tinyq C)"
SINGLE = "single rounding (TFLITE_SINGLE_ROUNDING)"
NEAREST = "exact value, ties away from zero"


def multiply_double_rounding(x: int, multiplier: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier as TFLM and tinyq's C run it: SRDHM, then a rounding shift."""
    return mul_by_quantized_multiplier(x, multiplier, shift)


def multiply_single_rounding(x: int, multiplier: int, shift: int) -> int:
    """The TFLITE_SINGLE_ROUNDING variant: one 64-bit product, one round-half-up shift."""
    return mul_by_quantized_multiplier_single(x, multiplier, shift)


def rint_f32(value: float) -> int:
    return int(np.rint(np.float32(value)))


def clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def requantize_rules(acc: int, mult: int, shift: int, scale: Fraction, zp: int, lo: int, hi: int,
                     ) -> tuple[tuple[Rule, ...], Fraction]:
    """An accumulator requantized under each rule, and the exact value acc * scale + zp."""
    exact = acc * scale + zp
    rules = (
        Rule(DOUBLE, clamp(multiply_double_rounding(acc, mult, shift) + zp, lo, hi)),
        Rule(SINGLE, clamp(multiply_single_rounding(acc, mult, shift) + zp, lo, hi)),
        Rule("float32 requantization, ties to even (XNNPACK)",
             clamp(rint_f32(np.float32(acc) * np.float32(float(scale))) + zp, lo, hi)),
        Rule(NEAREST, clamp(round_half_away(float(exact)), lo, hi)),
    )
    return rules, exact


def channel_scale(graph: Graph, op: Operator, channel: int) -> Fraction:
    """in_scale * weight_scale[channel] / out_scale, exactly, from the float32 scales of the model."""
    s_in = graph.tensors[op.inputs[0]].scales[0]
    w = graph.tensors[op.inputs[1]].scales
    s_out = graph.tensors[op.outputs[0]].scales[0]
    return Fraction(float(np.float32(s_in))) * Fraction(float(np.float32(w[channel if len(w) > 1 else 0]))) / \
        Fraction(float(np.float32(s_out)))
