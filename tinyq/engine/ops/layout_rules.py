"""The reader's rules for the layout ops (ops/layout.py): TFLM's Prepare checks for TRANSPOSE, SLICE,
STRIDED_SLICE, SPLIT, SPLIT_V and GATHER (ranks, constant operands, ranges, output shapes), the same
quantization in and out (a copy cannot rescale), and the index arithmetic the lowering shares with them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph import Graph, Operator, Tensor
from ..schema import BuiltinOperator


@dataclass(frozen=True)
class StridedSliceOptions:
    begin_mask: int
    end_mask: int
    ellipsis_mask: int
    new_axis_mask: int
    shrink_axis_mask: int
    offset: bool


@dataclass(frozen=True)
class SplitOptions:
    num_splits: int


@dataclass(frozen=True)
class GatherOptions:
    axis: int
    batch_dims: int


def strided_slice_options(o) -> StridedSliceOptions:
    return StridedSliceOptions(int(o.beginMask), int(o.endMask), int(o.ellipsisMask), int(o.newAxisMask),
                               int(o.shrinkAxisMask), bool(o.offset))


def split_options(o) -> SplitOptions:
    return SplitOptions(int(o.numSplits))


def gather_options(o) -> GatherOptions:
    return GatherOptions(int(o.axis), int(o.batchDims))


def row_strides(shape) -> list[int]:
    """Element strides of a row-major tensor."""
    return [int(np.prod(shape[k + 1:])) for k in range(len(shape))]


def _same_quantization(g: Graph, src: Tensor, outputs) -> str | None:
    for out in outputs:
        dst = g.tensors[out]
        if dst.dtype != src.dtype:
            return f"output {dst.name!r} is {dst.dtype}, input {src.name!r} {src.dtype}"
        if dst.scales != src.scales or dst.zero_points != src.zero_points:
            return (f"output {dst.name!r} is quantized (scale {list(dst.scales)}, zero point {list(dst.zero_points)}) "
                    f"differently from input {src.name!r} ({list(src.scales)}, {list(src.zero_points)}); a copy "
                    f"cannot rescale")
    return None


def _ints(g: Graph, op: Operator, pos: int, role: str, dtypes=("int32",), count: int | None = None):
    """(constant integer values of input `pos`, None) or (None, what is wrong)."""
    t = g.tensors[op.inputs[pos]]
    if t.dtype not in dtypes or not t.is_constant:
        return None, (f"{role} tensor {t.name!r} must be a constant {' or '.join(dtypes)}, is "
                      f"{'a constant' if t.is_constant else 'a computed'} {t.dtype}")
    values = t.data.astype(np.int64).reshape(-1)
    if count is not None and values.size != count:
        return None, f"{role} tensor {t.name!r} holds {values.size} values for an input of rank {count}"
    return values, None


def transpose_check(g: Graph, op: Operator) -> str | None:
    src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    rank = len(src.shape)
    if rank > 5:
        return f"input {src.name!r} has rank {rank}; TFLM transposes at most 5 dimensions"
    perm, problem = _ints(g, op, 1, "perm", count=rank)
    if problem:
        return problem
    if sorted(perm.tolist()) != list(range(rank)):
        return f"perm {perm.tolist()} is not a permutation of 0..{rank - 1}"
    want = tuple(src.shape[p] for p in perm)
    if dst.shape != want:
        return f"output {dst.name!r} {dst.shape} is not input {src.shape} permuted by {perm.tolist()}: {want}"
    return _same_quantization(g, src, op.outputs)


def slice_begin_size(shape, begin: np.ndarray, size: np.ndarray) -> tuple[list[int], list[int]]:
    """SLICE's begin and resolved sizes (-1: the rest of the axis); raises ValueError as TFLM fails."""
    sizes = []
    for k, (d, b, s) in enumerate(zip(shape, begin, size)):
        if not 0 <= b <= d:
            raise ValueError(f"begin[{k}] = {int(b)} is outside axis {k} of size {d}")
        n = d - b if s == -1 else int(s)
        if not 0 <= n <= d - b:
            raise ValueError(f"size[{k}] = {int(s)} does not fit axis {k} of size {d} from begin {int(b)}")
        sizes.append(int(n))
    return [int(b) for b in begin], sizes


