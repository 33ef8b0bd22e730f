"""The target registry (tinyq/targets/registry.py): the one definition of each core, and every place that reads it:
the Makefile's variables (passed by tinyq, or asked for by a hand-run make), the CLI's choices, the reports."""

import argparse
import subprocess
import sys

import pytest

from tinyq import cli, report
from tinyq.errors import BuildError, TinyqError
from tinyq.resources import firmware_stub_dir
from tinyq.targets import DEFAULT_TARGET, QEMU_MACHINES, TARGETS, MemoryRegion, Target, firmware, get, registry

# What the per-core fragments firmware_stub/targets/cortex-m<N>.mk held before the registry replaced them (an
# empty memory map or stack meant the linker script's mps2 defaults: 0 4M 0x20000000 4M, a 64K stack).
FORMER_MAKEFILES = {
    "cortex-m0": ("cortex-m0", "0x0 256K 0x20000000 16K", "3K", "16000", "microbit"),
    "cortex-m3": ("cortex-m3", "0x0 4M 0x20000000 4M", "64K", "10240", "mps2-an385"),
    "cortex-m4": ("cortex-m4", "0x0 4M 0x20000000 4M", "64K", "10240", "mps2-an386"),
    "cortex-m7": ("cortex-m7", "0x0 4M 0x20000000 4M", "64K", "10240", "mps2-an500"),
    "cortex-m33": ("cortex-m33", "0x10000000 4M 0x38000000 4M", "64K", "12800", "mps2-an505"),
    "cortex-m55": ("cortex-m55", "0x0 512K 0x20000000 512K", "64K", "8000", "mps3-an547"),
}
# A make goal that prints what the Makefile made of the CM_* variables.
SHOW = ("tinyq-show: ; @printf '%s\\n' $(foreach v,$(CM_VARIABLES),'$(v)=$($(v))') 'CFLAGS=$(TARGET_CFLAGS)' "
        "'DEFSYMS=$(CM_DEFSYMS)'")


def test_registry_holds_what_the_former_makefile_fragments_held():
    assert list(TARGETS) == list(FORMER_MAKEFILES) and DEFAULT_TARGET == "cortex-m4"
    for name, (cpu, memory, stack, tick, machine) in FORMER_MAKEFILES.items():
        v = get(name).make_variables()
        assert (v["CM_CPU"], v["CM_STACK"], v["CM_TICK_X256"], v["CM_FLOAT_ABI"]) == (cpu, stack, tick, "soft")
        region_values = ("CM_FLASH_ORIGIN", "CM_FLASH_LENGTH", "CM_RAM_ORIGIN", "CM_RAM_LENGTH")
        assert " ".join(v[k] for k in region_values) == memory
        assert get(name).qemu_machine == QEMU_MACHINES[name] == machine
        assert get(name).report_key == name.replace("-", "_")
        assert get(name).title == name.replace("cortex-m", "Cortex-M")


def test_unknown_target_names_itself_and_the_known_ones():
    with pytest.raises(TinyqError, match=r"unknown target 'cortex-m9'; choose one of cortex-m0, cortex-m3, cortex-m4, "
                                         r"cortex-m7, cortex-m33, cortex-m55$"):
        get("cortex-m9")
    with pytest.raises(BuildError, match="unknown target 'riscv'"):
        firmware.build_stub(".", "build", target="riscv")


def test_a_target_checks_its_own_fields():
    m4 = get("cortex-m4")
    with pytest.raises(ValueError, match="whole number of instructions per tick"):
        Target(**{**m4.__dict__, "clock_hz": 24_000_000})
    with pytest.raises(ValueError, match="float ABI"):
        Target(**{**m4.__dict__, "float_abi": "vfp"})
    with pytest.raises(ValueError, match="does not fit its RAM"):
        Target(**{**m4.__dict__, "ram": MemoryRegion(0x20000000, 32 * 1024)})
    with pytest.raises(ValueError, match="outside 32-bit space"):
        MemoryRegion(0xFFFF0000, 1 << 20)
    assert m4.tick_x256 == 40 * 256 and get("cortex-m0").tick_x256 == 16000  # 62.5 instructions a tick at 16 MHz
    assert m4.cflags == ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft")


