"""Flash and RAM of a Cortex-M stub ELF split by origin (arm-none-eabi-size and the linker map): what a product
links of tinyq's (model constants, engine code, arena, engine stack) apart from the test harness."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildError
from ..native import run_child
from ..resources import runtime_dir
from .qemu import check_toolchain

BOARD_SOURCES = ("startup", "board", "measure")
# Objects of the stub that only the test harness needs (board support, main, trace and profile sinks).
HARNESS_SOURCES = BOARD_SOURCES + ("main", "trace", "profile")


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
    runtime = {p.stem for p in runtime_dir().rglob("*.c")}
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


_OUTPUT_SECTION = re.compile(r"^(\.[\w.]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)")


@dataclass(frozen=True)
class LinkFit:
    """What a link needs of a board's flash and RAM (from its map file, written even when the link fails)
    against what the board has."""

    target: str
    board: str
    flash_needed: int  # .text, .rodata, tables and the .data initialisers
    flash_available: int
    ram_static: int  # .data + .bss
    stack: int  # the fixed stack block at the top of RAM
    ram_available: int

    @property
    def ram_needed(self) -> int:
        return self.ram_static + self.stack

    @property
    def fits(self) -> bool:
        return self.flash_needed <= self.flash_available and self.ram_needed <= self.ram_available

    def message(self) -> str:
        """One line: each region's need against what the board has, and by how much it is over."""
        def region(name: str, needed: int, available: int, detail: str) -> str:
            verdict = f"over by {needed - available:,}" if needed > available else "fits"
            return f"{name} needs {needed:,} bytes{detail} of {available:,} ({verdict})"
        return (f"the firmware does not fit {self.target} ({self.board}): "
                + region("RAM", self.ram_needed, self.ram_available,
                         f" (.data + .bss {self.ram_static:,} + stack {self.stack:,}, heap not counted)")
                + "; " + region("flash", self.flash_needed, self.flash_available, ""))


def link_fit(map_file: str | os.PathLike, target) -> LinkFit:
    """Flash and RAM a link needs, read from the linker map's output sections, for a registry `Target`."""
    sizes: dict[str, int] = {}
    for line in Path(map_file).read_text(errors="replace").splitlines():
        m = _OUTPUT_SECTION.match(line)
        if m and m.group(1) not in sizes:
            sizes[m.group(1)] = int(m.group(3), 16)
    if ".text" not in sizes:
        raise BuildError(f"{map_file}: no .text output section; not a GNU ld map of the stub")
    return LinkFit(target.name, target.board, sum(sizes.get(s, 0) for s in FLASH_SECTIONS),
                   target.flash.length, sum(sizes.get(s, 0) for s in RAM_SECTIONS), target.stack_bytes,
                   target.ram.length)
