"""ADD, SUB, MUL, MAXIMUM, MINIMUM (two int8 inputs, each with its own quantization, with broadcasting): the
reader's rules, lowering, the same-shape ADD's specialised kernel and its tables, exact recomputation of ADD
(C in firmware_stub/runtime/elementwise/).

The generic tq_add rescales each input as requant((x + offset) << left_shift), a function of the int8 x alone, so
generation time replays that arithmetic into a 256-entry int32 table per input (2 KB of flash per ADD, taken
whenever the chooser applies); each element then costs two table loads, one add and the output's
requantization as one rounding multiply-accumulate (SMMLAR), a sign correction and a shift."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from fractions import Fraction

from ..fixedpoint import INT32_MAX, Rounding, f32, quantize_multiplier, round_half_away, wrap32
from ..graph import Activation, ActivationOptions, AddOptions, Graph, Operator
from ..schema import BuiltinOperator
from .base import (ConstArray, Element, KernelCall, KernelRule, OpDef, OpSpec, Rule, Variant, broadcast_check,
                   enum_field)
from .context import LowerContext, fields_of, requant_problem
from .rounding import DOUBLE, NEAREST, SINGLE, clamp, multiply_double_rounding, multiply_single_rounding

ADD_LEFT_SHIFT = 20

TABLE_SIZE = 256  # one int32 per int8 input value, index x + 128


def input_table(offset: int, mult: int, shift: int, left_shift: int,
                rounding: Rounding = Rounding.DOUBLE) -> np.ndarray:
    """The generic tq_add's rescaled input for every int8 x, as int64 [256] indexed by x + 128: TFLite's
    MultiplyByQuantizedMultiplier (under `rounding`) of (x + offset) << left_shift, wrapped to int32 as the C
    shift wraps."""
    return np.array([rounding.multiply(wrap32((x + offset) << left_shift), mult, shift)
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


def choose(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str,
           rounding: Rounding = Rounding.DOUBLE) -> Variant | None:
    """tq_add_lut (full int8 output range) or tq_add_lut_clamp (a fused activation narrows it) when the output
    rescale has output_acc's exact form; None (the generic kernel) else. The tables hold twice the generic's
    rescaled inputs, so the kernel's SMMLAR yields the doubling high multiply with its rounding (single rounding:
    SMMLA, the truncated high word, with the same accumulator; tq_elementwise.c)."""
    tables = [input_table(int(fields[f"in{k}_offset"]), int(fields[f"in{k}_mult"]), int(fields[f"in{k}_shift"]),
                          int(fields["left_shift"]), rounding) for k in (1, 2)]
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


# ---- lowering ----

def _add_multipliers(s1: float, s2: float, so: float) -> dict:
    """ADD's input and output rescales (TFLM combines the scales in double)."""
    twice_max = 2.0 * max(f32(s1), f32(s2))
    m1, m2 = quantize_multiplier(f32(s1) / twice_max), quantize_multiplier(f32(s2) / twice_max)
    mo = quantize_multiplier(twice_max / (float(1 << ADD_LEFT_SHIFT) * f32(so)))
    return dict(left_shift=ADD_LEFT_SHIFT, in1_mult=m1[0], in1_shift=m1[1], in2_mult=m2[0], in2_shift=m2[1],
                out_mult=mo[0], out_shift=mo[1])


def _sub_multipliers(s1: float, s2: float, so: float) -> dict:
    """SUB's rescales: TFLM's SUB combines the scales in float32, ADD in double."""
    f1, f2, fo = np.float32(s1), np.float32(s2), np.float32(so)
    twice_max = np.float32(2) * max(f1, f2)
    m1, m2 = quantize_multiplier(float(f1 / twice_max)), quantize_multiplier(float(f2 / twice_max))
    mo = quantize_multiplier(float(twice_max / (np.float32(1 << ADD_LEFT_SHIFT) * fo)))
    return dict(left_shift=ADD_LEFT_SHIFT, in1_mult=m1[0], in1_shift=m1[1], in2_mult=m2[0], in2_shift=m2[1],
                out_mult=mo[0], out_shift=mo[1])


def _mul_multipliers(s1: float, s2: float, so: float) -> dict:
    return dict(zip(("out_mult", "out_shift"), quantize_multiplier(f32(s1) * f32(s2) / f32(so))))


def _no_multipliers(s1: float, s2: float, so: float) -> dict:
    return {}