def _choices(parser: argparse.ArgumentParser, command: str, option: str) -> list[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return list(next(a for a in sub._actions if option in a.option_strings).choices)


def test_cli_target_choices_are_the_registry():
    parser = cli.build_parser()
    assert _choices(parser, "firmware", "--target") == list(TARGETS)
    assert _choices(parser, "diff", "--target") == list(TARGETS)
    assert parser.parse_args(["firmware", "--out", "x"]).target == DEFAULT_TARGET
    help_text = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "firmware"].format_help()
    for t in TARGETS.values():
        assert t.qemu_machine in help_text


def _make_show(cmd: list[str]) -> dict[str, str]:
    """Run a stub make command line with the SHOW goal instead of the build; the values it printed."""
    proc = subprocess.run([*cmd, "--eval", SHOW, "tinyq-show"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in proc.stdout.splitlines())


def _build_command(monkeypatch, gen, build, target: str) -> list[str]:
    """The make command line firmware.build_stub runs for `target` (captured, not run)."""
    seen = []

    def fake_run_child(cmd, **kwargs):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "error: captured")

    monkeypatch.setattr(firmware, "run_child", fake_run_child)
    with pytest.raises(BuildError, match="captured"):
        firmware.build_stub(gen, build, target=target)
    return seen[0]


@pytest.mark.parametrize("target", list(TARGETS))
def test_make_variables_of_each_target_are_the_registry(target, monkeypatch, tmp_path):
    """What make sees, from the command tinyq's build runs and from a hand-run `make TARGET=...` (which asks
    `python3 -m tinyq.targets`), equals the registry, down to the compiler flags and linker symbols."""
    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "tinyq_stub.h").write_text("")
    t = get(target)
    cmd = _build_command(monkeypatch, gen, tmp_path / "b", target)
    by_hand = ["make", "-s", "-C", str(firmware_stub_dir()), f"GEN_DIR={gen}", f"TARGET={target}",
               f"BUILD_DIR={tmp_path / 'b'}", f"PYTHON={sys.executable}"]
    for shown in (_make_show(cmd), _make_show(by_hand)):
        assert {k: shown[k] for k in t.make_variables()} == t.make_variables()
        assert all(flag in shown["CFLAGS"].split() for flag in t.cflags)
        assert f"-DTINYQ_INSTRUCTIONS_PER_TICK_X256={t.tick_x256}u" in shown["CFLAGS"].split()
        v = t.make_variables()
        symbols = {"TINYQ_FLASH_ORIGIN": "CM_FLASH_ORIGIN", "TINYQ_FLASH_LENGTH": "CM_FLASH_LENGTH",
                   "TINYQ_RAM_ORIGIN": "CM_RAM_ORIGIN", "TINYQ_RAM_LENGTH": "CM_RAM_LENGTH", "STACK_SIZE": "CM_STACK"}
        assert shown["DEFSYMS"].split() == [f"-Wl,--defsym={sym}={v[var]}" for sym, var in symbols.items()]


def test_hand_run_make_refuses_an_unknown_target(tmp_path):
    (tmp_path / "tinyq_stub.h").write_text("")
    proc = subprocess.run(["make", "-s", "-C", str(firmware_stub_dir()), f"GEN_DIR={tmp_path}", "TARGET=cortex-m9",
                           f"PYTHON={sys.executable}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "unknown TARGET 'cortex-m9'" in proc.stderr and "cortex-m0, cortex-m3" in proc.stderr


def test_python_m_tinyq_targets_prints_the_make_variables():
    ok = subprocess.run([sys.executable, "-m", "tinyq.targets", "cortex-m33"], capture_output=True, text=True)
    assert ok.returncode == 0
    assert dict(kv.split("=") for kv in ok.stdout.split()) == get("cortex-m33").make_variables()
    bad = subprocess.run([sys.executable, "-m", "tinyq.targets", "m4"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown target 'm4'" in bad.stderr


def test_report_lists_every_measured_target_in_registry_order():
    section = {"flash_bytes": 1, "ram_bytes": 2, "instructions_per_inference": 3, "bitexact_images": 4, "images": 4}
    r = {"cortex_m55": section, "cortex_m0": section, "cortex_m4": section, "cortex_m9": section}
    assert report.measured_targets(r) == [("cortex_m0", "Cortex-M0"), ("cortex_m4", "Cortex-M4"),
                                          ("cortex_m55", "Cortex-M55")]
    assert registry.TARGETS["cortex-m55"].report_key == "cortex_m55"
