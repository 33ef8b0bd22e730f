"""SOFTMAX (int8 in, int8 out with scale 1/256 and zero point -128): the reader's rules, lowering into TFLite's
reference fixed-point parameters, and the exact gemmlowp recomputation (C in firmware_stub/runtime/softmax/)."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..fixedpoint import (INT32_MAX, quantize_multiplier, round_half_away, rounding_divide_by_pot,
                          saturating_rounding_mul_by_pot, srdhm, trunc_div, wrap32)
from ..fixedpoint import Rounding, f32
from ..graph import Graph, Operator, SoftmaxOptions
from ..schema import BuiltinOperator
from .base import Element, KernelCall, KernelRule, OpDef, OpSpec, Rule, same_shape_check
from .context import LowerContext, fields_of
from .rounding import SINGLE, clamp

SCALED_DIFF_INTEGER_BITS = 5
MAX_DEPTH = (1 << 12) - 1  # each exponential is < 2^19 in the kernel's Q12.19 sum, which must fit int32


def _check(g: Graph, op: Operator) -> str | None:
    beta = op.options.beta
    if not (math.isfinite(beta) and beta > 0):
        return f"field beta = {beta} must be finite and > 0"
    return same_shape_check(g, op)


def lower(ctx: LowerContext, op: Operator) -> KernelCall:
    o: SoftmaxOptions = op.options
    in_t = ctx.int8_act(op, op.inputs[0], "input")
    out_t = ctx.int8_act(op, op.outputs[0], "output")
    if abs(out_t.scales[0] - 1.0 / 256) > 1e-6 or out_t.zero_points[0] != -128:
        raise ctx.fail(op, f"int8 softmax output must have scale 1/256 and zero point -128, has "
                           f"{out_t.scales[0]} / {out_t.zero_points[0]}")
    bits = SCALED_DIFF_INTEGER_BITS
    real = min(float(o.beta) * f32(in_t.scales[0]) * float(1 << (31 - bits)), float((1 << 31) - 1))
    multiplier, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise ctx.fail(op, f"softmax input scale {in_t.scales[0]} with beta {o.beta} is too small")
    radius = math.floor(1.0 * ((1 << bits) - 1) * float(1 << (31 - bits)) / float(1 << left_shift))
    depth = in_t.shape[-1]
    if depth > MAX_DEPTH or in_t.size != out_t.size:
        raise ctx.fail(op, f"softmax over {depth} values into {out_t.size} of {in_t.size}: the kernel needs "
                           f"equal sizes and at most {MAX_DEPTH} values per row (int32 sum)")
    fields = dict(rows=in_t.size // depth, depth=depth, input_multiplier=multiplier, input_left_shift=left_shift,
                  diff_min=-radius)
    return ctx.call(op, RULE, fields, [])


def _extents(f: Mapping[str, int], arrays) -> tuple:
    return (f["rows"] * f["depth"],), f["rows"] * f["depth"], ()


def _no_overflow(f: Mapping[str, int], arrays) -> str | None:
    return None


# Softmax in gemmlowp fixed point (TFLite's reference int8 softmax, as firmware_stub/runtime runs it).
_EXP_BARREL = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)


def _exp_neg_quarter(a: int) -> int:
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4_over_4 = saturating_rounding_mul_by_pot(srdhm(x2, x2), -2)
    poly = saturating_rounding_mul_by_pot(srdhm(x4_over_4 + x3, 715827883) + x2, -1)
    return 1895147668 + srdhm(1895147668, x + poly)


def _exp_on_negative_values(a: int, integer_bits: int) -> int:
    fractional = 31 - integer_bits
    quarter = 1 << (fractional - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_neg_quarter(saturating_rounding_mul_by_pot(a_mod, integer_bits))
    remainder = a_mod - a
    for k, m in enumerate(_EXP_BARREL):
        e = k - 2
        if integer_bits > e and remainder & (1 << (fractional + e)):
            result = srdhm(result, m)
    return INT32_MAX if a == 0 else result


def _one_over_one_plus_x(a: int) -> int:
    s = a + INT32_MAX
    half = trunc_div(s + (1 if s >= 0 else -1), 2)
    x = 1515870810 + srdhm(half, -1010580540)
    for _ in range(3):
        x = x + saturating_rounding_mul_by_pot(srdhm(x, (1 << 29) - srdhm(half, x)), 2)
    return saturating_rounding_mul_by_pot(x, 1)


def softmax_fixed_point(row: np.ndarray, multiplier: int, left_shift: int, diff_min: int,
                        integer_bits: int = 5, accum_bits: int = 12,
                        rounding: Rounding = Rounding.DOUBLE) -> list[int]:
    """One softmax row in gemmlowp fixed point, int8 in, int8 out (scale 1/256, zero point -128). The input
    difference is rescaled by MultiplyByQuantizedMultiplierGreaterThanOne, the one step `rounding` changes."""
    top = int(row.max())
    exps = []
    for v in row.astype(np.int64):
        diff = int(v) - top
        rescaled = (rounding.multiply(diff, multiplier, left_shift) if rounding is Rounding.SINGLE
                    else srdhm(wrap32(diff << left_shift), multiplier))
        exps.append(None if diff < diff_min else _exp_on_negative_values(rescaled, integer_bits))
    total = sum(saturating_rounding_mul_by_pot(e, -accum_bits) for e in exps if e is not None)
    headroom = 32 - total.bit_length() if total > 0 else 32
    scale = _one_over_one_plus_x(wrap32(((total << headroom) & 0xFFFFFFFF) - (1 << 31)))
    bits_over_unit = accum_bits - headroom
    return [-128 if e is None else
            clamp(rounding_divide_by_pot(srdhm(scale, e), bits_over_unit + 31 - 8) - 128, -128, 127)
            for e in exps]


def _recompute(graph: Graph, op: Operator, call: KernelCall, inputs: dict, flat: int) -> Element:
    f = fields_of(call)
    depth = f["depth"]
    r, c = flat // depth, flat % depth
    row = inputs[op.inputs[0]].reshape(-1, depth)[r]
    fixed = softmax_fixed_point(row, f["input_multiplier"], f["input_left_shift"], f["diff_min"])[c]
    single = softmax_fixed_point(row, f["input_multiplier"], f["input_left_shift"], f["diff_min"],
                                 rounding=Rounding.SINGLE)[c]
    t_in = graph.tensors[op.inputs[0]]
    beta = op.options.beta
    logits = beta * float(np.float32(t_in.scales[0])) * (row.astype(np.float64) - row.max())
    probs = np.exp(logits) / np.exp(logits).sum()
    exact = float(probs[c]) * 256.0 - 128.0
    rules = (Rule("fixed point, gemmlowp exp and reciprocal (TFLite reference, TFLM, tinyq C)", fixed),
             Rule("float, ties away from zero", clamp(round_half_away(exact), -128, 127)),
             Rule("float, ties to even", clamp(int(np.rint(exact)), -128, 127)),
             Rule(f"{SINGLE}: fixed point, the input rescale rounded once", single))
    return Element((r, c), rules, exact, None, f"row of {depth} inputs, maximum {int(row.max())}")


RULE = KernelRule("tq_softmax", "tq_softmax_params", (), _extents, _no_overflow, None, _recompute)

OPS = (
    OpDef(BuiltinOperator.SOFTMAX, "softmax",
          OpSpec((1, 1), options="SoftmaxOptionsT", options_required=True, input_ranks=((1, 2, 3, 4, 5, 6, 7, 8),),
                 check=_check),
          lambda o: SoftmaxOptions(float(o.beta)), lower),
)
