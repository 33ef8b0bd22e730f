"""LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, RELU, RELU6: one int8 input, one int8 output, so TFLM's arithmetic is
replayed at generation time into a 256-entry table (engine/lut.py) and the C kernel is one load per element
(C in firmware_stub/runtime/activation/). QUANTIZE (int8 -> int8) uses the same table kernel (ops/quantize.py)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Mapping

import numpy as np

from .. import lut
from ..graph import Graph, LeakyReluOptions, Operator, Tensor
from ..schema import BuiltinOperator
from .base import ConstArray, KernelCall, KernelRule, OpDef, OpSpec, same_shape_check
from .context import LowerContext

Table = Callable[[LowerContext, Operator, Tensor, Tensor], np.ndarray]


def _extents(f: Mapping[str, int], arrays) -> tuple:
    return (f["size"],), f["size"], (256,)


def _no_overflow(f: Mapping[str, int], arrays) -> str | None:
    return None


RULE = KernelRule("tq_lut", "tq_lut_params", ("table",), _extents, _no_overflow)


def lower_table(ctx: LowerContext, op: Operator, table: Table) -> KernelCall:
    """The op as tq_lut over its 256-entry `table` of the int8 input's every value."""
    in_t = ctx.int8_act(op, op.inputs[0], "input")
    out_t = ctx.int8_act(op, op.outputs[0], "output")
    if in_t.size != out_t.size:
        raise ctx.fail(op, f"input {in_t.shape} and output {out_t.shape} differ in size")
    try:
        values = table(ctx, op, in_t, out_t)
    except (ValueError, OverflowError) as exc:  # a parameter TFLM's arithmetic cannot represent
        raise ctx.fail(op, str(exc)) from exc
    return ctx.call(op, RULE, dict(size=in_t.size), [ConstArray(f"op{op.index}_table", "int8_t", values)])


def _q(t: Tensor) -> tuple[float, int]:
    return t.scales[0], t.zero_points[0]


def _logistic(ctx: LowerContext, op: Operator, i: Tensor, o: Tensor) -> np.ndarray:
    if o.zero_points[0] != -128:
        raise ctx.fail(op, f"int8 logistic output must have zero point -128 (TFLM's requirement), has "
                           f"{o.zero_points[0]}")
    return lut.logistic(*_q(i), ctx.rounding)


def _leaky_relu(ctx: LowerContext, op: Operator, i: Tensor, o: Tensor) -> np.ndarray:
    return lut.leaky_relu(*_q(i), *_q(o), ctx.options(op, LeakyReluOptions).alpha, ctx.rounding)


def _leaky_relu_check(g: Graph, op: Operator) -> str | None:
    alpha = op.options.alpha
    if not math.isfinite(alpha):
        return f"field alpha = {alpha} must be finite"
    return same_shape_check(g, op)


def _table_op(code: int, table: Table, options=None, spec: OpSpec | None = None) -> OpDef:
    return OpDef(code, "activation", spec, options, lambda ctx, op: lower_table(ctx, op, table))


_ONE_IN = OpSpec((1, 1), same_dtype=(0,), check=same_shape_check)

OPS = (
    _table_op(BuiltinOperator.LOGISTIC, _logistic, spec=_ONE_IN),
    _table_op(BuiltinOperator.TANH, lambda ctx, op, i, o: lut.tanh(*_q(i), ctx.rounding), spec=_ONE_IN),
    _table_op(BuiltinOperator.HARD_SWISH, lambda ctx, op, i, o: lut.hard_swish(*_q(i), *_q(o)), spec=_ONE_IN),
    _table_op(BuiltinOperator.LEAKY_RELU, _leaky_relu, lambda o: LeakyReluOptions(float(o.alpha)),
              OpSpec((1, 1), options="LeakyReluOptionsT", options_required=True, same_dtype=(0,),
                     check=_leaky_relu_check)),
    _table_op(BuiltinOperator.RELU, lambda ctx, op, i, o: lut.relu(*_q(i), *_q(o), ctx.rounding), spec=_ONE_IN),
    _table_op(BuiltinOperator.RELU6, lambda ctx, op, i, o: lut.relu6(*_q(i)), spec=_ONE_IN),
)
