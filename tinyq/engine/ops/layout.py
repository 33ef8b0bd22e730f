"""TRANSPOSE, SLICE, STRIDED_SLICE, SPLIT, SPLIT_V, TILE and GATHER: data movement with unchanged quantization.

Every op but GATHER lowers to one strided copy (`tq_strided_copy`: the output in row-major order read from the
input at a base offset and per-dimension strides, negative for a backwards slice, 0 where TILE repeats); SPLIT and
SPLIT_V lower to one copy per output. GATHER reads constant indices, each proven inside its axis when the C is
generated. The reader's rules (layout_rules.py) are TFLM's Prepare checks; the C is in firmware_stub/runtime/layout/.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..graph import Graph, Operator
from ..schema import BuiltinOperator
from .base import ConstArray, Element, KernelCall, KernelRule, OpDef, OpSpec, Rule
from .context import LowerContext, array_of, fields_of
from .layout_rules import (GatherOptions, StridedSliceOptions, axis_of, gather_check, gather_shape,
                           gather_options, row_strides, slice_begin_size, slice_check, split_check, split_data,
                           split_options, split_v_check, strided_slice_axes, strided_slice_check, strided_slice_options,
                           tile_check, transpose_check)

COPY_DIMS = 8  # the strided copy's dimensions after merging (tq_layout.h)


def _view(ctx: LowerContext, op: Operator, base: int, dims, strides) -> dict[str, int]:
    """The strided copy's fields for an output of `dims` read at `strides` from `base`: unit dimensions dropped,
    neighbours that step through memory as one merged, the rest padded in front with unit dimensions."""
    merged: list[list[int]] = []
    for n, s in zip(dims, strides):
        if n == 1:
            continue
        if merged and merged[-1][1] == n * s:
            merged[-1] = [merged[-1][0] * n, s]
        else:
            merged.append([int(n), int(s)])
    if len(merged) > COPY_DIMS:
        raise ctx.fail(op, f"the copy needs {len(merged)} dimensions after merging; the kernel takes {COPY_DIMS}")
    merged = merged or [[1, 1]]  # a single element
    merged = [[1, 0]] * (COPY_DIMS - len(merged)) + merged
    return {"base": int(base), **{f"n{k}": n for k, (n, _) in enumerate(merged)},
            **{f"s{k}": s for k, (_, s) in enumerate(merged)}}


def _copy(ctx: LowerContext, op: Operator, base: int, dims, strides, output: int | None = None,
          source: int | None = None) -> KernelCall:
    out = op.outputs[0] if output is None else output
    ctx.int8_act(op, out, "output")
    return ctx.call(op, COPY_RULE, _view(ctx, op, base, dims, strides), [], output=out,
                    inputs=(op.inputs[0] if source is None else source,))


def _source(ctx: LowerContext, op: Operator, tensor: int | None = None) -> tuple:
    src = ctx.int8_act(op, op.inputs[0] if tensor is None else tensor, "input")
    return src, row_strides(src.shape)


def lower_transpose(ctx: LowerContext, op: Operator) -> KernelCall:
    src, st = _source(ctx, op)
    perm = [int(p) for p in ctx.const_ints(op, op.inputs[1], "perm")]
    return _copy(ctx, op, 0, [src.shape[p] for p in perm], [st[p] for p in perm])


def lower_slice(ctx: LowerContext, op: Operator) -> KernelCall:
    src, st = _source(ctx, op)
    begin = ctx.const_ints(op, op.inputs[1], "begin")
    size = ctx.const_ints(op, op.inputs[2], "size")
    begin, size = slice_begin_size(src.shape, begin, size)
    return _copy(ctx, op, sum(b * s for b, s in zip(begin, st)), size, st)


def lower_strided_slice(ctx: LowerContext, op: Operator) -> KernelCall:
    src, st = _source(ctx, op)
    o: StridedSliceOptions = ctx.options(op, StridedSliceOptions)
    for field in ("ellipsis_mask", "new_axis_mask", "offset"):
        if getattr(o, field):
            raise ctx.fail(op, f"field {field} = {int(getattr(o, field))} is not supported: TFLM ignores it, so "
                               f"its result would not be the model's")
    begin, end, strides = (ctx.const_ints(op, op.inputs[k], role) for k, role in
                           ((1, "begin"), (2, "end"), (3, "strides")))
    axes = strided_slice_axes(src.shape, begin, end, strides, o)
    for k, (start, count, _) in enumerate(axes):
        if o.shrink_axis_mask >> k & 1 and count != 1:
            raise ctx.fail(op, f"shrink_axis_mask takes axis {k} but begin {int(begin[k])} with stride "
                               f"{int(strides[k])} selects {count} elements of {src.shape[k]}; TFLM leaves the "
                               f"output unwritten")
    base = sum(start * s for (start, _, _), s in zip(axes, st))
    return _copy(ctx, op, base, [c for _, c, _ in axes], [step * s for (_, _, step), s in zip(axes, st)])


def lower_split(ctx: LowerContext, op: Operator) -> tuple[KernelCall, ...]:
    """One copy per output: output i is the input's rows [first_i, first_i + its size) on the split axis."""
    src, st = _source(ctx, op, split_data(op))
    axis = axis_of(ctx.g, op)
    calls, first = [], 0
    for out in op.outputs:
        shape = ctx.g.tensors[out].shape
        calls.append(_copy(ctx, op, first * st[axis], shape, st, out, src.index))
        first += shape[axis]
    return tuple(calls)