def broadcast_fields(ctx: LowerContext, op: Operator, a, b, out) -> dict:
    """Output dims and each input's element strides per output dim (0 where it broadcasts), all 4-D."""
    dims, sa, sb = ctx.shape4(op, out), ctx.shape4(op, a), ctx.shape4(op, b)
    fields = {f"n{k}": d for k, d in enumerate(dims)}
    for prefix, shape, t in (("a", sa, a), ("b", sb, b)):
        strides = [int(np.prod(shape[k + 1:])) for k in range(4)]
        for k in range(4):
            if shape[k] != dims[k]:
                if shape[k] != 1:
                    raise ctx.fail(op, f"input {t.name!r} of shape {t.shape} does not broadcast to {out.shape}")
                strides[k] = 0
        fields.update({f"{prefix}{k}": s for k, s in enumerate(strides)})
    return fields


def lower_binary(ctx: LowerContext, op: Operator, rule: KernelRule, multipliers) -> KernelCall:
    """The broadcasting kernel `rule` with each input's quantization and the op's `multipliers`."""
    name = f"op{op.index}"
    consts: list = []
    a = ctx.int8_operand(op, op.inputs[0], "input 1", f"{name}_in1", consts)
    b = ctx.int8_operand(op, op.inputs[1], "input 2", f"{name}_in2", consts)
    out_t = ctx.int8_act(op, op.outputs[0], "output")
    if a.is_constant and b.is_constant:
        raise ctx.fail(op, "both inputs are constant; nothing to compute at run time")
    fields = broadcast_fields(ctx, op, a, b, out_t)
    act_min, act_max = ctx.activation(op, getattr(op.options, "activation", Activation.NONE), out_t)
    arith = dict(left_shift=0, in1_offset=-a.zero_points[0], in1_mult=0, in1_shift=0,
                 in2_offset=-b.zero_points[0], in2_mult=0, in2_shift=0, out_offset=out_t.zero_points[0],
                 out_mult=0, out_shift=0, act_min=act_min, act_max=act_max)
    arith.update(multipliers(a.scales[0], b.scales[0], out_t.scales[0]))
    return ctx.call(op, rule, {**fields, **arith}, [c for _, c in consts], inputs=op.inputs[:2],
                    const_inputs=tuple((i, c.name) for i, c in consts))


def lower_add(ctx: LowerContext, op: Operator) -> KernelCall:
    """Same-shape ADD of two activations: tq_add; any other ADD: the broadcasting kernel."""
    if any(ctx.g.tensors[i].is_constant for i in op.inputs[:2]):
        return lower_binary(ctx, op, ADD_BROADCAST_RULE, _add_multipliers)
    a = ctx.int8_act(op, op.inputs[0], "input 1")
    b = ctx.int8_act(op, op.inputs[1], "input 2")
    out_t = ctx.int8_act(op, op.outputs[0], "output")
    if a.shape != b.shape or a.shape != out_t.shape:
        return lower_binary(ctx, op, ADD_BROADCAST_RULE, _add_multipliers)
    m = _add_multipliers(a.scales[0], b.scales[0], out_t.scales[0])
    act_min, act_max = ctx.activation(op, op.options.activation, out_t)
    fields = dict(size=out_t.size, left_shift=ADD_LEFT_SHIFT, in1_offset=-a.zero_points[0], in1_mult=m["in1_mult"],
                  in1_shift=m["in1_shift"], in2_offset=-b.zero_points[0], in2_mult=m["in2_mult"],
                  in2_shift=m["in2_shift"], out_offset=out_t.zero_points[0], out_mult=m["out_mult"],
                  out_shift=m["out_shift"], act_min=act_min, act_max=act_max)
    return ctx.call(op, ADD_RULE, fields, [], inputs=op.inputs[:2])


# ---- proofs ----

def _add_extents(f: Mapping[str, int], arrays) -> tuple:
    return (f["size"], f["size"]), f["size"], ()


def _broadcast_extents(f: Mapping[str, int], arrays) -> tuple:
    dims = [f[f"n{k}"] for k in range(4)]
    span = [1 + sum((d - 1) * f[f"{side}{k}"] for k, d in enumerate(dims)) for side in ("a", "b")]
    return tuple(span), int(np.prod(dims)), ()


