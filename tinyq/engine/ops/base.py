"""What an op family states about itself, as data the reader, the lowering driver, explain and the registry read.

An `OpDef` is one builtin op: the reader's preconditions (`OpSpec`) and options parser, its lowering into a
`KernelCall`, and its MACs. A `KernelRule` is one generic C kernel: what it reads and writes given its parameters,
the worst case of its int32 arithmetic, the specialised variant to use instead (`Variant`), and the exact
recomputation of one output element that `tinyq diff` explains divergences with.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Mapping

import numpy as np

from ..graph import MAX_DIM, Graph, Operator, Padding

if TYPE_CHECKING:  # the lowering context imports this module; annotations only
    from .context import LowerContext


@dataclass(frozen=True)
class ConstArray:
    """A constant array the generated C keeps in flash."""

    name: str
    ctype: str
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.values.size * self.values.dtype.itemsize)


@dataclass(frozen=True)
class Variant:
    """A specialised kernel for one call, equivalent to the generic kernel it replaces (same inputs, same output
    bytes): its C function and parameter struct, integer fields, constant arrays (laid out for it) in the order of
    its pointer fields, how many elements of each array its indexing reaches, and the scratch bytes it needs in the
    arena (4-byte aligned) for the duration of the call."""

    kernel: str
    params_type: str
    fields: tuple[tuple[str, int], ...]
    arrays: tuple[ConstArray, ...]
    pointer_fields: tuple[str, ...]
    counts: tuple[int, ...]
    scratch_bytes: int = 0

    def __post_init__(self) -> None:
        if not (len(self.arrays) == len(self.pointer_fields) == len(self.counts)):
            raise ValueError(f"{self.kernel}: {len(self.arrays)} arrays, {len(self.pointer_fields)} pointer fields "
                             f"and {len(self.counts)} counts")
        if self.scratch_bytes < 0:
            raise ValueError(f"{self.kernel}: negative scratch {self.scratch_bytes}")


Extents = tuple[tuple[int, ...], int, tuple[int, ...]]


@dataclass(frozen=True)
class Rule:
    """One way of turning the exact arithmetic into an int8: its name and the value it gives here."""

    name: str
    value: int


@dataclass(frozen=True)
class Element:
    """What the recomputation of one output element found: the rules' values, the exact value and a description."""

    coords: tuple[int, ...]
    rules: tuple[Rule, ...]
    exact: Fraction | float | None
    accumulator: int | None
    detail: str


@dataclass(frozen=True)
class KernelRule:
    """One generic C kernel and what tinyq knows of it.

    `extents(fields, arrays)` gives the bytes read per input, bytes written and elements indexed of each constant
    array (pointer-field order), or None for the tensors' sizes; `overflow(fields, arrays)` what could overflow
    int32 over every int8 input, or None; `choose(fields, arrays, name, rounding)` the specialised variant, or None;
    `recompute(graph, op, call, inputs, flat)` one output element under each rounding rule."""

    kernel: str
    params_type: str
    pointer_fields: tuple[str, ...] = ()
    extents: Callable[[Mapping[str, int], Mapping[str, np.ndarray]], Extents | None] | None = None
    overflow: Callable[[Mapping[str, int], Mapping[str, np.ndarray]], str | None] | None = None
    choose: Callable[..., Variant | None] | None = None  # (fields, arrays, name, rounding)
    recompute: Callable[..., Element] | None = None


@dataclass(frozen=True)
class KernelCall:
    """One kernel invocation: which C function, its parameter struct fields, tensors read and written."""

    op_index: int
    op_name: str
    layer: str
    kernel: str
    params_type: str
    fields: tuple[tuple[str, str], ...]
    inputs: tuple[int, ...]
    output: int
    arrays: tuple[ConstArray, ...]
    const_inputs: tuple[tuple[int, str], ...] = ()  # (input tensor, ConstArray holding its constant data)
    input_array: bool = False  # the inputs go to the kernel as one array argument (a variable count)
    reads: tuple[int, ...] = ()  # bytes the kernel reads from each input, from its parameters
    writes: int = 0  # bytes the kernel writes to its output, from its parameters
    scratch_bytes: int = 0  # arena scratch the kernel gets as its last argument, live for this call only
    rule: KernelRule | None = field(default=None, compare=False, repr=False)  # the generic kernel's rule


# ---- the reader's preconditions ----

