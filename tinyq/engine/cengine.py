"""The interpreter-free C engine: a checked Graph becomes <name>_model.h / <name>_model.c calling tinyq's kernels."""

from __future__ import annotations

from dataclasses import dataclass

from ..render import Banner, GeneratedFile, comment_safe, environment, int_rows, render
from .fixedpoint import Rounding
from .graph import Graph
from .lower import Optimize, lower
from .plan import plan

ROUNDING_HEADER = "tq_rounding.h"  # generated per model; the runtime's own copy is the in-place default


@dataclass(frozen=True)
class ArenaBlock:
    """One tensor in the engine's arena: its layer, bytes and offset, and the kernel calls it lives across."""

    label: str
    offset: int
    size: int
    first_call: int
    last_call: int


@dataclass(frozen=True)
class CEngine:
    """The generated engine files and their figures: arena, liveness lower bound, constant data bytes, and the
    arena layout over time."""

    files: tuple[GeneratedFile, ...]
    arena_bytes: int
    lower_bound_bytes: int
    const_bytes: int
    input_bytes: int
    output_bytes: int
    blocks: tuple[ArenaBlock, ...] = ()
    call_count: int = 0
    scratch_bytes: int = 0  # the largest kernel scratch, inside the arena
    optimize: Optimize = Optimize.SPEED
    kernels: tuple[tuple[int, str], ...] = ()  # (op index, C kernel) of every call, in order
    rounding: Rounding = Rounding.DOUBLE  # the requantization rule (tq_rounding.h)


@dataclass(frozen=True)
class ArrayValues:
    name: str
    ctype: str
    count: int
    rows: list[str]


@dataclass(frozen=True)
class CallValues:
    name: str
    comment: str
    kernel: str
    params_type: str
    fields: tuple[tuple[str, str], ...]
    inputs: tuple[object, ...]  # a plan Location, or the name of a constant array
    output: object
    input_array: bool
    op_index: int
    output_bytes: int
    scratch: int | None  # arena offset of the call's scratch, None when it takes none


def _call_name(calls, k: int) -> str:
    """The parameter struct's name of call k: op<index>, and op<index>_out<j> for an op's later calls (SPLIT
    lowers to one call per output)."""
    j = sum(1 for c in calls[:k] if c.op_index == calls[k].op_index)
    return f"op{calls[k].op_index}" if j == 0 else f"op{calls[k].op_index}_out{j}"


ROUNDING_DESCRIPTION = {
    Rounding.DOUBLE: "double rounding, as pip TFLM (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT)",
    Rounding.SINGLE: "single rounding, as TFLITE_SINGLE_ROUNDING builds (one 64-bit product, one rounding shift)",
}


def generate(graph: Graph, name: str, banner: Banner, optimize: Optimize = Optimize.SPEED,
             rounding: Rounding = Rounding.DOUBLE) -> CEngine:
    """Lower (kernels chosen for `optimize`, requantizing under `rounding`) and plan the checked graph, then render
    the engine and its tq_rounding.h; raises UnsupportedOpError before anything exists."""
    rounding = Rounding(rounding)
    lowered = lower(graph, optimize, rounding)
    memory = plan(graph, lowered)
    arrays = [a for call in lowered.calls for a in call.arrays]
    array_values = [ArrayValues(a.name, a.ctype, int(a.values.size), int_rows(a.values.reshape(-1), 16))
                    for a in arrays]
    calls = [CallValues(_call_name(lowered.calls, k), comment_safe(f"op #{c.op_index} {c.op_name} (layer {c.layer})"), c.kernel,
                        c.params_type, c.fields,
                        tuple(dict(c.const_inputs).get(t) or memory.location(t) for t in c.inputs),
                        memory.location(c.output), c.input_array, c.op_index, graph.tensors[c.output].nbytes,
                        memory.scratch[k])
             for k, c in enumerate(lowered.calls)]
    in_bytes = graph.tensors[graph.inputs[0]].nbytes
    out_bytes = graph.tensors[graph.outputs[0]].nbytes
    env = environment()
    values = dict(ident=name, macro=name.upper(), guard=f"{name.upper()}_MODEL_H_", arrays=array_values,
                  calls=calls, arena_bytes=memory.arena_bytes, lower_bound_bytes=memory.lower_bound_bytes,
                  input_bytes=in_bytes, output_bytes=out_bytes, op_count=len(graph.operators))
    files = (render(env, "model.h.j2", f"{name}_model.h", banner, **values),
             render(env, "model.c.j2", f"{name}_model.c", banner, **values),
             render(env, "tq_rounding.h.j2", ROUNDING_HEADER, banner, single=int(rounding is Rounding.SINGLE),
                    description=ROUNDING_DESCRIPTION[rounding]))
    blocks = tuple(ArenaBlock(graph.layer(p.tensor) if p.tensor >= 0
                              else f"scratch of op #{lowered.calls[p.first].op_index}", p.offset, p.size, p.first,
                              p.last)
                   for p in sorted(memory.placements, key=lambda p: (p.first, p.offset)))
    return CEngine(files, memory.arena_bytes, memory.lower_bound_bytes, sum(a.nbytes for a in arrays),
                   in_bytes, out_bytes, blocks, len(lowered.calls), memory.scratch_bytes, Optimize(optimize),
                   tuple((c.op_index, c.kernel) for c in lowered.calls), rounding)
