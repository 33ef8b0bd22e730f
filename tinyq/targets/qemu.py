"""The firmware stub on a Cortex-M core in QEMU: the command line, runs until the firmware exits through
semihosting, and the board's closing report (instruction counts, stack and heap).

What "instructions per inference" means: QEMU runs with `-icount shift=0`, so its virtual clock advances 1 ns
per executed guest instruction; SysTick counts the core clock, i.e. one tick per `Target.tick_x256 / 256`
instructions (40 at 25 MHz on the mps2 boards, 50 at 20 MHz on mps2-an505, 31.25 at 32 MHz on mps3-an547, 62.5 at
16 MHz on the micro:bit). The board code (firmware_stub/board/cortex_m/measure.c) reads the counter right before
and after every `tinyq_backend_invoke` call and subtracts the measured cost of an empty read-read pair. Each
reading is quantised to one tick; the figure reported is the mean over every inference of the run. It counts
instructions, not cycles: QEMU models no pipeline, wait states or multi-cycle multiplies (targets/cycles models
them from the same run's block log).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BuildError
from ..native import run_child
from .registry import DEFAULT_TARGET, get

TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")
INSTALL_HINT = ("apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi "
                "qemu-system-arm")
BOARD_LINE = "tinyq-board:"
EXIT_FAULT = 99  # startup.c: any fault exception ends the run with this code (TINYQ_EXIT_FAULT)


def check_toolchain() -> None:
    """Raise BuildError in one line when the Arm cross compiler or QEMU is not installed."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise BuildError(f"Cortex-M4 needs {', '.join(missing)} (not found on PATH); install with: {INSTALL_HINT}")


@dataclass(frozen=True)
class BoardReport:
    """What the board code prints at exit: per-inference instruction counts (x256) and memory high-water marks."""

    invokes: int
    instructions_x256_sum: int
    instructions_x256_min: int
    instructions_x256_max: int
    overhead_x256: int
    instructions_per_tick: int
    stack_invoke_bytes: int
    stack_peak_bytes: int
    stack_size_bytes: int
    heap_bytes: int
    stack_caller_bytes: int = 0  # stack in use where the stub calls the engine (main's and the wrapper's frames)

    @property
    def instructions_per_inference(self) -> float:
        """Mean instructions of one `tinyq_backend_invoke` call, counter overhead removed."""
        return self.instructions_x256_sum / 256 / self.invokes if self.invokes else 0.0


@dataclass(frozen=True)
class QemuRun:
    """One QEMU run of the stub: exit code, console text and the board's closing report."""

    returncode: int
    stdout: str
    board: BoardReport


def parse_board_report(text: str, where: str) -> BoardReport:
    """The `tinyq-board:` line of a run's console output."""
    lines = [ln for ln in text.splitlines() if ln.startswith(BOARD_LINE)]
    if not lines:
        tail = text.strip().splitlines()[-3:]
        raise BuildError(f"{where}: no '{BOARD_LINE}' line in the QEMU output (last lines: {tail})")
    fields = dict(kv.split("=", 1) for kv in lines[-1][len(BOARD_LINE):].split())
    try:
        return BoardReport(
            invokes=int(fields["invokes"]),
            instructions_x256_sum=int(fields["instructions_x256_sum"]),
            instructions_x256_min=int(fields["instructions_x256_min"]),
            instructions_x256_max=int(fields["instructions_x256_max"]),
            overhead_x256=int(fields["overhead_x256"]),
            instructions_per_tick=int(fields["instructions_per_tick"]),
            stack_invoke_bytes=int(fields["stack_invoke"]),
            stack_peak_bytes=int(fields["stack_peak"]),
            stack_size_bytes=int(fields["stack_size"]),
            heap_bytes=int(fields["heap"]),
            stack_caller_bytes=int(fields["stack_caller"]),
        )
    except (KeyError, ValueError) as exc:
        raise BuildError(f"{where}: malformed board report {lines[-1]!r}: {exc}") from exc


def qemu_command(elf: str | os.PathLike, args: tuple[str, ...] = (),
                 target: str = DEFAULT_TARGET) -> list[str]:
    """The QEMU command line: the target's board, console on stdio, semihosting, one instruction = 1 ns."""
    cmd = ["qemu-system-arm", "-machine", get(target).qemu_machine, "-nographic", "-monitor", "none",
           "-serial", "none", "-semihosting-config", "enable=on,target=native", "-icount", "shift=0",
           "-kernel", str(elf)]
    if args:
        cmd += ["-append", " ".join(args)]
    return cmd


