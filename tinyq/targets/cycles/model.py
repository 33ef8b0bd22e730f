"""Cycles of counted block transitions under a core's timing table: each block's instructions are timed once
(neighbour rules: load/store pipelining, address interlock, dual issue, load-use), then every transition adds
the block's time (or the part run before an I/O access cut it short) and, when its last instruction wrote the
PC, the refill that the next block's address and width call for."""

from __future__ import annotations

from dataclasses import dataclass

from .isa import Insn, Kind
from .stream import Block, Trace
from .timing import CoreTiming, Memory

_SINGLE_MEMORY = (Kind.LOAD, Kind.STORE)
_ADDRESSED = (Kind.LOAD, Kind.STORE, Kind.LOAD_DOUBLE, Kind.STORE_DOUBLE, Kind.LOAD_MULTIPLE,
              Kind.STORE_MULTIPLE)
_DATA_PROCESSING = (Kind.ALU, Kind.MUL, Kind.MUL_LONG, Kind.MAC, Kind.DIV)
_LOADS = (Kind.LOAD, Kind.LOAD_DOUBLE, Kind.LOAD_MULTIPLE)


def _scalar(prev: Insn | None, insn: Insn, t: CoreTiming) -> int:
    """Cycles of one instruction after `prev` on a single-issue core (refill excluded)."""
    c = t.cost(insn.kind)
    cycles = c.base + c.per_register * insn.registers
    if prev is not None and insn.kind in _SINGLE_MEMORY and t.load_store_pipelining \
            and prev.kind in _SINGLE_MEMORY and not (prev.kind is Kind.STORE and prev.register_offset) \
            and not (prev.kind is Kind.LOAD and prev.writes & insn.address_regs):
        cycles -= 1
    elif prev is not None and insn.kind in _ADDRESSED and t.address_interlock \
            and prev.kind in _DATA_PROCESSING and prev.writes & insn.address_regs:
        cycles += 1
    if insn.writes_pc and insn.kind in (Kind.LOAD, Kind.LOAD_MULTIPLE):
        cycles += t.load_pc_extra
    return cycles


def _dual(insns: tuple[Insn, ...], t: CoreTiming) -> list[int]:
    """Cycles of each instruction on a dual-issue core: the second of an issued pair costs 0."""
    out: list[int] = []
    paired = False
    for i, insn in enumerate(insns):
        c = t.cost(insn.kind)
        cycles = c.base + c.per_register * insn.registers
        prev = insns[i - 1] if i else None
        if prev is not None and prev.kind in _LOADS and prev.writes & insn.reads:
            cycles += 1  # load-use
        elif (prev is not None and not paired and cycles == 1 and out[-1] == 1
              and (prev.kind, insn.kind) in t.dual_issue.pairs and not prev.writes & insn.reads):
            cycles, paired = 0, True
            out.append(cycles)
            continue
        paired = False
        out.append(cycles)
    return out


def block_prefix(block: Block, t: CoreTiming) -> tuple[int, ...]:
    """Cycles after each instruction of the block (refill of a final branch not included); prefix[0] = 0."""
    if t.dual_issue is not None:
        each = _dual(block.insns, t)
    else:
        each = [_scalar(block.insns[i - 1] if i else None, insn, t) for i, insn in enumerate(block.insns)]
    out = [0]
    for c in each:
        out.append(out[-1] + c)
    return tuple(out)


@dataclass(frozen=True)
class Timed:
    """The cycles and instructions of one segment's transitions."""

    cycles: int
    instructions: int
    taken: int  # taken branches (and other writes of the PC)
    cut: int  # blocks an I/O access cut short


def _refill(t: CoreTiming, memory: Memory, last: Insn, nxt: Block) -> int:
    if t.predictor is not None:
        return t.predictor.indirect_refill if last.target is None else 0
    wide = nxt.insns[0].size == 4 and nxt.start % 4 == 2
    return t.refill + (t.refill_unaligned_wide if wide else 0) + (0 if memory.accelerator else memory.wait_states)


def time_segment(trace: Trace, transitions: tuple[tuple[int, int, int], ...], t: CoreTiming,
                 memory: Memory, prefixes: list[tuple[int, ...]]) -> Timed:
    """Cycles of one segment's (block, next block, count) transitions."""
    cycles = instructions = taken = cut = 0
    both: dict[int, list[int]] = {}
    for a, b, n in transitions:
        block, nxt = trace.blocks[a], trace.blocks[b]
        last, pre, to = block.insns[-1], prefixes[a], nxt.start
        addresses = [i.address for i in block.insns]
        if to in addresses[1:] and to != last.target or (to == block.start and not last.writes_pc):
            k = addresses.index(to)  # an I/O access re-ran as its own block: only the ones before it ran
            cycles, instructions, cut = cycles + n * pre[k], instructions + n * k, cut + n
            continue
        body = pre[-1]
        if memory.wait_states and not memory.accelerator:
            body = max(body, -(-(block.end - block.start) // 4) * (1 + memory.wait_states))
        cycles += n * body
        instructions += n * len(block.insns)
        if last.writes_pc and not (last.conditional and to == last.next_address and to != last.target):
            cycles += n * _refill(t, memory, last, nxt)
            taken += n
            if last.conditional:
                both.setdefault(a, [0, 0])[0] += n
        elif last.writes_pc:
            both.setdefault(a, [0, 0])[1] += n
    if t.predictor is not None:
        cycles += sum(min(v) for v in both.values()) * t.predictor.mispredict_penalty
    return Timed(cycles, instructions, taken, cut)


def cold_fetch(trace: Trace, memory: Memory) -> list[int]:
    """With an accelerator: the flash wait states of each block's first fetch, charged to the first segment
    that runs it (later runs hit the cache)."""
    out = [0] * len(trace.transitions)
    if not memory.accelerator or not memory.wait_states:
        return out
    seen: set[int] = set()
    for s, transitions in enumerate(trace.transitions):
        for a, _, _ in transitions:
            if a not in seen:
                seen.add(a)
                block = trace.blocks[a]
                out[s] += -(-(block.end - block.start) // 4) * memory.wait_states
    return out