def _rescale_overflow(f: Mapping[str, int], arrays) -> str | None:
    """ADD and SUB: both inputs rescaled with left_shift bits of headroom, summed, requantized."""
    x = 255 << f["left_shift"]
    sides = [((x * f[f"in{i}_mult"]) >> 31 >> max(-f[f"in{i}_shift"], 0)) + 2 for i in (1, 2)]
    if x > INT32_MAX or f["in1_shift"] > 0 or f["in2_shift"] > 0:
        return "input rescaling could overflow int32"
    return requant_problem(np.array([sum(sides)]), np.array([f["out_mult"]]), np.array([f["out_shift"]]),
                           f["out_offset"])


def _no_overflow(f: Mapping[str, int], arrays) -> str | None:
    return None


# ---- exact recomputation ----

def _recompute_add(graph: Graph, op: Operator, call: KernelCall, inputs: dict, flat: int) -> Element:
    f = fields_of(call)
    xa, xb = int(inputs[op.inputs[0]].reshape(-1)[flat]), int(inputs[op.inputs[1]].reshape(-1)[flat])
    sa_, sb_ = (xa + f["in1_offset"]) << f["left_shift"], (xb + f["in2_offset"]) << f["left_shift"]
    lo, hi, zp = f["act_min"], f["act_max"], f["out_offset"]

    def pipeline(mul) -> int:
        s = mul(sa_, f["in1_mult"], f["in1_shift"]) + mul(sb_, f["in2_mult"], f["in2_shift"])
        return clamp(mul(s, f["out_mult"], f["out_shift"]) + zp, lo, hi)

    t1, t2, to = (graph.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    exact = (Fraction(float(np.float32(t1.scales[0]))) * (xa - t1.zero_points[0]) +
             Fraction(float(np.float32(t2.scales[0]))) * (xb - t2.zero_points[0])) / \
        Fraction(float(np.float32(to.scales[0]))) + zp
    rules = (Rule(DOUBLE, pipeline(multiply_double_rounding)), Rule(SINGLE, pipeline(multiply_single_rounding)),
             Rule(NEAREST, clamp(round_half_away(float(exact)), lo, hi)))
    return Element(tuple(int(v) for v in np.unravel_index(flat, to.shape)), rules, exact, None,
                   f"inputs {xa} and {xb}, each rescaled with {f['left_shift']} bits of headroom")


def _activation_options(o) -> ActivationOptions:
    return ActivationOptions(enum_field(Activation, o.fusedActivationFunction, "fused_activation_function"))


ADD_RULE = KernelRule("tq_add", "tq_add_params", (), _add_extents, _rescale_overflow, choose, _recompute_add)
ADD_BROADCAST_RULE = KernelRule("tq_add_broadcast", "tq_binary_params", (), _broadcast_extents, _rescale_overflow)
SUB_RULE = KernelRule("tq_sub", "tq_binary_params", (), _broadcast_extents, _rescale_overflow)
MUL_RULE = KernelRule("tq_mul", "tq_binary_params", (), _broadcast_extents, _no_overflow)
MAXIMUM_RULE = KernelRule("tq_maximum", "tq_binary_params", (), _broadcast_extents, _no_overflow)
MINIMUM_RULE = KernelRule("tq_minimum", "tq_binary_params", (), _broadcast_extents, _no_overflow)

_MINMAX = OpSpec((2, 2), same_dtype=(0, 1), check=broadcast_check)

OPS = (
    OpDef(BuiltinOperator.ADD, "elementwise",
          OpSpec((2, 2), options="AddOptionsT", same_dtype=(0, 1), check=broadcast_check),
          lambda o: AddOptions(enum_field(Activation, o.fusedActivationFunction, "fused_activation_function")),
          lower_add),
    OpDef(BuiltinOperator.SUB, "elementwise", OpSpec((2, 2), options="SubOptionsT", same_dtype=(0, 1),
                                                     check=broadcast_check), _activation_options,
          lambda ctx, op: lower_binary(ctx, op, SUB_RULE, _sub_multipliers)),
    OpDef(BuiltinOperator.MUL, "elementwise", OpSpec((2, 2), options="MulOptionsT", same_dtype=(0, 1),
                                                     check=broadcast_check), _activation_options,
          lambda ctx, op: lower_binary(ctx, op, MUL_RULE, _mul_multipliers)),
    OpDef(BuiltinOperator.MAXIMUM, "elementwise", _MINMAX, None,
          lambda ctx, op: lower_binary(ctx, op, MAXIMUM_RULE, _no_multipliers)),
    OpDef(BuiltinOperator.MINIMUM, "elementwise", _MINMAX, None,
          lambda ctx, op: lower_binary(ctx, op, MINIMUM_RULE, _no_multipliers)),
)