def run_qemu(elf: str | os.PathLike, args: tuple[str, ...] = (), cwd: str | os.PathLike | None = None,
             timeout: float = 600.0, poll=None, target: str = DEFAULT_TARGET) -> QemuRun:
    """Run the ELF in QEMU until it exits through semihosting; its exit code becomes QEMU's. `poll()` is called
    about twice a second while it runs (progress)."""
    check_toolchain()
    elf = Path(elf).resolve()
    if not elf.is_file():
        raise BuildError(f"{elf}: no such ELF file")
    if any(" " in a for a in args):
        raise BuildError(f"{elf}: semihosting arguments cannot contain spaces: {args}")
    try:
        proc = run_child(qemu_command(elf, args, target), cwd=cwd, timeout=timeout, poll=poll)
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{elf}: QEMU did not finish within {timeout:.0f} s") from exc
    if proc.returncode == EXIT_FAULT and BOARD_LINE not in proc.stdout:
        raise BuildError(f"{elf}: the firmware took a fault exception (HardFault, bus, usage or memory fault) "
                         f"after: {proc.stdout.strip()[-200:]!r}")
    if proc.returncode != 0 and BOARD_LINE not in proc.stdout:
        raise BuildError(f"{elf}: QEMU exited with {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-400:]}")
    board = parse_board_report(proc.stdout, str(elf))
    if board.stack_peak_bytes >= board.stack_size_bytes:
        raise BuildError(f"{elf}: the stack used all of its {board.stack_size_bytes} bytes (probable overflow into "
                         f"the heap); enlarge STACK_SIZE in firmware_stub/board/cortex_m/cortex_m.ld")
    return QemuRun(proc.returncode, proc.stdout, board)


@dataclass(frozen=True)
class RunFigures:
    """What the board reported over one QEMU run's inferences: instructions (counter overhead removed), stack, heap."""

    instructions_per_inference: int
    instructions_min: int
    instructions_max: int
    instructions_per_tick: int
    stack_invoke_bytes: int
    stack_peak_bytes: int
    heap_bytes: int
    stack_caller_bytes: int = 0

    @classmethod
    def from_board(cls, board: BoardReport) -> "RunFigures":
        return cls(int(round(board.instructions_per_inference)), board.instructions_x256_min // 256,
                   board.instructions_x256_max // 256, board.instructions_per_tick, board.stack_invoke_bytes,
                   board.stack_peak_bytes, board.heap_bytes, board.stack_caller_bytes)


@dataclass(frozen=True)
class QemuGolden:
    """The golden vectors run in QEMU: pass/fail, main's summary line, how many ran, and the board's figures."""

    passed: bool
    summary: str
    count: int
    figures: RunFigures


def run_qemu_golden(elf: str | os.PathLike, timeout: float = 600.0, target: str = DEFAULT_TARGET) -> QemuGolden:
    """Run the stub without arguments: every golden vector, compared inside the firmware; exit 0 = all match."""
    run = run_qemu(elf, timeout=timeout, target=target)
    lines = [ln for ln in run.stdout.splitlines() if ln.strip() and not ln.startswith(BOARD_LINE)]
    summary = lines[-1].strip() if lines else ""
    return QemuGolden(run.returncode == 0, summary, run.board.invokes, RunFigures.from_board(run.board))


@dataclass(frozen=True)
class QemuBatch:
    """Raw int8 outputs of a bulk run, with the board's figures over all of its inferences."""

    outputs: np.ndarray
    figures: RunFigures
    console: str = ""  # the run's console output (the board's closing lines)


def run_qemu_batch_measured(elf: str | os.PathLike, inputs: np.ndarray, output_bytes: int,
                            timeout: float | None = None, tick=None, target: str = DEFAULT_TARGET) -> QemuBatch:
    """Stream int8 input tensors through the emulated stub (semihosting file I/O) and read its outputs back;
    `tick(done)` follows the outputs as they reach the host file."""
    x = np.ascontiguousarray(np.asarray(inputs, dtype=np.int8).reshape(len(inputs), -1))
    n = len(x)
    with tempfile.TemporaryDirectory(prefix="tinyq_qemu_") as tmp:
        (Path(tmp) / "in.bin").write_bytes(x.tobytes())
        out_path = Path(tmp) / "out.bin"

        def poll() -> None:
            if tick is not None and out_path.exists():
                tick(min(n, out_path.stat().st_size // max(output_bytes, 1)))

        run = run_qemu(elf, ("in.bin", "out.bin"), cwd=tmp, timeout=timeout or 600.0 + n * 2.0, poll=poll,
                       target=target)
        if tick is not None:
            tick(n)
        data = out_path.read_bytes() if out_path.exists() else b""
    if run.returncode != 0 or len(data) != n * output_bytes:
        raise BuildError(f"{elf}: bulk run of {n} inputs exited {run.returncode} with {len(data)} output bytes "
                         f"(expected {n * output_bytes}): {run.stdout.strip()[-300:]}")
    outputs = np.frombuffer(data, dtype=np.int8).reshape(n, output_bytes).copy()
    return QemuBatch(outputs, RunFigures.from_board(run.board), run.stdout)


def run_qemu_batch(elf: str | os.PathLike, inputs: np.ndarray, output_bytes: int) -> np.ndarray:
    """Outputs (n, output_bytes) int8 of the emulated stub for n raw int8 input tensors."""
    return run_qemu_batch_measured(elf, inputs, output_bytes).outputs
