"""QEMU's `-d in_asm,exec,nochain` log read as a stream: each translation block's instructions once (in_asm),
then one `Trace` line per executed block (exec; chaining off so no execution goes unlogged). Inside a window
(a function's calls: from its entry to a return address of a call site) it counts block-to-next-block
transitions per segment, so the data-dependent part of a block's time (its final branch taken or not, or a block
cut short by an I/O access) is resolved later from the next block's address. Memory is bounded by the number of
distinct blocks and transitions, never by the log's length."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ...errors import BuildError
from ...native import run_child
from .isa import Insn, parse_line


@dataclass(frozen=True)
class Window:
    """What to count: executions from `open_pc` (a function's entry) until a block starts at one of
    `close_pcs` (its call sites' return addresses). A `split` function's calls inside the window (the per-op
    profile's marks) are left out and start the next segment."""

    open_pc: int
    close_pcs: frozenset[int]
    split_pc: int | None = None
    split_returns: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Block:
    """One translation block: the instructions QEMU translated together."""

    insns: tuple[Insn, ...]

    @property
    def start(self) -> int:
        return self.insns[0].address

    @property
    def end(self) -> int:
        return self.insns[-1].next_address


@dataclass(frozen=True)
class Trace:
    """Transitions counted in a window: `transitions[s]` holds (block, next block, count) of segment s."""

    blocks: tuple[Block, ...]
    transitions: tuple[tuple[tuple[int, int, int], ...], ...]
    windows: int  # how many times the window opened (calls of the function)
    segments_per_window: int  # segments of the last window (1 + the split function's calls)
    executions: int  # every block execution in the log, inside the window or not
    log_bytes: int
    seconds: float  # wall time of the logged run, parsing included


class _Counting:
    """The window's state while the log streams by: inside a call or not, inside a split call or not, the
    segment, and the last block executed inside (whose transition the next block resolves)."""

    __slots__ = ("window", "counts", "inside", "excluded", "seg", "windows", "segments", "prev")

    def __init__(self, window: Window) -> None:
        self.window = window
        self.counts: list[Counter] = [Counter()]
        self.inside = self.excluded = False
        self.seg = self.windows = 0
        self.segments = 1
        self.prev = -1

    def executed(self, tb: int, pc: int) -> None:
        w = self.window
        if self.prev >= 0:
            self.counts[self.seg][self.prev, tb] += 1
            self.prev = -1
        if not self.inside:
            if pc != w.open_pc:
                return
            self.inside, self.seg, self.windows = True, 0, self.windows + 1
        elif pc in w.close_pcs:
            self.inside = self.excluded = False
            self.segments = self.seg + 1
            return
        elif self.excluded:
            if pc not in w.split_returns:
                return
            self.excluded, self.seg = False, self.seg + 1
            if self.seg == len(self.counts):
                self.counts.append(Counter())
        elif pc == w.split_pc:
            self.excluded = True
            return
        self.prev = tb


def parse_log(lines: IO[str], window: Window) -> Trace:
    """Count transitions inside `window` over a log stream (see the module docstring). A `Trace` line followed by
    QEMU's "Stopped execution of TB chain" did not run (the instruction budget ran out first): it is dropped."""
    blocks: list[Block] = []
    bound: dict[str, int] = {}  # exec key (host TB pointer and flags) -> block index
    pending: dict[int, tuple[Insn, ...]] = {}  # translated, not yet executed: start pc -> instructions
    current: list[Insn] = []
    counting = _Counting(window)
    held: tuple[int, int] | None = None
    executions = size = 0
    for line in lines:
        size += len(line)
        if line.startswith("Trace "):
            if current:
                pending[current[0].address], current = tuple(current), []
            if held is not None:
                counting.executed(*held)
            executions += 1
            parts = line.split(None, 4)
            key = parts[2] + parts[3]
            pc = int(parts[3][10:18], 16)
            insns = pending.pop(pc, None)
            if insns is not None:
                bound[key] = len(blocks)
                blocks.append(Block(insns))
            if key not in bound:
                raise BuildError(f"QEMU log: block at {pc:#x} executed before any translation of it was logged")
            held = (bound[key], pc)
        elif line.startswith("Stopped execution"):
            held, executions = None, executions - 1
        elif line.startswith("0x"):
            insn = parse_line(line)
            if insn is not None:
                current.append(insn)
        elif current:
            pending[current[0].address], current = tuple(current), []
    if held is not None:
        counting.executed(*held)
    return Trace(tuple(blocks), tuple(tuple((a, b, n) for (a, b), n in sorted(c.items())) for c in counting.counts),
                 counting.windows, counting.segments, executions, size, 0.0)


def logged_run(cmd: list[str], window: Window, cwd: str | os.PathLike | None, timeout: float) -> tuple[Trace, str]:
    """Run QEMU (`cmd` without -d/-D) with its block log streamed through a FIFO into parse_log; the parsed
    trace and QEMU's console output. The log never reaches the disk."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tinyq_cycles_") as tmp:
        fifo = Path(tmp) / "qemu.log"
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        writer = os.open(fifo, os.O_WRONLY)  # held until QEMU ends, so the reader sees EOF only then
        os.set_blocking(reader, True)
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                outcome["proc"] = run_child(cmd + ["-d", "in_asm,exec,nochain", "-D", str(fifo)], cwd=cwd,
                                            timeout=timeout)
            except BaseException as exc:  # handed to the caller below
                outcome["error"] = exc
            finally:
                os.close(writer)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        with os.fdopen(reader, "r", buffering=1 << 20, errors="replace") as stream:
            try:
                trace = parse_log(stream, window)
            finally:
                for _ in stream:  # let QEMU finish writing whatever happened here
                    pass
        thread.join()
    if "error" in outcome:
        raise BuildError(f"{cmd[-1] if cmd else 'QEMU'}: logged QEMU run failed: {outcome['error']}")
    proc = outcome["proc"]
    if proc.returncode != 0:
        raise BuildError(f"logged QEMU run exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return Trace(trace.blocks, trace.transitions, trace.windows, trace.segments_per_window, trace.executions,
                 trace.log_bytes, time.perf_counter() - start), proc.stdout
