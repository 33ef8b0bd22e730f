"""Processes as /proc shows them, for the tests that check children die with tinyq.

Processes come and go while /proc is read: a pid listed by the directory scan may be gone before its stat or
cmdline is read, and a pid that died may be reused by an unrelated process. So every read of a pid tolerates
its disappearance, and a process is identified by (pid, start time) rather than by pid alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple


class Proc(NamedTuple):
    pid: int
    start: int  # clock ticks after boot (field 22 of /proc/PID/stat): with the pid, names one process for good


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a live pid, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1]), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> dict[Proc, str]:
    """Every live descendant of `pid` -> its command line; processes that vanish while /proc is read are left out."""
    parents: dict[int, int] = {}
    procs: dict[int, tuple[Proc, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        child = int(entry)
        stat = _stat(child)
        if stat is None:
            continue
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone between the two reads: both or neither are recorded
        parents[child] = stat[1]
        procs[child] = (Proc(child, stat[2]), cmdline.strip())
    found: dict[Proc, str] = {}
    frontier = {pid}
    seen = set()
    while frontier:
        seen |= frontier
        frontier = {c for c, parent in parents.items() if parent in frontier and c not in seen}
        found.update(procs[c] for c in frontier)
    return found


def alive(procs) -> list[Proc]:
    """The processes of `procs` still running: neither gone, nor a zombie, nor their pid reused since."""
    out = []
    for p in procs:
        stat = _stat(p.pid)
        if stat is not None and stat[0] != "Z" and stat[2] == p.start:
            out.append(p)
    return out


def proc_of(pid: int) -> Proc | None:
    """The process now running as `pid`, or None."""
    stat = _stat(pid)
    return None if stat is None else Proc(pid, stat[2])
