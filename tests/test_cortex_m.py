"""The firmware stub on an emulated Cortex-M4 (QEMU mps2-an386): board support, instruction counter, and the
generated C engine bit-exact with TFLM over at least 1,000 test images."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyq import emit
from tinyq.targets import cortex_m, registry
from tinyq.engine import lower, macs, op_macs, read_graph
from tinyq.errors import BuildError

pytestmark = [pytest.mark.qemu, pytest.mark.integration]

STUB = Path(__file__).resolve().parent.parent / "firmware_stub"
BOARD = STUB / "board" / "cortex_m"
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
                    "--specs=nano.specs", "--specs=rdimon.specs", "-nostartfiles", "-T", str(BOARD / "cortex_m.ld"),
                    "-Wl,--gc-sections", "-Wl,--wrap=tinyq_backend_invoke", f"-Wl,-Map={elf}.map", "-o", str(elf)],
                   check=True)
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


def test_a_stack_overflow_is_reported_not_measured(tmp_path):
    main = ("#include <string.h>\nint main(void)\n{\n    volatile char big[80 * 1024];\n"
            "    memset((char *)big, 1, sizeof big);\n    return big[5] - 1;\n}\n")
    elf = _cross_build(tmp_path, main)
    with pytest.raises(BuildError, match="stack used all"):
        cortex_m.run_qemu(elf, timeout=60)


def test_missing_toolchain_is_one_clear_build_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BuildError) as err:
        cortex_m.measure_cortex_m(tmp_path, tmp_path / "build", np.zeros((1, 4), np.int8), np.zeros((1, 1), np.int8))
    msg = str(err.value)
    assert "\n" not in msg and "arm-none-eabi-gcc" in msg and "qemu-system-arm" in msg


def _firmware(q, result, tmp_path_factory, label: str) -> Path:
    fw = tmp_path_factory.mktemp(f"cm4_{label}") / "firmware"
    emit.emit(q, result, fw, name="mnist")
    return fw


def _measure(fw: Path, result, opt: str) -> cortex_m.CortexMResult:
    n = QEMU_IMAGES
    assert result.test_images >= n
    inputs = result.int8_inputs.reshape(result.test_images, -1)[:n]
    expected = result.tflm_outputs.reshape(result.test_images, -1)[:n]
    return cortex_m.measure_cortex_m(fw, fw.parent / f"build{opt}", inputs, expected, opt=opt)


@pytest.fixture(scope="module")
def cnn_fw(cnn_q, cnn_verify, tmp_path_factory) -> Path:
    return _firmware(cnn_q, cnn_verify, tmp_path_factory, "cnn")


@pytest.fixture(scope="module")
def cnn_m4(cnn_fw, cnn_verify) -> cortex_m.CortexMResult:
    return _measure(cnn_fw, cnn_verify, "-O2")


@pytest.fixture(scope="module")
def mlp_m4_os(mlp_q, mlp_verify, tmp_path_factory) -> cortex_m.CortexMResult:
    return _measure(_firmware(mlp_q, mlp_verify, tmp_path_factory, "mlp"), mlp_verify, "-Os")


def _manifest(fw: Path) -> dict:
    import json

    return json.loads((fw / "manifest.json").read_text())


@pytest.mark.parametrize("which", ["cnn_m4", "mlp_m4_os"])
def test_golden_vectors_pass_and_1000_images_bit_exact_with_tflm_in_qemu(which, request):
    m = request.getfixturevalue(which)
    assert m.golden_passed and m.golden_count >= 1
    assert m.images == QEMU_IMAGES
    assert m.bitexact_images == m.images  # exact: the emulated C engine equals TFLM's int8 outputs


def test_flash_split_adds_up_and_names_the_model_constants(cnn_m4, cnn_fw, cnn_q, cnn_verify):
    sizes = cortex_m.section_sizes(cnn_m4.elf)
    f = cnn_m4.flash
    assert cnn_m4.flash_bytes == sum(sizes.get(s, 0) for s in cortex_m.FLASH_SECTIONS)
    assert min(f.model_constants, f.engine_code, f.golden_vectors, f.startup_libc) > 0
    # Every parameter is at least one byte (int8 weights, int32 biases) and nothing else of the model is needed
    # beyond its .tflite's own bytes.
    assert cnn_verify.params <= f.model_constants <= len(cnn_q.tflite)
    golden = _manifest(cnn_fw)["golden"]["count"]
    assert f.golden_vectors >= golden * (cnn_verify.int8_inputs[0].size + cnn_verify.tflm_outputs[0].size)


def test_ram_covers_the_engine_arena_and_a_painted_stack(cnn_m4, cnn_fw):
    r = cnn_m4.ram
    assert r.arena >= _manifest(cnn_fw)["arena_bytes"]["c_engine"]
    # The engine's own stack is measured below the stub's frames, so it is less than the depth from the top.
    assert 0 < r.stack_invoke < cnn_m4.stack_invoke_bytes <= r.stack_peak < 64 * 1024
    assert r.deployment == r.arena + r.engine_static + r.stack_invoke
    assert r.harness_static > 0 and r.heap > 0  # the stub's buffers, newlib, stdio: listed apart
    assert cnn_m4.ram_bytes == r.deployment + r.harness == r.arena + r.engine_static + r.harness_static + r.heap \
        + r.stack_peak


def test_deployment_flash_is_the_model_and_the_engine_without_the_harness(cnn_m4):
    f = cnn_m4.flash
    assert f.deployment == f.model_constants + f.engine_code
    assert f.harness_code > 0  # the stub's main is test harness, not engine code
    assert f.total == f.deployment + f.golden_vectors + f.harness_code + f.startup_libc


PROFILE_IMAGES = 100


@pytest.fixture(scope="module")
def cnn_profile(cnn_fw, cnn_q, cnn_verify) -> cortex_m.OpProfile:
    n = PROFILE_IMAGES
    inputs = cnn_verify.int8_inputs.reshape(cnn_verify.test_images, -1)[:n]
    expected = cnn_verify.tflm_outputs.reshape(cnn_verify.test_images, -1)[:n]
    return cortex_m.profile_ops(cnn_fw, cnn_fw.parent / "build-profile", cnn_q.graph, inputs, expected)


def test_per_op_counts_cover_every_kernel_call_and_add_up_to_the_unprofiled_total(cnn_profile, cnn_q, cnn_m4):
    graph = read_graph(cnn_q.tflite)
    calls = lower(graph).calls
    assert [(o.op_index, o.kernel) for o in cnn_profile.ops] == [(c.op_index, c.kernel) for c in calls]
    assert all(o.instructions > 0 for o in cnn_profile.ops)
    assert [o.macs for o in cnn_profile.ops] == [op_macs(graph, graph.operators[c.op_index]) for c in calls]
    assert sum(o.macs for o in cnn_profile.ops) == macs(graph)
    # The marks' overhead is timed and removed; what is left outside the kernel calls is the invoke's entry and
    # return. Within 0.1 % plus one tick per call of the plain build's mean (measured: a few dozen instructions).
    tolerance = 0.001 * cnn_m4.instructions_per_inference + cnn_profile.resolution * len(cnn_profile.ops)
    assert abs(cnn_profile.instructions - cnn_m4.instructions_per_inference) <= tolerance
    assert 0 <= cnn_profile.outside < 200
    # Convolutions do the work: no instruction does more than two 8-bit MACs (SMLAD).
    assert all(o.instructions >= o.macs / 2 for o in cnn_profile.ops)
    assert max(cnn_profile.ops, key=lambda o: o.instructions).op_name == "CONV_2D"


def test_profiled_build_is_bit_exact_and_deterministic(cnn_profile, cnn_fw, cnn_q, cnn_verify):
    assert cnn_profile.images == PROFILE_IMAGES and cnn_profile.bitexact_images == cnn_profile.images
    n = 10
    inputs = cnn_verify.int8_inputs.reshape(cnn_verify.test_images, -1)[:n]
    expected = cnn_verify.tflm_outputs.reshape(cnn_verify.test_images, -1)[:n]
    elf = cnn_fw.parent / "build-profile" / "stub.elf"
    first = cortex_m.run_qemu_batch_measured(elf, inputs, expected.shape[1])
    again = cortex_m.run_qemu_batch_measured(elf, inputs, expected.shape[1])
    assert np.array_equal(first.outputs, expected)
    assert cortex_m.parse_profile_report(first.console, "1") == cortex_m.parse_profile_report(again.console, "2")


def test_profile_report_refuses_overflow_and_mixed_calls():
    head = ("tinyq-profile: invokes=2 calls=1 overhead_x256=10240 tail_sum=70 instructions_per_tick=40 "
            "max_calls=128 overflow={} mismatch={}\ntinyq-op: call=0 op=3 sum=5000\n")
    r = cortex_m.parse_profile_report(head.format(0, 0), "ok")
    assert r.call_ops == (3,) and r.mean(0) == (5000 * 256 - 2 * 10240) / 256 / 2
    with pytest.raises(BuildError, match="TINYQ_PROFILE_MAX_CALLS"):
        cortex_m.parse_profile_report(head.format(1, 0), "x")
    with pytest.raises(BuildError, match="differed"):
        cortex_m.parse_profile_report(head.format(0, 2), "x")
    with pytest.raises(BuildError, match="no 'tinyq-profile:'"):
        cortex_m.parse_profile_report("tinyq-board: invokes=1", "x")


def test_instructions_per_inference_are_repeatable_and_plausible(cnn_m4, cnn_verify):
    again = cortex_m.run_qemu_golden(cnn_m4.elf)
    first = cortex_m.run_qemu_golden(cnn_m4.elf)
    assert again == first  # deterministic under -icount
    assert cnn_m4.instructions_min <= cnn_m4.instructions_per_inference <= cnn_m4.instructions_max
    # The bulk run spans many 24-bit SysTick wraps (2^24 ticks = 671 M instructions); a wrap miscounted inside
    # one inference would put it hundreds of millions of instructions away from the others.
    assert cnn_m4.instructions_per_inference * cnn_m4.images > 2**24 * cnn_m4.instructions_resolution
    assert cnn_m4.instructions_max - cnn_m4.instructions_min < cnn_m4.instructions_per_inference / 10
    # No Cortex-M4 instruction does more than two 8-bit multiply-accumulates (SMLAD): a floor from the graph.
    assert cnn_m4.instructions_per_inference >= cnn_verify.macs / 2
    assert cnn_m4.instructions_resolution == 1_000_000_000 // 25_000_000  # 1 ns per instruction, 25 MHz SysTick


@pytest.fixture(scope="module")
def mlp_fw(mlp_q, mlp_verify, tmp_path_factory) -> Path:
    return _firmware(mlp_q, mlp_verify, tmp_path_factory, "mlp_cores")


@pytest.mark.parametrize("target", [t for t in registry.TARGETS if t != "cortex-m4"])
def test_every_core_runs_bit_exact_in_its_qemu_board(target, mlp_fw, mlp_verify, cnn_m4):
    """The same folder built for each core: golden vectors, then test images equal to TFLM's outputs; the counts
    agree with the Cortex-M4's within what the instruction sets explain (Thumb-1 on the M0 takes more)."""
    n = 200
    inputs = mlp_verify.int8_inputs.reshape(mlp_verify.test_images, -1)[:n]
    expected = mlp_verify.tflm_outputs.reshape(mlp_verify.test_images, -1)[:n]
    m = cortex_m.measure_cortex_m(mlp_fw, mlp_fw.parent / f"build-{target}", inputs, expected, target=target)
    assert m.target == target and m.golden_passed and m.bitexact_images == n
    assert mlp_verify.macs / 2 <= m.instructions_per_inference <= 10 * mlp_verify.macs
    clock_mhz = {"cortex-m33": 20, "cortex-m55": 32, "cortex-m0": 16}.get(target, 25)
    assert m.instructions_resolution == -(-1000 // clock_mhz)  # one SysTick tick, rounded up
    if target == "cortex-m0":
        assert m.ram_bytes <= 16 * 1024  # the micro:bit has 16 KB of RAM


@pytest.mark.parametrize("target", list(registry.TARGETS))
def test_per_op_profile_runs_on_every_core(target, mlp_fw, mlp_q, mlp_verify):
    """PROFILE=1 builds and runs on each core's board; a few inputs suffice to check it counts every call."""
    n = 10
    inputs = mlp_verify.int8_inputs.reshape(mlp_verify.test_images, -1)[:n]
    expected = mlp_verify.tflm_outputs.reshape(mlp_verify.test_images, -1)[:n]
    p = cortex_m.profile_ops(mlp_fw, mlp_fw.parent / f"profile-{target}", mlp_q.graph, inputs, expected,
                             target=target)
    assert p.bitexact_images == n and p.ops and all(o.instructions > 0 for o in p.ops)
    assert mlp_verify.macs / 2 <= p.instructions <= 10 * mlp_verify.macs


def test_unknown_target_is_refused_naming_the_known_ones(tmp_path):
    with pytest.raises(BuildError, match="unknown target 'cortex-m9'.*cortex-m0.*cortex-m55"):
        cortex_m.build_cortex_m(tmp_path, tmp_path / "b", target="cortex-m9")