@dataclass(frozen=True)
class OpSpec:
    """Preconditions the reader checks of one builtin op before anything else sees it.

    `outputs` is the output count, or its (min, max) for ops with a variable count (SPLIT); `options` is the
    schema's options class the op must carry (None: any or none); `input_ranks` the allowed ranks of inputs by
    position (None: any); `check` returns what is wrong with the op's shapes and options, or None."""

    inputs: tuple[int, int]
    outputs: int | tuple[int, int] = 1
    options: str | None = None
    options_required: bool = False
    input_ranks: tuple[tuple[int, ...] | None, ...] = ()
    output_ranks: tuple[int, ...] | None = None
    same_dtype: tuple[int, ...] = ()  # input positions whose dtype must equal output 0's
    check: Callable[[Graph, Operator], str | None] | None = None


def enum_field(cls: type[enum.Enum], value: int, name: str) -> enum.Enum:
    """An enum member of an options field; a value outside the schema's enum raises naming the field."""
    try:
        return cls(value)
    except ValueError:
        valid = ", ".join(f"{m.value} {m.name}" for m in cls)
        raise ValueError(f"field {name} = {value} is not a valid {cls.__name__} ({valid})") from None


def out_size(padding: Padding, stride: int, effective: int, in_size: int) -> int:
    """Output size along one axis for a window of `effective` taps (TFLite's rule)."""
    if padding is Padding.SAME:
        return (in_size + stride - 1) // stride
    return max(0, (in_size - effective + stride) // stride)


def window_check(g: Graph, op: Operator, k_h: int, k_w: int, dilation: tuple[int, int]) -> str | None:
    """Output height/width follow from padding, stride, dilation and filter; the window fits kernel index math."""
    src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    o = op.options
    for axis, (k, s, d) in enumerate(((k_h, o.stride_h, dilation[0]), (k_w, o.stride_w, dilation[1])), start=1):
        effective = (k - 1) * d + 1
        if effective > MAX_DIM:
            return f"effective filter size {effective} on axis {axis} exceeds {MAX_DIM}"
        want = out_size(o.padding, s, effective, src.shape[axis])
        if dst.shape[axis] != want:
            return (f"output {dst.name!r} has {dst.shape[axis]} on axis {axis}; {o.padding.name} padding, stride {s}, "
                    f"filter {k}, dilation {d} on input {src.shape[axis]} give {want}")
    if dst.shape[0] != src.shape[0]:
        return f"batch changes from {src.shape[0]} to {dst.shape[0]}"
    return None


def bias_check(g: Graph, op: Operator, channels: int, position: int = 2) -> str | None:
    """The optional bias at input `position` holds one value per output channel."""
    if len(op.inputs) > position and op.inputs[position] >= 0 and g.tensors[op.inputs[position]].size != channels:
        b = g.tensors[op.inputs[position]]
        return f"bias {b.name!r} has {b.size} values for {channels} output channels"
    return None


def broadcast_check(g: Graph, op: Operator) -> str | None:
    """The two inputs broadcast (numpy rules) and the output is their broadcast shape."""
    a, b, dst = (g.tensors[i] for i in (*op.inputs[:2], op.outputs[0]))
    rank = max(len(a.shape), len(b.shape))
    pa, pb = (1,) * (rank - len(a.shape)) + a.shape, (1,) * (rank - len(b.shape)) + b.shape
    if any(x != y and 1 not in (x, y) for x, y in zip(pa, pb)):
        return f"shapes {a.shape} and {b.shape} do not broadcast"
    if tuple(max(x, y) for x, y in zip(pa, pb)) != dst.shape:
        return f"output {dst.name!r} {dst.shape} is not the broadcast of {a.shape} and {b.shape}"
    return None


def same_shape_check(g: Graph, op: Operator) -> str | None:
    src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    return None if src.shape == dst.shape else f"output {dst.name!r} {dst.shape} differs from input {src.shape}"


def same_size_check(g: Graph, op: Operator) -> str | None:
    src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    return None if src.size == dst.size else (f"output {dst.name!r} {dst.shape} holds {dst.size} values, input "
                                              f"{src.shape} {src.size}")


def no_macs(graph: Graph, op: Operator) -> int:
    return 0


@dataclass(frozen=True)
class OpDef:
    """One builtin op of a family: the reader's preconditions and options parser (schema options object -> typed
    options; None keeps NoOptions), its lowering (None: the C engine does not run it; an op of several outputs
    lowers to one call per output), whether it only renames
    its input (RESHAPE and the like: an alias, no call), and its multiply-accumulates."""

    code: int
    family: str
    spec: OpSpec | None = None
    options: Callable[[object], object] | None = None
    lower: Callable[[LowerContext, Operator], KernelCall | tuple[KernelCall, ...]] | None = None
    alias: bool = False
    macs: Callable[[Graph, Operator], int] = no_macs
