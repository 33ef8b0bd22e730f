"""Addresses in a Cortex-M ELF that bound a measurement window: a function's entry and the return address of
each of its call sites (from `arm-none-eabi-objdump -d`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ...errors import BuildError
from ...native import run_child

# objdump -d: "     4b0:\tf000 f8a2 \tbl\t5f8 <tinyq_backend_invoke>"
_CALL = re.compile(r"^\s*([0-9a-f]+):\s+((?:[0-9a-f]{4} ?)+)\s+(bl|blx|b\.w|b)\s+([0-9a-f]+) <([^>+]+)>")
_FUNCTION = re.compile(r"^([0-9a-f]+) <([^>]+)>:$")


@dataclass(frozen=True)
class CallSites:
    """One function of the ELF: its entry, the return addresses of the calls to it (BL) and the callers' return
    targets that a tail call to it (B.W) hands on, which this module cannot know and so lists apart."""

    name: str
    entry: int
    returns: frozenset[int]
    tail_called: bool


def disassemble(elf: str | os.PathLike) -> str:
    proc = run_child(["arm-none-eabi-objdump", "-d", str(elf)], timeout=120)
    if proc.returncode != 0:
        raise BuildError(f"{elf}: arm-none-eabi-objdump failed: {proc.stderr.strip()[-300:]}")
    return proc.stdout


def function_range(listing: str, name: str) -> tuple[int, int] | None:
    """[start, end) of a function in an objdump listing (end: the next function's start), or None."""
    starts = sorted(int(m.group(1), 16) for m in map(_FUNCTION.match, listing.splitlines()) if m)
    for line in listing.splitlines():
        f = _FUNCTION.match(line)
        if f and f.group(2) == name:
            start = int(f.group(1), 16)
            later = [s for s in starts if s > start]
            return (start, later[0]) if later else None
    return None


def log_filter(ranges: list[tuple[int, int]]) -> str:
    """QEMU's -dfilter value logging every address but the given [start, end) ranges."""
    out, at = [], 0
    for start, end in sorted(ranges):
        if start > at:
            out.append(f"{at:#x}..{start - 1:#x}")
        at = max(at, end)
    out.append(f"{at:#x}..0xffffffff")
    return ",".join(out)


def call_sites(listing: str, name: str, where: str) -> CallSites:
    """Entry and return addresses of `name` in an objdump listing; BuildError when it is not there."""
    entry = None
    returns = set()
    tail = False
    for line in listing.splitlines():
        f = _FUNCTION.match(line)
        if f and f.group(2) == name:
            entry = int(f.group(1), 16)
            continue
        m = _CALL.match(line)
        if m and m.group(5) == name:
            size = 2 * len(m.group(2).split())
            if m.group(3) in ("bl", "blx"):
                returns.add(int(m.group(1), 16) + size)
            else:
                tail = True
    if entry is None:
        raise BuildError(f"{where}: no function {name!r} in the ELF")
    if not returns:
        raise BuildError(f"{where}: {name!r} is never called with BL, so its calls cannot be delimited")
    return CallSites(name, entry, frozenset(returns), tail)
