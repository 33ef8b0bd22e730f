"""SQUARED_DIFFERENCE (int8, with broadcasting): TFLM's arithmetic (both inputs rescaled to a common scale with 7
bits of headroom, their difference squared, requantized), the reader's rules, the overflow proof and the exact
recomputation (C in firmware_stub/runtime/squared_difference/)."""

from __future__ import annotations

from fractions import Fraction
from typing import Mapping

import numpy as np

from ..fixedpoint import INT32_MAX, f32, quantize_multiplier, round_half_away
from ..graph import Graph, Operator
from ..schema import BuiltinOperator
from .base import Element, KernelCall, KernelRule, OpDef, OpSpec, Rule, broadcast_check
from .context import LowerContext, fields_of, requant_problem
from .elementwise import broadcast_fields
from .rounding import DOUBLE, NEAREST, SINGLE, clamp, multiply_double_rounding, multiply_single_rounding

LEFT_SHIFT = 7  # TFLM's int8 headroom: (2 * 255 << 7)^2 / 4 still fits int32


def lower(ctx: LowerContext, op: Operator) -> KernelCall:
    name = f"op{op.index}"
    consts: list = []
    a = ctx.int8_operand(op, op.inputs[0], "input 1", f"{name}_in1", consts)
    b = ctx.int8_operand(op, op.inputs[1], "input 2", f"{name}_in2", consts)
    out_t = ctx.int8_act(op, op.outputs[0], "output")
    if a.is_constant and b.is_constant:
        raise ctx.fail(op, "both inputs are constant; nothing to compute at run time")
    twice_max = 2.0 * max(f32(a.scales[0]), f32(b.scales[0]))
    m1, s1 = quantize_multiplier(f32(a.scales[0]) / twice_max)
    m2, s2 = quantize_multiplier(f32(b.scales[0]) / twice_max)
    mo, so = quantize_multiplier(twice_max * twice_max / (float(1 << (2 * LEFT_SHIFT)) * f32(out_t.scales[0])))
    fields = dict(broadcast_fields(ctx, op, a, b, out_t), left_shift=LEFT_SHIFT, in1_offset=-a.zero_points[0],
                  in1_mult=m1, in1_shift=s1, in2_offset=-b.zero_points[0], in2_mult=m2, in2_shift=s2,
                  out_offset=out_t.zero_points[0], out_mult=mo, out_shift=so)
    return ctx.call(op, RULE, fields, [c for _, c in consts], inputs=op.inputs[:2],
                    const_inputs=tuple((i, c.name) for i, c in consts))


def _extents(f: Mapping[str, int], arrays) -> tuple:
    dims = [f[f"n{k}"] for k in range(4)]
    span = [1 + sum((d - 1) * f[f"{side}{k}"] for k, d in enumerate(dims)) for side in ("a", "b")]
    return tuple(span), int(np.prod(dims)), ()


def _overflow(f: Mapping[str, int], arrays) -> str | None:
    """Each rescaled input is at most 255 << 7 times its multiplier (< 1, a right shift); their difference
    squared, then requantized, must fit int32."""
    if f["in1_shift"] > 0 or f["in2_shift"] > 0:
        return "input rescaling could overflow int32"
    sides = [((255 << f["left_shift"]) * f[f"in{i}_mult"] >> 31 >> -f[f"in{i}_shift"]) + 1 for i in (1, 2)]
    square = sum(sides) ** 2
    if square > INT32_MAX:
        return f"the squared difference could reach {square}"
    return requant_problem(np.array([square]), np.array([f["out_mult"]]), np.array([f["out_shift"]]),
                           f["out_offset"])


def _recompute(graph: Graph, op: Operator, call: KernelCall, inputs: dict, flat: int) -> Element:
    f = fields_of(call)
    to = graph.tensors[op.outputs[0]]
    coords = tuple(int(v) for v in np.unravel_index(flat, to.shape))
    c4 = (0,) * (4 - len(coords)) + coords
    xa = int(inputs[op.inputs[0]].reshape(-1)[sum(c * f[f"a{k}"] for k, c in enumerate(c4))])
    xb = int(inputs[op.inputs[1]].reshape(-1)[sum(c * f[f"b{k}"] for k, c in enumerate(c4))])

    def pipeline(mul) -> int:
        d = (mul((xa + f["in1_offset"]) << f["left_shift"], f["in1_mult"], f["in1_shift"])
             - mul((xb + f["in2_offset"]) << f["left_shift"], f["in2_mult"], f["in2_shift"]))
        return clamp(mul(d * d, f["out_mult"], f["out_shift"]) + f["out_offset"], -128, 127)

    t1, t2 = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    diff = (Fraction(float(np.float32(t1.scales[0]))) * (xa - t1.zero_points[0])
            - Fraction(float(np.float32(t2.scales[0]))) * (xb - t2.zero_points[0]))
    exact = diff * diff / Fraction(float(np.float32(to.scales[0]))) + f["out_offset"]
    rules = (Rule(DOUBLE, pipeline(multiply_double_rounding)), Rule(SINGLE, pipeline(multiply_single_rounding)),
             Rule(NEAREST, clamp(round_half_away(float(exact)), -128, 127)))
    return Element(coords, rules, exact, None, f"inputs {xa} and {xb}, rescaled with {f['left_shift']} bits of "
                                               f"headroom, difference squared")


RULE = KernelRule("tq_squared_difference", "tq_sqdiff_params", (), _extents, _overflow, None, _recompute)

OPS = (
    OpDef(BuiltinOperator.SQUARED_DIFFERENCE, "squared_difference",
          OpSpec((2, 2), same_dtype=(0, 1), check=broadcast_check), None, lower),
)
