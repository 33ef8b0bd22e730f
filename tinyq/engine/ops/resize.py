"""RESIZE_NEAREST_NEIGHBOR: TFLM's source row and column of every output pixel, computed at generation time in
float32 as TFLM does, so the C kernel only copies (C in firmware_stub/runtime/shape/)."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..fixedpoint import round_half_away
from ..graph import Operator, ResizeOptions
from ..schema import BuiltinOperator
from .base import ConstArray, KernelCall, KernelRule, OpDef, OpSpec
from .context import LowerContext


def source_indices(out_size: int, in_size: int, o: ResizeOptions) -> np.ndarray:
    """The input index each output index reads along one axis."""
    f = np.float32
    scale = f(in_size - 1) / f(out_size - 1) if o.align_corners and out_size > 1 else f(in_size) / f(out_size)
    offset = f(0.5) if o.half_pixel_centers else f(0.0)
    idx = []
    for i in range(out_size):
        v = float((f(i) + offset) * scale)
        k = min(round_half_away(v) if o.align_corners else math.floor(v), in_size - 1)
        idx.append(max(0, k) if o.half_pixel_centers else k)
    return np.array(idx, np.int32)


def lower(ctx: LowerContext, op: Operator) -> KernelCall:
    in_t = ctx.int8_act(op, op.inputs[0], "input")
    out_t = ctx.int8_act(op, op.outputs[0], "output")
    ctx.check_batch(op, in_t)
    if len(in_t.shape) != 4 or len(out_t.shape) != 4 or in_t.shape[3] != out_t.shape[3]:
        raise ctx.fail(op, f"expects 4-D NHWC tensors with equal channels, has {in_t.shape} -> {out_t.shape}")
    o: ResizeOptions = ctx.options(op, ResizeOptions)
    _, in_h, in_w, c = in_t.shape
    _, out_h, out_w, _ = out_t.shape
    arrays = [ConstArray(f"op{op.index}_rows", "int32_t", source_indices(out_h, in_h, o)),
              ConstArray(f"op{op.index}_cols", "int32_t", source_indices(out_w, in_w, o))]
    fields = dict(in_w=in_w, channels=c, out_h=out_h, out_w=out_w)
    return ctx.call(op, RULE, fields, arrays)


def _extents(f: Mapping[str, int], arrays: Mapping[str, np.ndarray]) -> tuple:
    rows, cols = arrays["rows"].astype(np.int64), arrays["cols"].astype(np.int64)
    if rows.min(initial=0) < 0 or cols.min(initial=0) < 0:
        return (1 << 62,), 0, (f["out_h"], f["out_w"])  # a negative index: refused by the bounds proof
    read = (int(rows.max(initial=0)) * f["in_w"] + int(cols.max(initial=0)) + 1) * f["channels"]
    return (read,), f["out_h"] * f["out_w"] * f["channels"], (f["out_h"], f["out_w"])


def _no_overflow(f: Mapping[str, int], arrays) -> str | None:
    return None


RULE = KernelRule("tq_resize_nearest", "tq_resize_params", ("rows", "cols"), _extents, _no_overflow)

OPS = (
    OpDef(BuiltinOperator.RESIZE_NEAREST_NEIGHBOR, "resize",
          OpSpec((2, 2), options="ResizeNearestNeighborOptionsT", options_required=True, same_dtype=(0,)),
          lambda o: ResizeOptions(bool(o.alignCorners), bool(o.halfPixelCenters)), lower),
)