def lower_tile(ctx: LowerContext, op: Operator) -> KernelCall:
    """Each axis as (repeat, element): the repeat steps by 0, the element by the input's stride."""
    src, st = _source(ctx, op)
    multiples = ctx.const_ints(op, op.inputs[1], "multiples")
    dims = [v for m, d in zip(multiples, src.shape) for v in (int(m), d)]
    return _copy(ctx, op, 0, dims, [v for s in st for v in (0, s)])


def lower_gather(ctx: LowerContext, op: Operator) -> KernelCall:
    src = ctx.int8_act(op, op.inputs[0], "input")
    ctx.int8_act(op, op.outputs[0], "output")
    idx = ctx.g.tensors[op.inputs[1]]
    if not idx.is_constant:
        raise ctx.fail(op, f"indices {idx.name!r} are computed at run time; the C engine gathers constant "
                           f"indices only (proven inside the axis when the C is generated)")
    o: GatherOptions = ctx.options(op, GatherOptions)
    axis, batch_dims = gather_shape(src.shape, idx.shape, o)
    fields = dict(batches=int(np.prod(src.shape[:batch_dims])), outer=int(np.prod(src.shape[batch_dims:axis])),
                  axis_size=src.shape[axis], coords=int(np.prod(idx.shape[batch_dims:])),
                  inner=int(np.prod(src.shape[axis + 1:])))
    values = np.ascontiguousarray(idx.data.astype(np.int32).reshape(-1))
    return ctx.call(op, GATHER_RULE, fields, [ConstArray(f"op{op.index}_indices", "int32_t", values)])


# ---- what the kernels read and write, and the exact recomputation ----

def _copy_extents(f: Mapping[str, int], arrays) -> tuple:
    ns, ss = [f[f"n{k}"] for k in range(COPY_DIMS)], [f[f"s{k}"] for k in range(COPY_DIMS)]
    top = f["base"] + sum((n - 1) * s for n, s in zip(ns, ss) if s > 0)
    return (top + 1,), int(np.prod(ns)), ()


def _copy_overflow(f: Mapping[str, int], arrays) -> str | None:
    """The lowest offset must not lie before the input (the highest is the read extent the planner checks)."""
    low = f["base"] + sum((f[f"n{k}"] - 1) * f[f"s{k}"] for k in range(COPY_DIMS) if f[f"s{k}"] < 0)
    return None if low >= 0 else f"the copy would read {-low} bytes before its input"


def _copy_offset(f: Mapping[str, int], flat: int) -> int:
    coords = np.unravel_index(flat, [f[f"n{k}"] for k in range(COPY_DIMS)])
    return f["base"] + sum(int(c) * f[f"s{k}"] for k, c in enumerate(coords))


