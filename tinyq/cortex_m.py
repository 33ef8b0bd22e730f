"""The firmware stub on Cortex-M cores: cross-build, runs in QEMU (micro:bit, mps2, mps3 boards; the Cortex-M4 on
mps2-an386 by default), flash/RAM split, instruction counts.

What "instructions per inference" means: QEMU runs with `-icount shift=0`, so its virtual clock advances 1 ns
per executed guest instruction; SysTick counts the core clock, i.e. one tick per 40 instructions at 25 MHz (50 at
20 MHz on mps2-an505, 31.25 at 32 MHz on mps3-an547, 62.5 at 16 MHz on the micro:bit). The
board code (firmware_stub/board/cortex_m/measure.c) reads the counter right before and after every
`tinyq_backend_invoke` call and subtracts the measured cost of an empty read-read pair. Each reading is
quantised to one tick; the figure reported is the mean over every inference of the run. It counts
instructions, not cycles: QEMU models no pipeline, wait states or multi-cycle multiplies.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BuildError, VerificationError
from .progress import counted
from .native import run_child

TARGET = "cortex-m4"
QEMU_MACHINE = "mps2-an386"
# Each Cortex-M target (firmware_stub/targets/<name>.mk: CPU, memory map, clock) and the QEMU board that runs it.
QEMU_MACHINES = {
    "cortex-m0": "microbit",
    "cortex-m3": "mps2-an385",
    "cortex-m4": "mps2-an386",
    "cortex-m7": "mps2-an500",
    "cortex-m33": "mps2-an505",
    "cortex-m55": "mps3-an547",
}
TARGETS = tuple(QEMU_MACHINES)


def machine(target: str) -> str:
    """The QEMU board of a Cortex-M target; an unknown target raises, naming the known ones."""
    if target not in QEMU_MACHINES:
        raise BuildError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    return QEMU_MACHINES[target]
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")
INSTALL_HINT = ("apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi "
                "qemu-system-arm")
# QEMU with -icount runs roughly 100-500 million guest instructions a second on this class of machine.
GUEST_INSTRUCTIONS_PER_SECOND_FLOOR = 20_000_000
BOARD_LINE = "tinyq-board:"
BOARD_SOURCES = ("startup", "board", "measure")
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
        )
    except (KeyError, ValueError) as exc:
        raise BuildError(f"{where}: malformed board report {lines[-1]!r}: {exc}") from exc


def qemu_command(elf: str | os.PathLike, args: tuple[str, ...] = (), target: str = TARGET) -> list[str]:
    """The QEMU command line: the target's board, console on stdio, semihosting, one instruction = 1 ns."""
    cmd = ["qemu-system-arm", "-machine", machine(target), "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf)]
    if args:
        cmd += ["-append", " ".join(args)]
    return cmd


def run_qemu(elf: str | os.PathLike, args: tuple[str, ...] = (), cwd: str | os.PathLike | None = None,
             timeout: float = 600.0, poll=None, target: str = TARGET) -> QemuRun:
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

    @classmethod
    def from_board(cls, board: BoardReport) -> "RunFigures":
        return cls(int(round(board.instructions_per_inference)), board.instructions_x256_min // 256,
                   board.instructions_x256_max // 256, board.instructions_per_tick, board.stack_invoke_bytes,
                   board.stack_peak_bytes, board.heap_bytes)


@dataclass(frozen=True)
class QemuGolden:
    """The golden vectors run in QEMU: pass/fail, main's summary line, how many ran, and the board's figures."""

    passed: bool
    summary: str
    count: int
    figures: RunFigures


def run_qemu_golden(elf: str | os.PathLike, timeout: float = 600.0, target: str = TARGET) -> QemuGolden:
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


def run_qemu_batch_measured(elf: str | os.PathLike, inputs: np.ndarray, output_bytes: int,
                            timeout: float | None = None, tick=None, target: str = TARGET) -> QemuBatch:
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
    return QemuBatch(outputs, RunFigures.from_board(run.board))


def run_qemu_batch(elf: str | os.PathLike, inputs: np.ndarray, output_bytes: int) -> np.ndarray:
    """Outputs (n, output_bytes) int8 of the emulated stub for n raw int8 input tensors."""
    return run_qemu_batch_measured(elf, inputs, output_bytes).outputs


@dataclass(frozen=True)
class FlashSplit:
    """Bytes to flash (.text + .rodata + .data initialisers + tables), split by where they come from."""

    model_constants: int  # read-only data of the generated model files (weights, biases, multipliers)
    engine_code: int  # code of the generated model and of the stub (kernels, backend, main) and its constants
    golden_vectors: int  # the generated golden test vectors (test data, not needed in a product)
    startup_libc: int  # vector table, start-up, board support, newlib, libgcc, padding

    @property
    def total(self) -> int:
        return self.model_constants + self.engine_code + self.golden_vectors + self.startup_libc


@dataclass(frozen=True)
class RamSplit:
    """RAM at its peak: the engine's arena and state, other static data, heap, and the stack high-water mark."""

    arena: int  # .data + .bss of the generated model files (the C engine's arena and state)
    static_other: int  # every other .data + .bss (stub buffers, newlib, board)
    heap: int  # what newlib took from the heap (stdio buffers, file handles)
    stack_peak: int  # deepest stack use of the whole run, painted at reset

    @property
    def total(self) -> int:
        return self.arena + self.static_other + self.heap + self.stack_peak


FLASH_SECTIONS = (".text", ".rodata", ".ARM.extab", ".ARM.exidx", ".init_array", ".data")
RAM_SECTIONS = (".data", ".bss")
_MAP_ENTRY = re.compile(r"^ (\.[\w.$]+|COMMON)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")


def section_sizes(elf: str | os.PathLike) -> dict[str, int]:
    """Section name -> bytes, from `arm-none-eabi-size -A`."""
    check_toolchain()
    proc = run_child(["arm-none-eabi-size", "-A", str(elf)])
    if proc.returncode != 0:
        raise BuildError(f"{elf}: arm-none-eabi-size failed: {proc.stderr.strip()}")
    sizes = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def map_contributions(map_file: str | os.PathLike) -> list[tuple[str, str, int]]:
    """(output section, input object, bytes) for every input section the linker placed, from the map file."""
    path = Path(map_file)
    if not path.is_file():
        raise BuildError(f"{path}: linker map file missing (the cortex-m4 target links with -Map)")
    lines = path.read_text().splitlines()
    try:
        start = lines.index("Linker script and memory map")
    except ValueError as exc:
        raise BuildError(f"{path}: not a GNU ld map file") from exc
    out: list[tuple[str, str, int]] = []
    current = ""
    pending = ""
    for line in lines[start + 1:]:
        top = re.match(r"^(\.[\w.]+)\s+0x[0-9a-f]+\s+0x[0-9a-f]+", line) or re.match(r"^(\.[\w.]+)\s*$", line)
        if top and not line.startswith(" "):
            current, pending = top.group(1), ""
            continue
        if re.match(r"^ \.[\w.$]+\s*$", line) or line.strip() == "COMMON":
            pending = line.strip()
            continue
        m = _MAP_ENTRY.match(line)
        if m and (m.group(1) or pending):
            out.append((current, m.group(4).strip(), int(m.group(3), 16)))
        pending = ""
    return out


def _stem(obj: str) -> str:
    """`build/x/mnist_model.o` -> `mnist_model`; `libc.a(lib_a-printf.o)` -> `libc.a(lib_a-printf.o)`."""
    if "(" in obj:
        return obj
    name = os.path.basename(obj)
    for suffix in (".o", ".obj"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for suffix in (".c", ".cc", ".cpp"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _generated_stems(gen_dir: str | os.PathLike) -> set[str]:
    """Stems of the model's own generated sources (the runtime copied beside them counts as engine code)."""
    from .resources import runtime_dir

    runtime = {p.stem for p in runtime_dir().glob("*.c")}
    return {p.stem for p in Path(gen_dir).iterdir() if p.suffix in (".c", ".cc", ".cpp")} - runtime


def flash_and_ram(elf: str | os.PathLike, map_file: str | os.PathLike, gen_dir: str | os.PathLike,
                  heap: int, stack_peak: int) -> tuple[FlashSplit, RamSplit]:
    """Split flash and RAM by origin: generated model files, stub/engine objects, start-up and libraries."""
    sizes = section_sizes(elf)
    flash_total = sum(sizes.get(s, 0) for s in FLASH_SECTIONS)
    static_total = sum(sizes.get(s, 0) for s in RAM_SECTIONS)
    generated = _generated_stems(gen_dir)
    model = engine = golden = arena = 0
    for section, obj, size in map_contributions(map_file):
        stem = _stem(obj)
        is_gen = stem in generated
        is_stub = not is_gen and "(" not in obj and obj.endswith(".o") and stem not in BOARD_SOURCES
        if section in (".data", ".bss") and is_gen:
            arena += size
        if section not in FLASH_SECTIONS:
            continue
        if is_gen and stem.endswith("_golden"):
            golden += size
        elif is_gen and section in (".rodata", ".data"):
            model += size
        elif is_gen or is_stub:
            engine += size
    rest = flash_total - model - engine - golden
    if rest < 0:
        raise BuildError(f"{map_file}: map file contributions exceed the ELF's flash sections ({flash_total} bytes)")
    return (FlashSplit(model, engine, golden, rest),
            RamSplit(arena=arena, static_other=static_total - arena, heap=heap, stack_peak=stack_peak))


@dataclass(frozen=True)
class CortexMResult:
    """The stub on the Cortex-M4 (QEMU mps2-an386) at one optimisation level: sizes, counts, exactness."""

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

    @property
    def flash_bytes(self) -> int:
        return self.flash.total

    @property
    def ram_bytes(self) -> int:
        return self.ram.total


def build_cortex_m(gen_dir: str | os.PathLike, build_dir: str | os.PathLike, opt: str = "-O2",
                   target: str = TARGET) -> Path:
    """Cross-compile the stub and the generated C engine for the Cortex-M4 through the shared Makefile."""
    check_toolchain()
    from .firmware import build_stub

    machine(target)
    return Path(build_stub(gen_dir, build_dir, target=target, backend="c", opt=opt))


def measure_cortex_m(gen_dir: str | os.PathLike, build_dir: str | os.PathLike, inputs: np.ndarray,
                     expected: np.ndarray, opt: str = "-O2", progress=None, target: str = TARGET) -> CortexMResult:
    """Build for the Cortex-M4, pass the golden vectors in QEMU, stream `inputs` and compare with `expected`.

    `inputs` are raw int8 input tensors (n, input_bytes); `expected` TFLM's int8 outputs (n, output_bytes).
    Raises BuildError when the toolchain is missing or the build fails, VerificationError when the golden
    vectors fail in QEMU.
    """
    elf = build_cortex_m(gen_dir, build_dir, opt, target)
    golden = run_qemu_golden(elf, target=target)
    if not golden.passed:
        raise VerificationError(f"{elf}: golden vectors failed in QEMU ({machine(target)}): {golden.summary}")
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
    flash, ram = flash_and_ram(elf, Path(str(elf) + ".map"), gen_dir, heap, stack_peak)
    return CortexMResult(
        target=target, opt=opt, elf=elf, flash=flash, ram=ram,
        instructions_per_inference=b.instructions_per_inference,
        instructions_min=b.instructions_min, instructions_max=b.instructions_max,
        instructions_resolution=b.instructions_per_tick, golden_count=golden.count, golden_passed=golden.passed,
        stack_invoke_bytes=max(g.stack_invoke_bytes, b.stack_invoke_bytes),
        images=len(expected), bitexact_images=exact,
    )
