"""The firmware stub on Cortex-M cores: cross-build, runs in QEMU (micro:bit, mps2, mps3 boards; the Cortex-M4 on
mps2-an386 by default), flash/RAM split, instruction counts.

What "instructions per inference" means: QEMU runs with `-icount shift=0`, so its virtual clock advances 1 ns
per executed guest instruction; SysTick counts the core clock, i.e. one tick per 40 instructions at 25 MHz (50 at
20 MHz on mps2-an505, 31.25 at 32 MHz on mps3-an547, 62.5 at 16 MHz on the micro:bit). The
board code (firmware_stub/board/cortex_m/measure.c) reads the counter right before and after every
`tinyq_backend_invoke` call and subtracts the measured cost of an empty read-read pair. Each reading is
quantised to one tick; the figure reported is the mean over every inference of the run. It counts
instructions, not cycles: QEMU models no pipeline, wait states or multi-cycle multiplies.

Per op (`profile_ops`): a second build with `make PROFILE=1` links board/cortex_m/profile.c as the sink of the
generated engine's TINYQ_TRACE hook, which reads the same counter after every kernel call; the headline figures
stay those of the unprofiled build.
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
# Objects of the stub that only the test harness needs (board support, main, trace and profile sinks).
HARNESS_SOURCES = BOARD_SOURCES + ("main", "trace", "profile")
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
    console: str = ""  # the run's console output (the board's closing lines)


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
    return QemuBatch(outputs, RunFigures.from_board(run.board), run.stdout)


def run_qemu_batch(elf: str | os.PathLike, inputs: np.ndarray, output_bytes: int) -> np.ndarray:
    """Outputs (n, output_bytes) int8 of the emulated stub for n raw int8 input tensors."""
    return run_qemu_batch_measured(elf, inputs, output_bytes).outputs


@dataclass(frozen=True)
class FlashSplit:
    """Bytes to flash (.text + .rodata + .data initialisers + tables): what a product links (the model's constants
    and the engine's code) apart from the test harness (golden vectors, the stub's main, start-up, libc)."""

    model_constants: int  # read-only data of the generated model files (weights, biases, multipliers)
    engine_code: int  # code and constants of the generated model, the kernels and the backend glue
    golden_vectors: int  # the generated golden test vectors (test data, not needed in a product)
    startup_libc: int  # vector table, start-up, board support, semihosting, newlib, libgcc, padding
    harness_code: int = 0  # the stub's main (golden loop, file I/O) and any trace or profile sink

    @property
    def deployment(self) -> int:
        """What a product flashes of tinyq's: model constants and engine code (its own start-up and libc apart)."""
        return self.model_constants + self.engine_code

    @property
    def total(self) -> int:
        return self.deployment + self.golden_vectors + self.startup_libc + self.harness_code


@dataclass(frozen=True)
class RamSplit:
    """RAM at its peak: what the engine needs in a product (arena with the kernels' scratch, its own static
    data, the stack of one inference) apart from what the test harness adds (its buffers, newlib, stdio heap,
    the stack of main and printf)."""

    arena: int  # .data + .bss of the generated model files: the arena (kernel scratch is planned in it), state
    engine_static: int  # .data + .bss of the kernels and backend glue
    stack_invoke: int  # deepest stack of one inference, below the caller's frame
    harness_static: int  # every other .data + .bss: stub input/output buffers, newlib, board, semihosting
    heap: int  # what newlib took from the heap (stdio buffers, file handles)
    stack_peak: int  # deepest stack use of the whole run, painted at reset (includes stack_invoke)

    @property
    def deployment(self) -> int:
        """Engine RAM in a product: arena + the engine's static data + its stack during an inference."""
        return self.arena + self.engine_static + self.stack_invoke

    @property
    def harness(self) -> int:
        """What the test harness adds: its static data, heap and the rest of the stack peak."""
        return self.harness_static + self.heap + self.stack_peak - self.stack_invoke

    @property
    def total(self) -> int:
        return self.deployment + self.harness


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
                  heap: int, stack_peak: int, stack_invoke: int = 0) -> tuple[FlashSplit, RamSplit]:
    """Split flash and RAM by origin: generated model files, engine objects (kernels, backend), the harness's
    own objects (main, board), start-up and libraries. `stack_invoke` is one inference's own stack."""
    sizes = section_sizes(elf)
    flash_total = sum(sizes.get(s, 0) for s in FLASH_SECTIONS)
    static_total = sum(sizes.get(s, 0) for s in RAM_SECTIONS)
    generated = _generated_stems(gen_dir)
    model = engine = golden = harness = arena = engine_static = 0
    for section, obj, size in map_contributions(map_file):
        stem = _stem(obj)
        is_gen = stem in generated
        is_stub = not is_gen and "(" not in obj and obj.endswith(".o")
        is_engine = is_stub and stem not in HARNESS_SOURCES
        if section in RAM_SECTIONS and is_gen and not stem.endswith("_golden"):
            arena += size
        elif section in RAM_SECTIONS and is_engine:
            engine_static += size
        if section not in FLASH_SECTIONS:
            continue
        if is_gen and stem.endswith("_golden"):
            golden += size
        elif is_gen and section in (".rodata", ".data"):
            model += size
        elif is_gen or is_engine:
            engine += size
        elif is_stub and stem not in BOARD_SOURCES:
            harness += size
    rest = flash_total - model - engine - golden - harness
    if rest < 0:
        raise BuildError(f"{map_file}: map file contributions exceed the ELF's flash sections ({flash_total} bytes)")
    return (FlashSplit(model, engine, golden, rest, harness),
            RamSplit(arena=arena, engine_static=engine_static, stack_invoke=stack_invoke,
                     harness_static=static_total - arena - engine_static, heap=heap, stack_peak=stack_peak))


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
                   target: str = TARGET, profile: bool = False) -> Path:
    """Cross-compile the stub and the generated C engine for a Cortex-M target through the shared Makefile;
    `profile` builds it with `PROFILE=1` (per-op instruction counts, see profile_ops)."""
    check_toolchain()
    from .firmware import build_stub

    machine(target)
    return Path(build_stub(gen_dir, build_dir, target=target, backend="c", opt=opt,
                           extra=("PROFILE=1",) if profile else ()))


