"""The cycle model (tinyq/targets/cycles): micro-benchmarks counted by hand from the timing tables and run in
QEMU, the decoder on QEMU's own syntax, and the model on the generated engine agreeing with the board's
instruction counter."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tinyq.targets import cycles, registry
from tinyq.targets.cycles import isa
from tinyq.targets.qemu import check_toolchain

HERE = Path(__file__).resolve().parent
STUB = HERE.parent / "firmware_stub"
BOARD = STUB / "board" / "cortex_m"
BOARD_H = "#include <stdint.h>\nvoid tinyq_board_init(void);\nuint32_t tinyq_board_cycles(void);\n"

# (cycles, instructions) of one call, counted by hand from timing.py's tables (see micro.S for each body).
HAND_M4 = {
    "mb_loop": (1 + 5 * 2 + 4 * (1 + 1) + 1 + 1 + (1 + 1), 18),  # movs; adds+subs x5; bne 4 taken, 1 not; mov; bx
    "mb_loads": (2 + 1 + 1 + 1 + 1 + 2, 6),  # LDR 2, then two pipelined LDRs 1 each; 2 adds; bx 1+P
    "mb_chase": (2 + 2 + 2, 3),  # the second LDR is addressed by the first's result: not pipelined
    "mb_pushpop": ((1 + 5) + 1 + (1 + 5 + 1), 3),  # PUSH 1+N; movs; POP {.., pc} 1+N+P
    "mb_ldm": ((1 + 3) + 1 + 2, 3),  # LDM 1+N; adds; bx
    "mb_muls": (1 + 2, 2),  # MULS 1
    "mb_interlock": (1 + (2 + 1) + 2, 3),  # LDR addressed by the register the ADD just wrote waits 1
    "mb_dsp": (5 * 1 + 2, 6),  # SMLAD, SMULBB, SMLABB, UMULL, MLA: 1 each
    "mb_div": (12 + 2, 2),  # SDIV at its worst case
    "mb_wide_target": ((1 + 2) + 1 + 2, 3),  # B to a 32-bit instruction at a halfword address: P = 2
}
HAND_M0 = {
    "mb_loop": (1 + 5 * 2 + 4 * 3 + 1 + 1 + 3, 18),  # B<cc> 3 taken, 1 not; BX 3
    "mb_loads": (3 * 2 + 2 + 3, 6),  # LDR 2, no pipelining
    "mb_chase": (2 + 2 + 3, 3),
    "mb_pushpop": ((1 + 5) + 1 + (4 + 5), 3),  # POP and return 4+N
    "mb_ldm": ((1 + 3) + 1 + 3, 3),
    "mb_muls": (1 + 3, 2),  # MULS 1 (fast multiplier)
}
# The M7's documented approximation: pairs issue together, a mispredicted loop exit costs 6, BX LR 4.
HAND_M7 = {
    "mb_loop": ((1 + 1 + 0 + 1) + 4 * (1 + 0 + 1) + (1 + 0 + 4) + 6, 18),  # adds+subs pair; mov+bx pair
    "mb_loads": (1 + 0 + 1 + 0 + 1 + 0 + 4, 6),  # ldr+ldr, ldr+adds, adds+bx pairs; BX LR 4
}


def _build(tmp: Path, target: str) -> Path:
    """micro.S and main.c linked with the board files for `target`'s memory map, as the stub is."""
    check_toolchain()
    t = registry.get(target)
    v = t.make_variables()
    (tmp / "board.h").write_text(BOARD_H)
    elf = tmp / f"micro-{target}.elf"
    defsyms = [f"-Wl,--defsym={k}={v[m]}" for k, m in (
        ("TINYQ_FLASH_ORIGIN", "CM_FLASH_ORIGIN"), ("TINYQ_FLASH_LENGTH", "CM_FLASH_LENGTH"),
        ("TINYQ_RAM_ORIGIN", "CM_RAM_ORIGIN"), ("TINYQ_RAM_LENGTH", "CM_RAM_LENGTH"), ("STACK_SIZE", "CM_STACK"))]
    sources = [HERE / "cycles_micro" / "main.c", HERE / "cycles_micro" / "micro.S"]
    sources += [BOARD / f"{s}.c" for s in ("startup", "board", "measure")]
    subprocess.run(["arm-none-eabi-gcc", *t.cflags, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2",
                    f"-DTINYQ_INSTRUCTIONS_PER_TICK_X256={v['CM_TICK_X256']}u", f"-I{STUB}", f"-I{tmp}", f"-I{BOARD}",
                    *map(str, sources), "--specs=nano.specs", "--specs=rdimon.specs", "-nostartfiles",
                    "-T", str(BOARD / "cortex_m.ld"), *defsyms, "-Wl,--gc-sections",
                    "-Wl,--wrap=tinyq_backend_invoke", "-o", str(elf)], check=True)
    return elf


