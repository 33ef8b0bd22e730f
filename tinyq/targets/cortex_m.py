"""The firmware stub on a Cortex-M core: cross-build it for a registry target (registry.py), run it in that
core's QEMU board (qemu.py), and measure it: instructions per inference, exactness against TFLM, the flash and
RAM split (memory.py), per-op instructions from a `make PROFILE=1` build (profile.py).

The names of qemu.py, memory.py and profile.py that callers use with these are re-exported here, so the
Cortex-M side reads as one module: `cortex_m.run_qemu`, `cortex_m.flash_and_ram`, `cortex_m.OpProfile`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine import Graph
from ..errors import VerificationError
from ..progress import counted
from .firmware import build_stub
from .memory import (BOARD_SOURCES, FLASH_SECTIONS, HARNESS_SOURCES, RAM_SECTIONS, FlashSplit, LinkFit, RamSplit,
                     flash_and_ram, link_fit, map_contributions, section_sizes)
from .profile import OpCost, OpProfile, ProfileReport, op_costs, parse_profile_report, with_cycles
from .qemu import (BoardReport, QemuBatch, QemuGolden, QemuRun, RunFigures, check_toolchain, parse_board_report,
                   qemu_command, run_qemu, run_qemu_batch, run_qemu_batch_measured, run_qemu_golden)
from .registry import DEFAULT_TARGET, get
from . import cycles as cycle_model

__all__ = [
    "BOARD_SOURCES", "FLASH_SECTIONS", "HARNESS_SOURCES", "RAM_SECTIONS", "BoardReport", "CortexMResult",
    "FlashSplit", "LinkFit", "OpCost", "OpProfile", "ProfileReport", "QemuBatch", "QemuGolden", "QemuRun",
    "RamSplit", "RunFigures", "build_cortex_m", "check_toolchain", "flash_and_ram", "link_fit", "map_contributions",
    "measure_cortex_m",
    "measure_elf", "model_cycles", "op_costs", "parse_board_report", "parse_profile_report", "profile_ops",
    "qemu_command",
    "run_qemu", "run_qemu_batch", "run_qemu_batch_measured", "run_qemu_golden", "section_sizes",
]


@dataclass(frozen=True)
class CortexMResult:
    """The stub on one Cortex-M core (in its QEMU board) at one optimisation level: sizes, counts, exactness."""

    target: str
    opt: str
    elf: Path
    flash: FlashSplit
    ram: RamSplit
    instructions_per_inference: int  # mean over the bulk run's images, counter overhead removed
    instructions_min: int
    instructions_max: int
    instructions_resolution: int  # one SysTick tick, in instructions
    golden_count: int
    golden_passed: bool
    stack_invoke_bytes: int  # deepest stack during one inference (main's frames included)
    images: int
    bitexact_images: int
    cycles: cycle_model.CycleCount | None = None  # modelled cycles of the golden run's inferences

    @property
    def cycles_per_inference(self) -> float | None:
        return None if self.cycles is None else self.cycles.cycles_per_call

    @property
    def flash_bytes(self) -> int:
        return self.flash.total

    @property
    def ram_bytes(self) -> int:
        return self.ram.total


def build_cortex_m(gen_dir: str | os.PathLike, build_dir: str | os.PathLike, opt: str = "-O2",
                   target: str = DEFAULT_TARGET, profile: bool = False) -> Path:
    """Cross-compile the stub and the generated C engine for a Cortex-M target through the shared Makefile;
    `profile` builds it with `PROFILE=1` (per-op instruction counts, see profile_ops)."""
    check_toolchain()
    get(target)
    return Path(build_stub(gen_dir, build_dir, target=target, backend="c", opt=opt,
                           extra=("PROFILE=1",) if profile else ()))


def measure_cortex_m(gen_dir: str | os.PathLike, build_dir: str | os.PathLike, inputs: np.ndarray,
                     expected: np.ndarray, opt: str = "-O2", progress=None,
                     target: str = DEFAULT_TARGET, cycles: bool = False) -> CortexMResult:
    """Build the C engine for a Cortex-M target, pass the golden vectors in QEMU, stream `inputs` and compare with
    `expected` (measure_elf).

    `inputs` are raw int8 input tensors (n, input_bytes); `expected` TFLM's int8 outputs (n, output_bytes).
    Raises BuildError when the toolchain is missing or the build fails, VerificationError when the golden
    vectors fail in QEMU.
    """
    return measure_elf(build_cortex_m(gen_dir, build_dir, opt, target), gen_dir, inputs, expected, opt, progress,
                       target, cycles)


def measure_elf(elf: Path, gen_dir: str | os.PathLike, inputs: np.ndarray, expected: np.ndarray, opt: str = "-O2",
                progress=None, target: str = DEFAULT_TARGET, cycles: bool = False) -> CortexMResult:
    """Golden vectors, then `inputs` in QEMU, with the deployment split of flash and RAM, for a stub ELF of any
    backend built from `gen_dir` (the C engine, or TFLM with its own kernels); with `cycles`, the golden run
    once more under the block log for modelled cycles (model_cycles; None for a core without a table)."""
    golden = run_qemu_golden(elf, target=target)
    if not golden.passed:
        raise VerificationError(f"{elf}: golden vectors failed in QEMU ({get(target).qemu_machine}): "
                                f"{golden.summary}")
    expected = np.asarray(expected, dtype=np.int8)
    expected = expected.reshape(len(expected), -1)
    if len(inputs) != len(expected):
        raise VerificationError(f"{len(inputs)} inputs but {len(expected)} expected outputs")
    tick = counted(progress, f"{target} in QEMU: test inputs", len(inputs)) if progress else None
    batch = run_qemu_batch_measured(elf, inputs, expected.shape[1], tick=tick, target=target)
    exact = int(np.sum(np.all(batch.outputs == expected, axis=1)))
    g, b = golden.figures, batch.figures
    stack_peak = max(g.stack_peak_bytes, b.stack_peak_bytes)
    heap = max(g.heap_bytes, b.heap_bytes)
    engine_stack = max(f.stack_invoke_bytes - f.stack_caller_bytes for f in (g, b))
    flash, ram = flash_and_ram(elf, Path(str(elf) + ".map"), gen_dir, heap, stack_peak, engine_stack)
    return CortexMResult(
        target=target, opt=opt, elf=elf, flash=flash, ram=ram,
        instructions_per_inference=b.instructions_per_inference,
        instructions_min=b.instructions_min, instructions_max=b.instructions_max,
        instructions_resolution=b.instructions_per_tick, golden_count=golden.count, golden_passed=golden.passed,
        stack_invoke_bytes=max(g.stack_invoke_bytes, b.stack_invoke_bytes),
        images=len(expected), bitexact_images=exact,
        cycles=model_cycles(elf, target) if cycles else None,
    )


def model_cycles(elf: Path, target: str, per_op: bool = False) -> cycle_model.CycleCount | None:
    """Modelled cycles of the golden run's inferences on `target` (zero-wait memory), per kernel call when `elf`
    is a PROFILE=1 build and `per_op`; None for a core the cycle model has no table for."""
    if target not in cycle_model.TIMINGS:
        return None
    split = cycle_model.TRACE_MARK if per_op else None
    trace = cycle_model.trace_function(elf, cycle_model.INVOKE, split, target=target)
    return cycle_model.count(trace, cycle_model.timing_for(target))


def profile_ops(gen_dir: str | os.PathLike, build_dir: str | os.PathLike, graph: Graph, inputs: np.ndarray,
                expected: np.ndarray, opt: str = "-O2", target: str = DEFAULT_TARGET, progress=None,
                cycles: bool = False) -> OpProfile:
    """Instructions of every kernel call on a Cortex-M target: a `make PROFILE=1` build of the folder (the
    engine's TINYQ_TRACE hook marks the counter after each call) streams `inputs` in QEMU; its outputs are
    compared with `expected` (TFLM's). About 100 inputs give stable means; the unprofiled build
    (measure_cortex_m) keeps the per-inference figures, the marks add a few dozen instructions per call."""
    elf = build_cortex_m(gen_dir, build_dir, opt, target, profile=True)
    expected = np.asarray(expected, dtype=np.int8)
    expected = expected.reshape(len(expected), -1)
    if len(inputs) != len(expected):
        raise VerificationError(f"{len(inputs)} inputs but {len(expected)} expected outputs")
    tick = counted(progress, f"{target} in QEMU: per-op profile", len(inputs)) if progress else None
    batch = run_qemu_batch_measured(elf, inputs, expected.shape[1], tick=tick, target=target)
    report = parse_profile_report(batch.console, str(elf))
    exact = int(np.sum(np.all(batch.outputs == expected, axis=1)))
    ops = op_costs(gen_dir, graph, report, str(elf))
    modelled = model_cycles(elf, target, per_op=True) if cycles else None
    if modelled is not None:
        ops = with_cycles(ops, modelled.segment_cycles, modelled.calls, str(elf))
    return OpProfile(target, opt, len(expected), exact, report.instructions_per_tick, ops,
                     report.tail_sum / report.invokes)