def measure_cortex_m(gen_dir: str | os.PathLike, build_dir: str | os.PathLike, inputs: np.ndarray,
                     expected: np.ndarray, opt: str = "-O2", progress=None, target: str = TARGET) -> CortexMResult:
    """Build the C engine for a Cortex-M target, pass the golden vectors in QEMU, stream `inputs` and compare with
    `expected` (measure_elf).

    `inputs` are raw int8 input tensors (n, input_bytes); `expected` TFLM's int8 outputs (n, output_bytes).
    Raises BuildError when the toolchain is missing or the build fails, VerificationError when the golden
    vectors fail in QEMU.
    """
    return measure_elf(build_cortex_m(gen_dir, build_dir, opt, target), gen_dir, inputs, expected, opt, progress,
                       target)


def measure_elf(elf: Path, gen_dir: str | os.PathLike, inputs: np.ndarray, expected: np.ndarray, opt: str = "-O2",
                progress=None, target: str = TARGET) -> CortexMResult:
    """Golden vectors, then `inputs` in QEMU, with the deployment split of flash and RAM, for a stub ELF of any
    backend built from `gen_dir` (the C engine, or TFLM with its own kernels)."""
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
    engine_stack = max(f.stack_invoke_bytes - f.stack_caller_bytes for f in (g, b))
    flash, ram = flash_and_ram(elf, Path(str(elf) + ".map"), gen_dir, heap, stack_peak, engine_stack)
    return CortexMResult(
        target=target, opt=opt, elf=elf, flash=flash, ram=ram,
        instructions_per_inference=b.instructions_per_inference,
        instructions_min=b.instructions_min, instructions_max=b.instructions_max,
        instructions_resolution=b.instructions_per_tick, golden_count=golden.count, golden_passed=golden.passed,
        stack_invoke_bytes=max(g.stack_invoke_bytes, b.stack_invoke_bytes),
        images=len(expected), bitexact_images=exact,
    )


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

    @property
    def instructions_per_mac(self) -> float | None:
        return self.instructions / self.macs if self.macs else None


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


def op_costs(gen_dir: str | os.PathLike, tflite: bytes, profile: ProfileReport, where: str) -> tuple[OpCost, ...]:
    """Name each profiled kernel call after the kernels the folder's manifest lists (the ones its engine was
    generated with) and the graph (op, MACs); raises BuildError when the firmware's calls are not those."""
    from .engine import op_macs, read_graph
    from .outdir import read_json

    manifest = read_json(Path(gen_dir) / "manifest.json", "the manifest of the generated files")
    engine = manifest.get("c_engine") if isinstance(manifest, dict) else None
    try:
        calls = [(int(c["op"]), str(c["kernel"])) for c in engine["calls"]]
    except (TypeError, KeyError, ValueError) as exc:
        raise BuildError(f"{gen_dir}: manifest.json lists no C engine kernel calls; emit the folder again") from exc
    graph = read_graph(tflite)
    if tuple(op for op, _ in calls) != profile.call_ops:
        raise BuildError(f"{where}: the firmware's kernel calls (ops {list(profile.call_ops)}) are not the "
                         f"folder's (ops {[op for op, _ in calls]}); emit the folder again")
    if any(op >= len(graph.operators) for op, _ in calls):
        raise BuildError(f"{gen_dir}: manifest.json names ops this model does not have; emit the folder again")
    return tuple(OpCost(op, graph.operators[op].name, kernel, profile.mean(k),
                         op_macs(graph, graph.operators[op]))
                 for k, (op, kernel) in enumerate(calls))


def profile_ops(gen_dir: str | os.PathLike, build_dir: str | os.PathLike, tflite: bytes, inputs: np.ndarray,
                expected: np.ndarray, opt: str = "-O2", target: str = TARGET, progress=None) -> OpProfile:
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
    return OpProfile(target, opt, len(expected), exact, report.instructions_per_tick,
                     op_costs(gen_dir, tflite, report, str(elf)), report.tail_sum / report.invokes)