def slice_check(g: Graph, op: Operator) -> str | None:
    src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    b, s = g.tensors[op.inputs[1]], g.tensors[op.inputs[2]]
    rank = len(src.shape)
    if rank > 5:
        return f"input {src.name!r} has rank {rank}; TFLM slices at most 5 dimensions"
    if b.dtype != s.dtype or b.dtype not in ("int32", "int64") or b.size != rank or s.size != rank:
        return (f"begin {b.name!r} ({b.dtype}, {b.size} values) and size {s.name!r} ({s.dtype}, {s.size} values) "
                f"must both be int32 or int64 with {rank} values")
    if b.is_constant and s.is_constant:
        try:
            _, sizes = slice_begin_size(src.shape, b.data.reshape(-1).astype(np.int64),
                                        s.data.reshape(-1).astype(np.int64))
        except ValueError as exc:
            return str(exc)
        if int(np.prod(sizes)) != dst.size:
            return f"the slice holds {int(np.prod(sizes))} values ({sizes}), output {dst.name!r} {dst.size}"
    return _same_quantization(g, src, op.outputs)


def strided_slice_axes(shape, begin, end, strides, o: StridedSliceOptions) -> list[tuple[int, int, int]]:
    """(start, count, stride) per axis as TFLM's reference kernel walks them: negative indices wrap once, then
    clamp to the axis; the masks take the whole axis; a shrunk axis takes one element (none when begin is past
    it); ellipsis and new-axis masks and offset ignored, as TFLM ignores them."""
    axes = []
    for k, d in enumerate(shape):
        step = int(strides[k])
        lo, hi = (0, d) if step > 0 else (-1, d - 1)
        start = int(begin[k]) + (d if begin[k] < 0 else 0)
        start = (0 if step > 0 else d - 1) if o.begin_mask >> k & 1 else min(max(start, lo), hi)
        if o.shrink_axis_mask >> k & 1:
            stop = start if start >= d else start + 1
        else:
            stop = int(end[k]) + (d if end[k] < 0 else 0)
            stop = (d if step > 0 else -1) if o.end_mask >> k & 1 else min(max(stop, lo), hi)
        axes.append((start, len(range(start, stop, step)), step))
    return axes


def strided_slice_check(g: Graph, op: Operator) -> str | None:
    src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    rank = len(src.shape)
    if rank > 4:
        return f"input {src.name!r} has rank {rank}; TFLM's STRIDED_SLICE takes at most 4 dimensions"
    values = []
    for pos, role in ((1, "begin"), (2, "end"), (3, "strides")):
        v, problem = _ints(g, op, pos, role, count=rank)
        if problem:
            return problem
        values.append(v)
    begin, end, strides = values
    if (strides == 0).any():
        return f"strides[{int(np.flatnonzero(strides == 0)[0])}] is 0"
    o: StridedSliceOptions = op.options
    axes = strided_slice_axes(src.shape, begin, end, strides,
                              StridedSliceOptions(o.begin_mask, o.end_mask, 0, 0, 0, False))
    want = tuple(max(c, 0) for k, (_, c, _) in enumerate(axes) if not o.shrink_axis_mask >> k & 1)
    if dst.shape != want:
        return (f"output {dst.name!r} {dst.shape} is not the slice's shape {want} (begin {begin.tolist()}, end "
                f"{end.tolist()}, strides {strides.tolist()}, begin_mask {o.begin_mask}, end_mask {o.end_mask}, "
                f"shrink_axis_mask {o.shrink_axis_mask})")
    return _same_quantization(g, src, op.outputs)


def _split_input(op: Operator) -> tuple[int, int]:
    """(data input position, axis input position): SPLIT takes (axis, input), SPLIT_V (input, sizes, axis)."""
    return (1, 0) if op.code == BuiltinOperator.SPLIT else (0, 2)


def axis_of(g: Graph, op: Operator) -> int:
    """The split axis, made non-negative (the reader proved it constant and in range)."""
    data, pos = _split_input(op)
    axis = int(g.tensors[op.inputs[pos]].data.reshape(-1)[0])
    return axis + len(g.tensors[op.inputs[data]].shape) if axis < 0 else axis


def split_data(op: Operator) -> int:
    """The tensor a SPLIT or SPLIT_V splits."""
    return op.inputs[_split_input(op)[0]]


