"""MEAN over contiguous axes (GlobalAveragePooling1D/2D): TFLM's QuantizedMeanOrSum, lowered and proven
(C in firmware_stub/runtime/reduce/)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..fixedpoint import f32, quantize_multiplier
from ..graph import Operator, ReducerOptions
from ..schema import BuiltinOperator
from .base import KernelCall, KernelRule, OpDef, OpSpec
from .context import INT32_RANGE, LowerContext


def lower(ctx: LowerContext, op: Operator) -> KernelCall:
    in_t = ctx.int8_act(op, op.inputs[0], "input")
    out_t = ctx.int8_act(op, op.outputs[0], "output")
    rank = len(in_t.shape)
    axes = sorted({int(a) % rank for a in ctx.const_ints(op, op.inputs[1], "axis")}) if rank else []
    if not axes or axes != list(range(axes[0], axes[-1] + 1)):
        raise ctx.fail(op, f"reduces axes {axes} of {in_t.shape}; only one contiguous run of axes is supported")
    outer = int(np.prod(in_t.shape[:axes[0]]))
    count = int(np.prod(in_t.shape[axes[0]:axes[-1] + 1]))
    inner = int(np.prod(in_t.shape[axes[-1] + 1:]))
    if outer * inner != out_t.size:
        raise ctx.fail(op, f"output {out_t.shape} does not fit reducing {in_t.shape} over axes {axes}")
    mult, shift = quantize_multiplier(f32(in_t.scales[0]) / f32(out_t.scales[0]))
    pot = min(count.bit_length() - 1, 32, 31 + shift)
    mult = (mult << pot) // count
    zp_sum = in_t.zero_points[0] * count
    if not INT32_RANGE[0] <= zp_sum <= INT32_RANGE[1]:
        raise ctx.fail(op, f"{count} values per mean overflow int32")
    fields = dict(outer=outer, count=count, inner=inner, input_zp_sum=zp_sum, mult=mult, shift=shift - pot,
                  output_offset=out_t.zero_points[0])
    return ctx.call(op, RULE, fields, [])


def _extents(f: Mapping[str, int], arrays) -> tuple:
    return (f["outer"] * f["count"] * f["inner"],), f["outer"] * f["inner"], ()


def _overflow(f: Mapping[str, int], arrays) -> str | None:
    if f["count"] * 128 + abs(f["input_zp_sum"]) > INT32_RANGE[1]:
        return f"the int32 sum of {f['count']} values could overflow"
    return None


RULE = KernelRule("tq_mean", "tq_mean_params", (), _extents, _overflow)

OPS = (
    OpDef(BuiltinOperator.MEAN, "reduce", OpSpec((2, 2), options="ReducerOptionsT", same_dtype=(0,)),
          lambda o: ReducerOptions(bool(o.keepDims)), lower),
)
