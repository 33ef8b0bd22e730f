"""Static memory plan: tensor lifetimes from the op order, RESHAPE aliasing, offsets in one arena.

The model input is read where the caller keeps it and the output written where the caller wants it, so neither
takes arena space. The rest, and each kernel call's scratch (live for that call only, 4-byte aligned), is placed
greedily (largest first, lowest offset free over its lifetime), and compared with the liveness lower bound: the
most bytes live across any one op.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import UnsupportedOpError
from .graph import Graph
from .lower import Lowered


class Where(enum.Enum):
    INPUT = "input"
    OUTPUT = "output"
    ARENA = "arena"


@dataclass(frozen=True)
class Location:
    """Where a tensor's bytes are at run time: the caller's input or output buffer, or an arena offset."""

    where: Where
    offset: int = 0


SCRATCH_ALIGN = 4


def scratch_key(call: int) -> int:
    """The placement key of kernel call `call`'s scratch: negative, so it never collides with a tensor index."""
    return -1 - call


@dataclass(frozen=True)
class Placement:
    """An arena tensor (or a call's scratch, under scratch_key): bytes, lifetime in kernel calls (inclusive), offset."""

    tensor: int
    size: int
    first: int
    last: int
    offset: int


@dataclass(frozen=True)
class Plan:
    """Locations of every tensor a kernel touches, each call's scratch offset (None without), the arena size and
    the liveness lower bound (scratch included)."""

    locations: dict[int, Location]
    placements: tuple[Placement, ...]
    arena_bytes: int
    lower_bound_bytes: int
    scratch: tuple[int | None, ...] = ()

    def location(self, tensor: int) -> Location:
        return self.locations[tensor]

    @property
    def scratch_bytes(self) -> int:
        """The largest scratch of any one call."""
        return max((p.size for p in self.placements if p.tensor < 0), default=0)


def _roots(aliases: tuple[tuple[int, int], ...]) -> dict[int, int]:
    """Alias -> the tensor whose bytes it names, in one pass: aliases come in op order and the reader's dataflow
    invariant (every tensor read was written earlier) makes each source resolved before its alias."""
    roots: dict[int, int] = {}
    for alias, src in aliases:
        roots[alias] = roots.get(src, src)
    return roots


def plan(graph: Graph, lowered: Lowered) -> Plan:
    """Lifetimes, aliasing and greedy offsets, then a proof that every kernel call's reads and writes stay
    inside the buffers they get; raises if the graph's output is just its input or a call could overrun."""
    roots = _roots(lowered.aliases)

    def root(t: int) -> int:
        return roots.get(t, t)

    graph_in = root(graph.inputs[0])
    graph_out = root(graph.outputs[0])
    if graph_out == graph_in:
        raise UnsupportedOpError("the model's output is its input reshaped; there is nothing to compute")
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for k, call in enumerate(lowered.calls):
        for t in call.inputs:
            if graph.tensors[t].is_constant:  # a flash array of its own, exactly its tensor's size
                continue
            r = root(t)
            if r != graph_in and r not in first:
                raise UnsupportedOpError(f"op #{call.op_index} {call.op_name} (layer {call.layer}): reads tensor "
                                         f"{graph.tensors[t].name!r} that no earlier kernel call writes")
            last[r] = max(last.get(r, k), k)
        r = root(call.output)
        if r in first or r == graph_in:
            raise UnsupportedOpError(f"op #{call.op_index} {call.op_name} (layer {call.layer}): writes tensor "
                                     f"{graph.tensors[call.output].name!r} a second time")
        first[r] = k
        last.setdefault(r, k)
    if graph_out not in first:
        raise UnsupportedOpError(f"graph output {graph.tensors[graph.outputs[0]].name!r} is written by no kernel call")
    arena = [t for t in first if t not in (graph_in, graph_out)]
    size = {t: graph.tensors[t].nbytes for t in arena}
    for k, call in enumerate(lowered.calls):
        if call.scratch_bytes > 0:
            key = scratch_key(k)
            arena.append(key)
            size[key], first[key], last[key] = call.scratch_bytes, k, k
    lower_bound = max((sum(size[t] for t in arena if first[t] <= k <= last[t])
                       for k in range(len(lowered.calls))), default=0)
    placed: list[Placement] = []
    for t in sorted(arena, key=lambda t: (-size[t], first[t], t)):
        busy = sorted((p.offset, p.offset + p.size) for p in placed if p.first <= last[t] and first[t] <= p.last)
        align = SCRATCH_ALIGN if t < 0 else 1
        offset = 0
        for start, end in busy:
            if offset + size[t] <= start:
                break
            offset = -(-max(offset, end) // align) * align
        placed.append(Placement(t, size[t], first[t], last[t], offset))
    locations = {graph_in: Location(Where.INPUT), graph_out: Location(Where.OUTPUT)}
    locations.update({p.tensor: Location(Where.ARENA, p.offset) for p in placed if p.tensor >= 0})
    scratch = {-1 - p.tensor: p.offset for p in placed if p.tensor < 0}
    for alias in roots:
        if root(alias) in locations:
            locations[alias] = locations[root(alias)]
    arena_bytes = max((p.offset + p.size for p in placed), default=0)
    region = {graph_in: graph.tensors[graph_in].nbytes, graph_out: graph.tensors[graph_out].nbytes}
    region.update({p.tensor: p.size for p in placed if p.tensor >= 0})
    _prove_in_bounds(graph, lowered, root, region)
    return Plan(locations, tuple(sorted(placed, key=lambda p: p.tensor)), arena_bytes, lower_bound,
                tuple(scratch.get(k) for k in range(len(lowered.calls))))


def _prove_in_bounds(graph: Graph, lowered: Lowered, root, region: dict[int, int]) -> None:
    """Every byte a kernel call reads or writes (from its parameters) lies inside the buffer it is handed:
    the caller's input or output of the graph's sizes, or its arena slot. Refuses the graph otherwise."""
    for call in lowered.calls:
        where = f"op #{call.op_index} {call.op_name} (layer {call.layer})"
        for pos, (t, need) in enumerate(zip(call.inputs, call.reads)):
            have = graph.tensors[t].nbytes if graph.tensors[t].is_constant else region[root(t)]
            if need > have:
                raise UnsupportedOpError(f"{where}: reads {need} bytes from input {pos} {graph.tensors[t].name!r} "
                                         f"whose buffer holds {have}")
        if len(call.reads) != len(call.inputs):
            raise UnsupportedOpError(f"{where}: {len(call.inputs)} inputs but {len(call.reads)} read extents")
        have = region[root(call.output)]
        if call.writes > have:
            raise UnsupportedOpError(f"{where}: writes {call.writes} bytes to {graph.tensors[call.output].name!r} "
                                     f"whose buffer holds {have}")
