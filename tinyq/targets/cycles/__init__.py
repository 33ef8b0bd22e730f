"""Modelled cycles of the instruction stream QEMU executes: QEMU logs each translation block once and each
execution of one (stream.py), the blocks are decoded (isa.py) and timed by a core's table (timing.py, model.py).

QEMU itself counts instructions, not cycles (qemu.py). This model turns the same run into cycles for a
Cortex-M0, M4 or M7 with zero-wait memory or flash wait states, per inference and per op."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ...errors import BuildError
from ..qemu import check_toolchain, qemu_command
from ..registry import DEFAULT_TARGET
from .elf import call_sites, disassemble, function_range, log_filter
from .isa import Kind
from .model import Timed, block_prefix, cold_fetch, time_segment
from .stream import Trace, Window, logged_run
from .timing import CORTEX_M0, CORTEX_M4, CORTEX_M7, TIMINGS, ZERO_WAIT, CoreTiming, Cost, Memory

__all__ = ["CORTEX_M0", "CORTEX_M4", "CORTEX_M7", "INVOKE", "TIMINGS", "TRACE_MARK", "ZERO_WAIT", "CoreTiming",
           "Cost", "CycleCount", "Kind", "Memory", "Trace", "Window", "count", "timing_for", "trace_function"]

INVOKE = "tinyq_backend_invoke"  # the engine's entry; measure.c's wrapper calls it once per inference
TRACE_MARK = "tinyq_trace"  # the per-op profile's mark after each kernel call (board/cortex_m/profile.c)
# Loops of the board code that run only outside the invoke (measure.c paints and reads the stack around it):
# left out of the log with -dfilter, which halves it for the demo CNN.
OUTSIDE = ("tinyq_board_stack_paint", "tinyq_board_stack_high_water")


@dataclass(frozen=True)
class CycleCount:
    """Modelled cycles and executed instructions of a window's calls under one core and memory model: in
    total, and per segment (per op when the window was split at the profile's marks), summed over the calls."""

    core: str
    memory: Memory
    calls: int
    cycles: int
    instructions: int
    segment_cycles: tuple[int, ...]
    segment_instructions: tuple[int, ...]
    unknown_mnemonics: tuple[str, ...]  # timed as one-cycle ALU instructions; empty for tinyq's firmware
    log_bytes: int
    log_seconds: float

    @property
    def cycles_per_call(self) -> float:
        return self.cycles / self.calls if self.calls else 0.0

    @property
    def instructions_per_call(self) -> float:
        return self.instructions / self.calls if self.calls else 0.0

    @property
    def cycles_per_instruction(self) -> float:
        return self.cycles / self.instructions if self.instructions else 0.0


def timing_for(target: str) -> CoreTiming:
    """The timing table of a registry target; BuildError for a core without one."""
    try:
        return TIMINGS[target]
    except KeyError:
        raise BuildError(f"no cycle model for {target}; modelled cores: {', '.join(TIMINGS)}") from None


def trace_function(elf: str | os.PathLike, function: str = INVOKE, split: str | None = None,
                   args: tuple[str, ...] = (), cwd: str | os.PathLike | None = None,
                   target: str = DEFAULT_TARGET, timeout: float = 900.0, outside: tuple[str, ...] = OUTSIDE) -> Trace:
    """Run the ELF in QEMU with its block log streamed and count the block transitions inside every call of
    `function` (each call of `split` inside one starts the next segment and is itself left out). The functions
    `outside` must never run inside a call of `function`: they are not logged at all."""
    check_toolchain()
    listing = disassemble(elf)
    where = str(elf)
    f = call_sites(listing, function, where)
    if f.tail_called:
        raise BuildError(f"{where}: {function!r} is tail-called somewhere; its calls cannot be delimited")
    s = call_sites(listing, split, where) if split else None
    window = Window(f.entry, f.returns, s.entry if s else None, s.returns if s else frozenset())
    skipped = [r for r in (function_range(listing, name) for name in outside) if r is not None]
    cmd = qemu_command(Path(elf).resolve(), args, target) + ["-dfilter", log_filter(skipped)]
    trace, console = logged_run(cmd, window, cwd, timeout)
    if trace.windows == 0:
        raise BuildError(f"{where}: {function!r} was never called in the logged run: {console.strip()[-200:]}")
    return trace


def count(trace: Trace, timing: CoreTiming, memory: Memory = ZERO_WAIT) -> CycleCount:
    """Cycles of a trace under one core's table and one memory model."""
    prefixes = [block_prefix(b, timing) for b in trace.blocks]
    timed: list[Timed] = [time_segment(trace, seg, timing, memory, prefixes) for seg in trace.transitions]
    cold = cold_fetch(trace, memory)
    seg_cycles = tuple(t.cycles + c for t, c in zip(timed, cold))
    unknown = sorted({i.mnemonic for b in trace.blocks for i in b.insns if not i.known})
    return CycleCount(timing.name, memory, trace.windows, sum(seg_cycles), sum(t.instructions for t in timed),
                      seg_cycles, tuple(t.instructions for t in timed), tuple(unknown), trace.log_bytes,
                      trace.seconds)
