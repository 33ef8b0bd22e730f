"""Per-op instruction counts on a Cortex-M core: the `tinyq-profile:` and `tinyq-op:` lines a `make PROFILE=1`
build prints (board/cortex_m/profile.c, the sink of the generated engine's TINYQ_TRACE hook, reads the same
counter as measure.c after every kernel call), named after the folder's kernel calls and the graph's ops.
The build and run are cortex_m.profile_ops; the headline figures stay those of the unprofiled build."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import BuildError
from ..engine import Graph, op_macs
from ..outdir import read_json

PROFILE_LINE = "tinyq-profile:"
OP_LINE = "tinyq-op:"


@dataclass(frozen=True)
class ProfileReport:
    """What profile.c prints at exit: instructions since the previous mark, summed over every inference, for
    each kernel call in call order; the marks' own overhead (x256, mean of 256 empty marks) not yet removed."""

    invokes: int
    overhead_x256: int
    tail_sum: int  # after the last kernel call until the invoke returned
    instructions_per_tick: int
    call_ops: tuple[int, ...]  # the op index of each kernel call
    call_sums: tuple[int, ...]

    def mean(self, call: int) -> float:
        """Mean instructions of one kernel call per inference, the marks' overhead removed."""
        return (self.call_sums[call] * 256 - self.invokes * self.overhead_x256) / 256 / self.invokes


def _fields(line: str, prefix: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in line[len(prefix):].split())


def parse_profile_report(text: str, where: str) -> ProfileReport:
    """The `tinyq-profile:` and `tinyq-op:` lines of a `make PROFILE=1` run's console output."""
    heads = [ln for ln in text.splitlines() if ln.startswith(PROFILE_LINE)]
    if not heads:
        raise BuildError(f"{where}: no '{PROFILE_LINE}' line in the QEMU output (not a PROFILE=1 build?)")
    try:
        head = _fields(heads[-1], PROFILE_LINE)
        ops = [_fields(ln, OP_LINE) for ln in text.splitlines() if ln.startswith(OP_LINE)]
        invokes, calls = int(head["invokes"]), int(head["calls"])
        if int(head["overflow"]):
            raise BuildError(f"{where}: more kernel calls per inference than the profile's {head['max_calls']} "
                             f"slots (raise TINYQ_PROFILE_MAX_CALLS in profile.c)")
        if int(head["mismatch"]):
            raise BuildError(f"{where}: the kernel calls differed from one inference to the next "
                             f"({head['mismatch']} times); per-op counts would be mixed")
        if invokes == 0 or len(ops) != calls or [int(o["call"]) for o in ops] != list(range(calls)):
            raise BuildError(f"{where}: profile of {invokes} inferences lists {len(ops)} of {calls} kernel calls")
        return ProfileReport(invokes, int(head["overhead_x256"]), int(head["tail_sum"]),
                             int(head["instructions_per_tick"]), tuple(int(o["op"]) for o in ops),
                             tuple(int(o["sum"]) for o in ops))
    except (KeyError, ValueError) as exc:
        raise BuildError(f"{where}: malformed profile report: {exc}") from exc


@dataclass(frozen=True)
class OpCost:
    """One kernel call of the generated engine on the target: mean instructions per inference (counter overhead
    removed) and the multiply-accumulates of its op (0 for ops without any)."""

    op_index: int
    op_name: str
    kernel: str
    instructions: float
    macs: int
    cycles: float | None = None  # modelled cycles per inference (cycles.py), None when not modelled

    @property
    def instructions_per_mac(self) -> float | None:
        return self.instructions / self.macs if self.macs else None

    @property
    def cycles_per_mac(self) -> float | None:
        return self.cycles / self.macs if self.macs and self.cycles is not None else None


@dataclass(frozen=True)
class OpProfile:
    """Per-op instruction counts of the profiled build over `images` inputs, and its outputs' exactness.

    Each mark is quantised to one SysTick tick (`resolution` instructions), so one op's figure is only meaningful
    as a mean over many inferences. `outside` is what the invoke spent outside every kernel call (entry, return)."""

    target: str
    opt: str
    images: int
    bitexact_images: int
    resolution: int
    ops: tuple[OpCost, ...]
    outside: float  # per inference, one mark's overhead included

    @property
    def instructions(self) -> float:
        """The sum over every kernel call: comparable with the unprofiled build's instructions per inference."""
        return sum(o.instructions for o in self.ops)


def op_costs(gen_dir: str | os.PathLike, graph: Graph, profile: ProfileReport, where: str) -> tuple[OpCost, ...]:
    """Name each profiled kernel call after the kernels the folder's manifest lists (the ones its engine was
    generated with) and the graph (op, MACs); raises BuildError when the firmware's calls are not those."""
    manifest = read_json(Path(gen_dir) / "manifest.json", "the manifest of the generated files")
    engine = manifest.get("c_engine") if isinstance(manifest, dict) else None
    try:
        calls = [(int(c["op"]), str(c["kernel"])) for c in engine["calls"]]
    except (TypeError, KeyError, ValueError) as exc:
        raise BuildError(f"{gen_dir}: manifest.json lists no C engine kernel calls; emit the folder again") from exc
    if tuple(op for op, _ in calls) != profile.call_ops:
        raise BuildError(f"{where}: the firmware's kernel calls (ops {list(profile.call_ops)}) are not the "
                         f"folder's (ops {[op for op, _ in calls]}); emit the folder again")
    if any(op >= len(graph.operators) for op, _ in calls):
        raise BuildError(f"{gen_dir}: manifest.json names ops this model does not have; emit the folder again")
    return tuple(OpCost(op, graph.operators[op].name, kernel, profile.mean(k),
                         op_macs(graph, graph.operators[op]))
                 for k, (op, kernel) in enumerate(calls))


def with_cycles(ops: tuple[OpCost, ...], segment_cycles: tuple[int, ...], calls: int,
                where: str) -> tuple[OpCost, ...]:
    """The ops with their modelled cycles per inference: segment k of the cycle trace is kernel call k (the
    trace is split at each call's profile mark; the last segment is the invoke's tail)."""
    if len(segment_cycles) not in (len(ops), len(ops) + 1):  # no tail segment when the last mark is a tail call
        raise BuildError(f"{where}: the cycle trace has {len(segment_cycles)} segments for {len(ops)} kernel calls")
    return tuple(replace(o, cycles=segment_cycles[k] / calls) for k, o in enumerate(ops))