def _split_common(g: Graph, op: Operator) -> str | None:
    data, pos = _split_input(op)
    src = g.tensors[op.inputs[data]]
    a, problem = _ints(g, op, pos, "axis")
    if problem or a.size != 1:
        return problem or f"axis tensor {g.tensors[op.inputs[pos]].name!r} holds {a.size} values, not one"
    if not -len(src.shape) <= int(a[0]) < len(src.shape):
        return f"axis {int(a[0])} is outside the input's {len(src.shape)} dimensions"
    if op.options.num_splits != len(op.outputs):
        return f"field num_splits = {op.options.num_splits} but the op has {len(op.outputs)} outputs"
    axis = axis_of(g, op)
    for out in op.outputs:
        t = g.tensors[out]
        if len(t.shape) != len(src.shape) or any(d != e for k, (d, e) in enumerate(zip(t.shape, src.shape))
                                                 if k != axis):
            return f"output {t.name!r} {t.shape} does not match input {src.shape} off axis {axis}"
    if sum(g.tensors[out].shape[axis] for out in op.outputs) != src.shape[axis]:
        return f"the outputs' sizes on axis {axis} do not add up to the input's {src.shape[axis]}"
    return _same_quantization(g, src, op.outputs)


def split_check(g: Graph, op: Operator) -> str | None:
    problem = _split_common(g, op)
    if problem:
        return problem
    axis, sizes = axis_of(g, op), {g.tensors[out].shape[axis_of(g, op)] for out in op.outputs}
    return None if len(sizes) == 1 else f"outputs differ in size on axis {axis}: {sorted(sizes)}; SPLIT splits evenly"


def split_v_check(g: Graph, op: Operator) -> str | None:
    problem = _split_common(g, op)
    if problem:
        return problem
    sizes, problem = _ints(g, op, 1, "size_splits", count=len(op.outputs))
    if problem:
        return problem
    axis = axis_of(g, op)
    got = [g.tensors[out].shape[axis] for out in op.outputs]
    if (sizes == -1).sum() > 1 or any(s != -1 and s != n for s, n in zip(sizes.tolist(), got)):
        return f"size_splits {sizes.tolist()} do not match the outputs' sizes {got} on axis {axis}"
    return None


def tile_check(g: Graph, op: Operator) -> str | None:
    src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    m, problem = _ints(g, op, 1, "multiples", ("int32", "int64"), len(src.shape))
    if problem:
        return problem
    if (m < 1).any():
        return f"multiples {m.tolist()} must be positive"
    want = tuple(int(d * k) for d, k in zip(src.shape, m))
    if dst.shape != want:
        return f"output {dst.name!r} {dst.shape} is not input {src.shape} tiled {m.tolist()} times: {want}"
    return _same_quantization(g, src, op.outputs)


def gather_shape(shape, coords_shape, o: GatherOptions) -> tuple[int, int]:
    """GATHER's (axis, batch_dims) made non-negative; raises ValueError where TFLM's Prepare fails."""
    axis = o.axis + len(shape) if o.axis < 0 else o.axis
    batch_dims = o.batch_dims + len(coords_shape) if o.batch_dims < 0 else o.batch_dims
    if not 0 <= axis < len(shape):
        raise ValueError(f"field axis = {o.axis} is outside the input's {len(shape)} dimensions")
    if not 0 <= batch_dims <= min(axis, len(coords_shape)) or batch_dims >= len(shape):
        raise ValueError(f"field batch_dims = {o.batch_dims} must lie in [0, {min(axis, len(coords_shape))}]")
    if tuple(shape[:batch_dims]) != tuple(coords_shape[:batch_dims]):
        raise ValueError(f"the first {batch_dims} dimensions of input {tuple(shape)} and indices "
                         f"{tuple(coords_shape)} differ")
    return axis, batch_dims


def gather_check(g: Graph, op: Operator) -> str | None:
    src, idx, dst = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    if idx.dtype != "int32":
        return f"indices {idx.name!r} are {idx.dtype}; TFLM gathers with int32 indices"
    if src.dtype not in ("int8", "float32"):
        return f"input {src.name!r} is {src.dtype}; TFLM gathers float32 and int8"
    try:
        axis, batch_dims = gather_shape(src.shape, idx.shape, op.options)
    except ValueError as exc:
        return str(exc)
    want = tuple(src.shape[:axis]) + tuple(idx.shape[batch_dims:]) + tuple(src.shape[axis + 1:])
    if dst.shape != want:
        return f"output {dst.name!r} {dst.shape} is not the gather's shape {want}"
    if idx.is_constant:
        values = idx.data.reshape(-1)
        bad = np.flatnonzero((values < 0) | (values >= src.shape[axis]))
        if bad.size:
            return (f"indices {idx.name!r}[{int(bad[0])}] = {int(values[bad[0]])} is outside axis {axis} of size "
                    f"{src.shape[axis]} (TFLM fails at run time)")
    return _same_quantization(g, src, op.outputs)
