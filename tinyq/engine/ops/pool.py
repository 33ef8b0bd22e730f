"""MAX_POOL_2D and AVERAGE_POOL_2D: the reader's rules, lowering, the kernel choice (the specialised kernels need
no constant arrays), exact recomputation (C in firmware_stub/runtime/pool/)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from fractions import Fraction

from ..fixedpoint import Rounding, round_half_away, trunc_div
from ..graph import Activation, Graph, Operator, Padding, PoolOptions
from ..schema import BuiltinOperator
from .base import ConstArray, Element, KernelCall, KernelRule, OpDef, OpSpec, Rule, Variant, enum_field, window_check
from .context import INT32_RANGE, LowerContext, fields_of, tflm_padding
from .rounding import clamp, rint_f32

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


def choose_max(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str,
               rounding: Rounding = Rounding.DOUBLE) -> Variant | None:
    """tq_max_pool_c4 for every max pool: the window cut once per pixel, four channels per word."""
    return _variant("tq_max_pool_c4", fields)


def choose_average(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str,
                   rounding: Rounding = Rounding.DOUBLE) -> Variant | None:
    """tq_global_average_pool when the window is the whole input; else tq_average_pool_c4 when a window's sum fits
    16-bit lanes; else None (the generic kernel)."""
    if is_global(fields):
        return _variant("tq_global_average_pool", fields)
    if fields["k_h"] * fields["k_w"] <= LANE_TAPS:
        return _variant("tq_average_pool_c4", fields)
    return None


def parse_options(o) -> PoolOptions:
    return PoolOptions(enum_field(Padding, o.padding, "padding"), o.strideH, o.strideW, o.filterHeight, o.filterWidth,
                       enum_field(Activation, o.fusedActivationFunction, "fused_activation_function"))


def _check(g: Graph, op: Operator) -> str | None:
    src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if src.shape[3] != dst.shape[3]:
        return f"channels change from {src.shape[3]} to {dst.shape[3]}"
    return window_check(g, op, op.options.filter_h, op.options.filter_w, (1, 1))


def lower_pool(ctx: LowerContext, op: Operator, rule: KernelRule) -> KernelCall:
    o: PoolOptions = op.options
    in_t = ctx.int8_act(op, op.inputs[0], "input")
    out_t = ctx.int8_act(op, op.outputs[0], "output")
    ctx.check_batch(op, in_t)
    if in_t.scales != out_t.scales or in_t.zero_points != out_t.zero_points:
        raise ctx.fail(op, "input and output quantization differ; int8 pooling needs them equal")
    _, in_h, in_w, c = in_t.shape
    _, out_h, out_w, out_c = out_t.shape
    if out_c != c:
        raise ctx.fail(op, f"channels change from {c} to {out_c}")
    act_min, act_max = ctx.activation(op, o.activation, out_t)
    fields = dict(in_h=in_h, in_w=in_w, channels=c, out_h=out_h, out_w=out_w, k_h=o.filter_h, k_w=o.filter_w,
                  stride_h=o.stride_h, stride_w=o.stride_w,
                  pad_h=tflm_padding(o.padding, o.stride_h, 1, in_h, o.filter_h, out_h),
                  pad_w=tflm_padding(o.padding, o.stride_w, 1, in_w, o.filter_w, out_w),
                  act_min=act_min, act_max=act_max)
    return ctx.call(op, rule, fields, [])


def _extents(f: Mapping[str, int], arrays) -> tuple:
    return (f["in_h"] * f["in_w"] * f["channels"],), f["out_h"] * f["out_w"] * f["channels"], ()


def _average_overflow(f: Mapping[str, int], arrays) -> str | None:
    area = min(f["k_h"], f["in_h"]) * min(f["k_w"], f["in_w"])
    if area * 128 + area > INT32_RANGE[1]:
        return f"the int32 sum of a {area}-value pooling window could overflow"
    return None


def _window(call: KernelCall, op: Operator, inputs: dict, flat: int):
    f = fields_of(call)
    c, out_w = f["channels"], f["out_w"]
    oy, ox, ch = flat // (out_w * c), (flat // c) % out_w, flat % c
    x = inputs[op.inputs[0]].reshape(f["in_h"], f["in_w"], c).astype(np.int64)
    y0, x0 = oy * f["stride_h"] - f["pad_h"], ox * f["stride_w"] - f["pad_w"]
    window = x[max(0, y0):min(f["in_h"], y0 + f["k_h"]), max(0, x0):min(f["in_w"], x0 + f["k_w"]), ch]
    return f, (0, oy, ox, ch), window


def _recompute_max(graph: Graph, op: Operator, call: KernelCall, inputs: dict, flat: int) -> Element:
    f, coords, window = _window(call, op, inputs, flat)
    top = int(window.max())
    return Element(coords, (Rule("window maximum (no rounding)", clamp(top, f["act_min"], f["act_max"])),), None,
                   None, f"window of {window.size} values, maximum {top}")


def _recompute_average(graph: Graph, op: Operator, call: KernelCall, inputs: dict, flat: int) -> Element:
    f, coords, window = _window(call, op, inputs, flat)
    lo, hi = f["act_min"], f["act_max"]
    total, count = int(window.sum()), int(window.size)
    exact = Fraction(total, count)
    rules = (Rule("ties away from zero (TFLite reference, TFLM, tinyq C)", clamp(round_half_away(float(exact)), lo, hi)),
             Rule("ties to even", clamp(round(exact), lo, hi)),
             Rule("truncation toward zero", clamp(trunc_div(total, count), lo, hi)),
             Rule("float32 scale 1/count, ties to even (XNNPACK)",
                  clamp(rint_f32(np.float32(total) * np.float32(1.0 / count)), lo, hi)))
    return Element(coords, rules, exact, total, f"window sum {total} over {count} values")


MAX_RULE = KernelRule("tq_max_pool", "tq_pool_params", (), _extents, None, choose_max, _recompute_max)
AVERAGE_RULE = KernelRule("tq_average_pool", "tq_pool_params", (), _extents, _average_overflow, choose_average,
                          _recompute_average)
_SPEC = OpSpec((1, 1), options="Pool2DOptionsT", input_ranks=((4,),), check=_check, outputs=1, options_required=True,
               output_ranks=(4,), same_dtype=(0,))

OPS = (
    OpDef(BuiltinOperator.MAX_POOL_2D, "pool", _SPEC, parse_options, lambda ctx, op: lower_pool(ctx, op, MAX_RULE)),
    OpDef(BuiltinOperator.AVERAGE_POOL_2D, "pool", _SPEC, parse_options,
          lambda ctx, op: lower_pool(ctx, op, AVERAGE_RULE)),
)
