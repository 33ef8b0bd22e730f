"""The firmware stub on an emulated Cortex-M4 (QEMU mps2-an386): board support, instruction counter, and the
generated C engine bit-exact with TFLM over at least 1,000 test images."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyq import cortex_m, emit
from tinyq.errors import BuildError

pytestmark = [pytest.mark.qemu, pytest.mark.integration]

STUB = Path(__file__).resolve().parent.parent / "firmware_stub"
BOARD = STUB / "board" / "cortex_m4"
# board.h as the stub contract declares it, used only while firmware_stub/board.h is not yet in the tree.
BOARD_H = "#include <stdint.h>\nvoid tinyq_board_init(void);\nuint32_t tinyq_board_cycles(void);\n"
CFLAGS = ["-mcpu=cortex-m4", "-mthumb", "-std=c99", "-Wall", "-Wextra", "-Werror", "-ffunction-sections",
          "-fdata-sections"]
QEMU_IMAGES = 1000

# A stand-in backend whose cost is known: one SUBS and one BNE per loop iteration, the count set by input[0].
SPIN_BACKEND = r"""
#include <stdint.h>
int tinyq_backend_invoke(const int8_t *input, int8_t *output);
int tinyq_backend_invoke(const int8_t *input, int8_t *output)
{
    uint32_t n = 1000u * (uint32_t)(uint8_t)input[0];
    __asm__ volatile("1: subs %0, %0, #1\n    bne 1b\n" : "+r"(n) : : "cc");
    output[0] = (int8_t)(input[0] ^ 0x55);
    return 0;
}
"""
SPIN_MAIN = r"""
#include <stdint.h>
#include <stdio.h>
int tinyq_backend_invoke(const int8_t *input, int8_t *output);
int main(int argc, char **argv)
{
    int8_t in[1];
    int8_t out[1];
    FILE *fi;
    FILE *fo;
    if (argc != 3) {
        return 2;
    }
    fi = fopen(argv[1], "rb");
    fo = fopen(argv[2], "wb");
    if (fi == NULL || fo == NULL) {
        return 3;
    }
    while (fread(in, 1, 1, fi) == 1) {
        tinyq_backend_invoke(in, out);
        fwrite(out, 1, 1, fo);
    }
    fclose(fi);
    fclose(fo);
    printf("exit code follows\n");
    return 7;
}
"""


def _cross_build(d: Path, main_source: str) -> Path:
    """Link a main with the spin backend and the board files exactly as the cortex-m4 target links the stub."""
    cortex_m.check_toolchain()
    (d / "backend.c").write_text(SPIN_BACKEND)
    (d / "main.c").write_text(main_source)
    (d / "board.h").write_text(BOARD_H)
    elf = d / "test.elf"
    sources = [str(d / "main.c"), str(d / "backend.c")] + [str(BOARD / f"{s}.c") for s in cortex_m.BOARD_SOURCES]
    subprocess.run(["arm-none-eabi-gcc", *CFLAGS, "-O2", f"-I{STUB}", f"-I{d}", f"-I{BOARD}", *sources,
                    "--specs=rdimon.specs", "-nostartfiles", "-T", str(BOARD / "mps2_an386.ld"), "-Wl,--gc-sections",
                    "-Wl,--wrap=tinyq_backend_invoke", f"-Wl,-Map={elf}.map", "-o", str(elf)], check=True)
    return elf


@pytest.fixture(scope="module")
def spin_elf(tmp_path_factory) -> Path:
    return _cross_build(tmp_path_factory.mktemp("spin"), SPIN_MAIN)


def _spin_run(elf: Path, tmp_path: Path, loops: list[int]) -> cortex_m.QemuRun:
    (tmp_path / "in.bin").write_bytes(bytes(loops))
    return cortex_m.run_qemu(elf, ("in.bin", "out.bin"), cwd=tmp_path)


def test_board_counts_instructions_exactly_and_repeatably(spin_elf, tmp_path):
    loops = [3, 50, 200, 7]
    run = _spin_run(spin_elf, tmp_path, loops)
    assert run.returncode == 7  # main's return value reaches the host through semihosting
    assert "exit code follows" in run.stdout
    assert (tmp_path / "out.bin").read_bytes() == bytes(v ^ 0x55 for v in loops)  # semihosting file I/O
    b = run.board
    assert b.invokes == len(loops)
    spin = [2 * 1000 * v for v in loops]  # SUBS + BNE per iteration
    tick = b.instructions_per_tick
    # Each call costs its loop plus a few instructions of call, prologue and store; one tick of quantisation.
    assert spin[0] <= b.instructions_x256_min / 256 <= spin[0] + 20 + tick
    assert spin[2] <= b.instructions_x256_max / 256 <= spin[2] + 20 + tick
    assert abs(b.instructions_per_inference - np.mean(spin)) <= 20 + tick
    again = _spin_run(spin_elf, tmp_path, loops)
    assert again.board == run.board  # -icount makes the count deterministic


def test_board_paints_stack_and_reports_high_water(spin_elf, tmp_path):
    b = _spin_run(spin_elf, tmp_path, [1]).board
    assert 0 < b.stack_invoke_bytes <= b.stack_peak_bytes < b.stack_size_bytes
    assert b.heap_bytes > 0  # newlib's FILE buffers


def test_a_fault_exception_ends_the_run_with_a_clear_error(tmp_path):
    elf = _cross_build(tmp_path, "int main(void)\n{\n    __asm__ volatile(\"udf #0\");\n    return 0;\n}\n")
    with pytest.raises(BuildError, match="fault exception"):
        cortex_m.run_qemu(elf, timeout=60)


def test_missing_toolchain_is_one_clear_build_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BuildError) as err:
        cortex_m.measure_cortex_m(tmp_path, tmp_path / "build", np.zeros((1, 4), np.int8), np.zeros((1, 1), np.int8))
    msg = str(err.value)
    assert "\n" not in msg and "arm-none-eabi-gcc" in msg and "qemu-system-arm" in msg