@pytest.fixture(scope="module")
def micro_elves(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cycles_micro")
    return {t: _build(tmp, t) for t in ("cortex-m0", "cortex-m4", "cortex-m7")}


CASES = ([("cortex-m4", f, c) for f, c in HAND_M4.items()] + [("cortex-m0", f, c) for f, c in HAND_M0.items()]
         + [("cortex-m7", f, c) for f, c in HAND_M7.items()])


@pytest.mark.qemu
@pytest.mark.integration
@pytest.mark.parametrize("target,function,hand", CASES, ids=[f"{t}-{f}" for t, f, _ in CASES])
def test_micro_benchmarks_match_the_hand_counts(micro_elves, target, function, hand):
    trace = cycles.trace_function(micro_elves[target], function, target=target)
    c = cycles.count(trace, cycles.timing_for(target))
    assert c.calls == 1 and not c.unknown_mnemonics
    assert (c.cycles, c.instructions) == hand


@pytest.mark.qemu
@pytest.mark.integration
def test_flash_wait_states_slow_fetch_and_an_accelerator_hides_them_after_the_first_run(micro_elves):
    trace = cycles.trace_function(micro_elves["cortex-m4"], "mb_loop")
    m4 = cycles.CORTEX_M4
    base = cycles.count(trace, m4).cycles
    slow = cycles.count(trace, m4, cycles.Memory(wait_states=3)).cycles
    art = cycles.count(trace, m4, cycles.Memory(wait_states=3, accelerator=True)).cycles
    # The loop block (adds, subs, bne: 6 bytes, 2 fetch words) is fetch-bound at 2 x 4 = 8 cycles and every
    # taken branch pays 3 more; with the accelerator only each block's first fetch pays (3 blocks).
    assert slow > art > base
    assert art - base == 3 * (2 + 2 + 1)  # words of the entry, loop and exit blocks, 3 wait states each


@pytest.mark.fast
def test_mnemonics_decode_with_conditions_and_flag_suffixes():
    assert isa.split_mnemonic("bls") == ("b", True, True)  # B<ls>, not BL with S
    assert isa.split_mnemonic("movs") == ("mov", False, True)  # not MO<vs>
    assert isa.split_mnemonic("smlals") == ("smlal", False, True)
    assert isa.split_mnemonic("ldrb.w") == ("ldrb", False, True)
    assert isa.split_mnemonic("addseq") == ("add", True, True)
    assert isa.split_mnemonic("vmla.f32")[2] is False  # unknown: reported, not guessed
    pop = isa.parse_line("0x00004bb8:  e8bd 83f0  pop.w    {r4, r5, r6, r7, r8, sb, pc}")
    assert pop.size == 4 and pop.registers == 7 and pop.writes_pc and "r9" in pop.writes
    ldr = isa.parse_line("0x00004b52:  f855 3034  ldr.w    r3, [r5, r4, lsl #3]")
    assert ldr.kind is isa.Kind.LOAD and ldr.address_regs == {"r4", "r5"} and ldr.register_offset
    bne = isa.parse_line("0x0000005e:  d1fc       bne      #0x5a")
    assert bne.conditional and bne.target == 0x5A and bne.size == 2


@pytest.mark.fast
def test_every_core_table_times_every_instruction_class():
    for timing in cycles.TIMINGS.values():
        assert all(timing.cost(k).base + timing.cost(k).per_register >= 1 for k in isa.Kind
                   if k not in (isa.Kind.LOAD_MULTIPLE, isa.Kind.STORE_MULTIPLE) or timing.cost(k).per_register)
    with pytest.raises(ValueError, match="no cycle cost"):
        cycles.CoreTiming("x", ((isa.Kind.ALU, cycles.Cost(1)),), 1, 0, 0, False, False)
    with pytest.raises(Exception, match="no cycle model for cortex-m3"):
        cycles.timing_for("cortex-m3")


def _folder(q, result, tmp_path_factory, label: str) -> Path:
    from tinyq import emit

    fw = tmp_path_factory.mktemp(label) / "firmware"
    emit.emit(q, result, fw, name="mnist")
    return fw


@pytest.mark.qemu
@pytest.mark.integration
def test_engine_cycles_count_the_boards_instructions_and_split_per_kernel_call(mlp_q, mlp_verify, tmp_path_factory):
    from tinyq.targets import cortex_m

    fw = _folder(mlp_q, mlp_verify, tmp_path_factory, "cycles_mlp")
    n = 5
    inputs = mlp_verify.int8_inputs.reshape(mlp_verify.test_images, -1)[:n]
    expected = mlp_verify.tflm_outputs.reshape(mlp_verify.test_images, -1)[:n]
    m = cortex_m.measure_cortex_m(fw, fw.parent / "build", inputs, expected, cycles=True)
    c = m.cycles
    assert c.calls == m.golden_count and not c.unknown_mnemonics
    golden = cortex_m.run_qemu_golden(m.elf).figures
    # The log and the board's SysTick counter see the same instructions (the board's reading is one tick coarse).
    assert abs(c.instructions_per_call - golden.instructions_per_inference) <= golden.instructions_per_tick
    assert 1.0 < c.cycles_per_instruction < 2.0  # M4: loads 1-2, branches 2-3, everything else 1
    p = cortex_m.profile_ops(fw, fw.parent / "profile", mlp_q.graph, inputs, expected, cycles=True)
    assert all(o.cycles is not None and o.cycles > 0 for o in p.ops)
    # Per-op cycles (the profile's marks left out) add up to the plain build's cycles within what the marks'
    # calls change around each kernel call (register allocation of the invoke; measured: 12 of 143,550 cycles).
    total = sum(o.cycles for o in p.ops)
    assert abs(c.cycles_per_call - total) < 50 * len(p.ops)


@pytest.mark.qemu
@pytest.mark.integration
def test_a_model_too_big_for_the_board_fails_in_one_line_per_region(cnn_q, cnn_verify, tmp_path_factory):
    from tinyq.errors import BuildError
    from tinyq.targets import cortex_m

    fw = _folder(cnn_q, cnn_verify, tmp_path_factory, "cycles_m0_fit")
    with pytest.raises(BuildError) as err:
        cortex_m.build_cortex_m(fw, fw.parent / "m0", target="cortex-m0")
    msg = str(err.value)
    assert "\n" not in msg and "collect2" not in msg
    fit = cortex_m.link_fit(fw.parent / "m0" / "stub.elf.map", registry.get("cortex-m0"))
    assert fit.ram_needed > 16 * 1024 >= fit.flash_needed - 256 * 1024  # the CNN's arena overflows the RAM
    assert (f"RAM needs {fit.ram_needed:,} bytes (.data + .bss {fit.ram_static:,} + stack 3,072, heap not counted) "
            f"of 16,384 (over by {fit.ram_needed - 16384:,})") in msg
    assert f"flash needs {fit.flash_needed:,} bytes of 262,144 (fits)" in msg


@pytest.mark.fast
def test_log_stream_drops_blocks_that_never_ran_and_resolves_branches_from_the_next_block():
    """A hand-written log in QEMU 7.2's format: a self-looping block run twice (its second Trace line stopped by
    the instruction budget before it ran, so three lines, two runs), then a return."""
    import io

    from tinyq.targets.cycles.stream import Window, parse_log

    def trace(ptr: int, pc: int) -> str:
        return f"Trace 0: 0x7f00000{ptr:05x} [00000000/{pc:08x}/00000110/ff020200] f\n"

    log = ("----------------\nIN: f\n0x00000010:  2100       movs     r1, #0\n"
           "0x00000012:  d1fd       bne      #0x10\n\n" + trace(0x100, 0x10) + trace(0x100, 0x10)
           + "Stopped execution of TB chain before 0x7f0000000100 [00000010] f\n" + trace(0x100, 0x10)
           + "----------------\nIN: f\n0x00000014:  4770       bx       lr\n\n" + trace(0x200, 0x14)
           + "----------------\nIN: main\n0x00000100:  2000       movs     r0, #0\n\n" + trace(0x300, 0x100))
    t = parse_log(io.StringIO(log), Window(0x10, frozenset({0x100})))
    assert t.windows == 1 and t.executions == 4
    c = cycles.count(t, cycles.CORTEX_M4)
    # movs + bne taken (1 + 1+P), movs + bne not taken (1 + 1), bx lr (1+P), P = 1
    assert (c.cycles, c.instructions) == ((1 + 2) + (1 + 1) + 2, 5)
