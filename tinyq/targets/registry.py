"""One definition per core: the `Target` table every other place reads (the build's make variables, the QEMU
command line, the CLI's `--target` choices, the reports and benchmarks).

This table is the single source of truth. No per-core Makefile fragment exists: the Python build passes
`make_variables()` on make's command line (firmware_stub/targets/cortex-m.mk turns them into flags and linker
symbols), and a hand-run `make TARGET=<core>` asks this module for them (`python3 -m tinyq.targets <core>`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BuildError

NS_PER_INSTRUCTION = 1  # QEMU runs with -icount shift=0: its virtual clock advances 1 ns per guest instruction
TICK_SCALE = 256  # the board code takes instructions per SysTick tick x256, so fractional ticks stay exact


@dataclass(frozen=True)
class MemoryRegion:
    """One region of the linker script's memory map: where it starts and how many bytes it holds."""

    origin: int
    length: int

    def __post_init__(self) -> None:
        if self.origin < 0 or self.length <= 0 or self.origin + self.length > 1 << 32:
            raise ValueError(f"memory region at {self.origin:#x} of {self.length} bytes is outside 32-bit space")


@dataclass(frozen=True)
class Target:
    """A Cortex-M core as tinyq builds, runs and measures it: compiler flags, the memory map its stub links to,
    the stack it reserves, the QEMU board that emulates it and that board's core clock (which sets how many
    instructions one SysTick tick counts)."""

    name: str  # the `--target` value and make's TARGET, e.g. "cortex-m4"
    title: str  # how reports name it, e.g. "Cortex-M4"
    cpu: str  # gcc's -mcpu
    arch: str  # the architecture profile gcc picks for that -mcpu
    dsp: bool  # has the DSP extension (SMLAD and friends): the kernels' DSP paths run on it
    float_abi: str  # gcc's -mfloat-abi
    flash: MemoryRegion  # code, constants and .data initialisers (the vector table at its start)
    ram: MemoryRegion  # .data, .bss, heap and stack
    stack_bytes: int  # the fixed stack block at the top of RAM
    qemu_machine: str  # qemu-system-arm -machine
    clock_hz: int  # the board's core clock, which drives SysTick
    board: str  # what QEMU emulates, for help texts and READMEs

    def __post_init__(self) -> None:
        if self.float_abi not in ("soft", "softfp", "hard"):
            raise ValueError(f"{self.name}: float ABI {self.float_abi!r} is not soft, softfp or hard")
        if (TICK_SCALE * 10**9) % (self.clock_hz * NS_PER_INSTRUCTION):
            raise ValueError(f"{self.name}: {self.clock_hz} Hz gives no whole number of instructions per tick x256")
        if not 0 < self.stack_bytes < self.ram.length:
            raise ValueError(f"{self.name}: a {self.stack_bytes}-byte stack does not fit its RAM")

    @property
    def tick_x256(self) -> int:
        """Instructions per SysTick tick x256: 1 ns per instruction under -icount shift=0, one tick per clock."""
        return TICK_SCALE * 10**9 // (self.clock_hz * NS_PER_INSTRUCTION)

    @property
    def report_key(self) -> str:
        """Its section in report.json: `cortex_m4`."""
        return self.name.replace("-", "_")

    @property
    def cflags(self) -> tuple[str, ...]:
        """The code generation flags (cortex-m.mk builds the same from make_variables)."""
        return (f"-mcpu={self.cpu}", "-mthumb", f"-mfloat-abi={self.float_abi}")

    def make_variables(self) -> dict[str, str]:
        """What firmware_stub/targets/cortex-m.mk takes from the registry, as make's command line gives them."""
        return {"CM_CPU": self.cpu, "CM_FLOAT_ABI": self.float_abi,
                "CM_FLASH_ORIGIN": f"{self.flash.origin:#x}", "CM_FLASH_LENGTH": _size(self.flash.length),
                "CM_RAM_ORIGIN": f"{self.ram.origin:#x}", "CM_RAM_LENGTH": _size(self.ram.length),
                "CM_STACK": _size(self.stack_bytes), "CM_TICK_X256": str(self.tick_x256)}


def _size(n: int) -> str:
    """A byte count as GNU ld reads it: 4M, 256K or plain bytes."""
    for unit, scale in (("M", 1 << 20), ("K", 1 << 10)):
        if n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


K, M = 1 << 10, 1 << 20
# QEMU's MPS2 FPGA images: ZBT SSRAM1 at 0 stands in for flash, SSRAM2/3 at 0x20000000 for RAM (4 MB each).
_MPS2_FLASH, _MPS2_RAM = MemoryRegion(0x0, 4 * M), MemoryRegion(0x20000000, 4 * M)
_MPS2_STACK = 64 * K

TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("cortex-m0", "Cortex-M0", "cortex-m0", "armv6-m", False, "soft",
           MemoryRegion(0x0, 256 * K), MemoryRegion(0x20000000, 16 * K), 3 * K, "microbit", 16_000_000,
           "BBC micro:bit (nRF51: 256 KB flash, 16 KB RAM, 16 MHz)"),
    Target("cortex-m3", "Cortex-M3", "cortex-m3", "armv7-m", False, "soft",
           _MPS2_FLASH, _MPS2_RAM, _MPS2_STACK, "mps2-an385", 25_000_000, "Arm MPS2 AN385 (25 MHz)"),
    Target("cortex-m4", "Cortex-M4", "cortex-m4", "armv7e-m", True, "soft",
           _MPS2_FLASH, _MPS2_RAM, _MPS2_STACK, "mps2-an386", 25_000_000, "Arm MPS2 AN386 (25 MHz)"),
    Target("cortex-m7", "Cortex-M7", "cortex-m7", "armv7e-m", True, "soft",
           _MPS2_FLASH, _MPS2_RAM, _MPS2_STACK, "mps2-an500", 25_000_000, "Arm MPS2 AN500 (25 MHz)"),
    Target("cortex-m33", "Cortex-M33", "cortex-m33", "armv8-m.main", True, "soft",
           MemoryRegion(0x10000000, 4 * M), MemoryRegion(0x38000000, 4 * M), _MPS2_STACK, "mps2-an505",
           20_000_000, "Arm MPS2 AN505 (secure SSRAM1 at 0x10000000, SSRAM2 at 0x38000000, 20 MHz)"),
    Target("cortex-m55", "Cortex-M55", "cortex-m55", "armv8.1-m.main", True, "soft",
           MemoryRegion(0x0, 512 * K), MemoryRegion(0x20000000, 512 * K), _MPS2_STACK, "mps3-an547",
           32_000_000, "Arm MPS3 AN547 (ITCM at 0, DTCM at 0x20000000, 32 MHz)"),
)}
DEFAULT_TARGET = "cortex-m4"
QEMU_MACHINES = {name: t.qemu_machine for name, t in TARGETS.items()}  # name -> QEMU board, a view of TARGETS


def get(name: str) -> Target:
    """The target called `name`; an unknown name raises BuildError (a TinyqError) naming it and the known ones."""
    try:
        return TARGETS[name]
    except KeyError:
        raise BuildError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}") from None