def _element(graph: Graph, out: int, flat: int, value: int, detail: str) -> Element:
    shape = graph.tensors[out].shape
    coords = tuple(int(v) for v in np.unravel_index(flat, shape)) if shape else (flat,)
    return Element(coords, (Rule("input byte", value),), None, None, detail)


def _copy_recompute(graph: Graph, op: Operator, call: KernelCall, inputs: dict, flat: int) -> Element:
    offset = _copy_offset(fields_of(call), flat)
    value = int(inputs[call.inputs[0]].reshape(-1)[offset])
    return _element(graph, call.output, flat, value, f"a copy of input byte {offset} ({value})")


def _gather_extents(f: Mapping[str, int], arrays: Mapping[str, np.ndarray]) -> tuple:
    top = int(arrays["indices"].max(initial=0))
    rows = ((f["batches"] - 1) * f["outer"] + f["outer"] - 1) * f["axis_size"] + top + 1
    return (rows * f["inner"],), f["batches"] * f["outer"] * f["coords"] * f["inner"], (f["batches"] * f["coords"],)


def _gather_overflow(f: Mapping[str, int], arrays: Mapping[str, np.ndarray]) -> str | None:
    idx = arrays["indices"]
    bad = np.flatnonzero((idx < 0) | (idx >= f["axis_size"]))
    return None if bad.size == 0 else (f"index {int(idx[bad[0]])} at position {int(bad[0])} is outside the "
                                       f"axis of {f['axis_size']}")


def _gather_recompute(graph: Graph, op: Operator, call: KernelCall, inputs: dict, flat: int) -> Element:
    f, idx = fields_of(call), array_of(call, "_indices")
    b, o, c, i = np.unravel_index(flat, (f["batches"], f["outer"], f["coords"], f["inner"]))
    row = int(idx[b * f["coords"] + c])
    offset = int(((b * f["outer"] + o) * f["axis_size"] + row) * f["inner"] + i)
    value = int(inputs[call.inputs[0]].reshape(-1)[offset])
    return _element(graph, call.output, flat, value, f"input byte {offset} ({value}), row {row} of the axis")


COPY_RULE = KernelRule("tq_strided_copy", "tq_strided_copy_params", (), _copy_extents, _copy_overflow, None,
                       _copy_recompute)
GATHER_RULE = KernelRule("tq_gather", "tq_gather_params", ("indices",), _gather_extents, _gather_overflow, None,
                         _gather_recompute)

B = BuiltinOperator
OPS = (
    OpDef(B.TRANSPOSE, "layout", OpSpec((2, 2), input_ranks=(None, (1,)), same_dtype=(0,), check=transpose_check),
          None, lower_transpose),
    OpDef(B.SLICE, "layout", OpSpec((3, 3), input_ranks=(None, (1,), (1,)), same_dtype=(0,), check=slice_check),
          None, lower_slice),
    OpDef(B.STRIDED_SLICE, "layout",
          OpSpec((4, 4), options="StridedSliceOptionsT", input_ranks=(None, (1,), (1,), (1,)), same_dtype=(0,),
                 check=strided_slice_check), strided_slice_options, lower_strided_slice),
    OpDef(B.SPLIT, "layout", OpSpec((2, 2), (1, 1 << 16), options="SplitOptionsT", options_required=True,
                                    same_dtype=(1,), check=split_check), split_options, lower_split),
    OpDef(B.SPLIT_V, "layout", OpSpec((3, 3), (1, 1 << 16), options="SplitVOptionsT", options_required=True,
                                      input_ranks=(None, (1,), None), same_dtype=(0,), check=split_v_check),
          split_options, lower_split),
    OpDef(B.TILE, "layout", OpSpec((2, 2), input_ranks=(None, (1,)), same_dtype=(0,), check=tile_check), None,
          lower_tile),
    OpDef(B.GATHER, "layout", OpSpec((2, 2), options="GatherOptionsT", same_dtype=(0,), check=gather_check),
          gather_options, lower_gather),
)
