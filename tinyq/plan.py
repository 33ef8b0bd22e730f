"""Static memory plan: tensor lifetimes from the op order, RESHAPE aliasing, offsets in one arena.

The model input is read where the caller keeps it and the output written where the caller wants it, so neither
takes arena space. The rest is placed greedily (largest first, lowest offset free over its lifetime), and
compared with the liveness lower bound: the most bytes live across any one op.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import UnsupportedOpError
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


@dataclass(frozen=True)
class Placement:
    """An arena tensor: its bytes, its lifetime in kernel calls (inclusive) and its offset."""

    tensor: int
    size: int
    first: int
    last: int
    offset: int


@dataclass(frozen=True)
class Plan:
    """Locations of every tensor a kernel touches, the arena size and the liveness lower bound."""

    locations: dict[int, Location]
    placements: tuple[Placement, ...]
    arena_bytes: int
    lower_bound_bytes: int

    def location(self, tensor: int) -> Location:
        return self.locations[tensor]


def _root(aliases: dict[int, int], t: int) -> int:
    while t in aliases:
        t = aliases[t]
    return t


def plan(graph: Graph, lowered: Lowered) -> Plan:
    """Lifetimes, aliasing and greedy offsets; raises if the graph's output is just its input."""
    aliases = dict(lowered.aliases)
    graph_in = _root(aliases, graph.inputs[0])
    graph_out = _root(aliases, graph.outputs[0])
    if graph_out == graph_in:
        raise UnsupportedOpError("the model's output is its input reshaped; there is nothing to compute")
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for k, call in enumerate(lowered.calls):
        for t in call.inputs:
            r = _root(aliases, t)
            last[r] = max(last.get(r, k), k)
        r = _root(aliases, call.output)
        first[r] = k
        last.setdefault(r, k)
    arena = [t for t in first if t not in (graph_in, graph_out)]
    size = {t: graph.tensors[t].nbytes for t in arena}
    lower_bound = max((sum(size[t] for t in arena if first[t] <= k <= last[t])
                       for k in range(len(lowered.calls))), default=0)
    placed: list[Placement] = []
    for t in sorted(arena, key=lambda t: (-size[t], first[t], t)):
        busy = sorted((p.offset, p.offset + p.size) for p in placed if p.first <= last[t] and first[t] <= p.last)
        offset = 0
        for start, end in busy:
            if offset + size[t] <= start:
                break
            offset = max(offset, end)
        placed.append(Placement(t, size[t], first[t], last[t], offset))
    locations = {graph_in: Location(Where.INPUT), graph_out: Location(Where.OUTPUT)}
    locations.update({p.tensor: Location(Where.ARENA, p.offset) for p in placed})
    for alias in aliases:
        locations[alias] = locations[_root(aliases, alias)]
    arena_bytes = max((p.offset + p.size for p in placed), default=0)
    return Plan(locations, tuple(sorted(placed, key=lambda p: p.tensor)), arena_bytes, lower_bound)
