"""Engine code a user links, per model and Cortex-M core: the specialised kernels (--optimize speed) against the
generic ones (size), and the largest functions of each speed build.

    TINYQ_MNIST=../shared/data/mnist python3 benchmarks/code_size.py [--targets cortex-m4 ...]
        [--models mnist_cnn ...] [--top 8] [--workdir DIR]

Each model is prepared as benchmarks/cortex_m.py prepares it (trained or loaded, quantized, checked in TFLM on a few
inputs, emitted once per optimize setting), then cross-compiled at -O2 per core; nothing runs in QEMU. "code" is
tinyq.targets.cortex_m.FlashSplit.engine_code: the generated model's code and the runtime's kernels and glue that the
linker keeps (-ffunction-sections, --gc-sections), without start-up, libc or the test harness; "constants" is
FlashSplit.model_constants. A build that does not link on a core (the micro:bit's 16 KB RAM) is listed as such.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from cortex_m import BIG_MODELS, DEMO_MODELS, STANDIN_MODELS, prepare  # benchmarks/cortex_m.py

from tinyq import data
from tinyq.targets import cortex_m, registry
from tinyq.errors import TinyqError
from tinyq.native import run_child

PREPARE_INPUTS = 10  # inputs checked in TFLM and on the host while preparing; sizes do not depend on them


def _text_symbols(path: Path) -> dict[str, int]:
    """Code symbols (name -> bytes) of an object or ELF, from arm-none-eabi-nm."""
    proc = run_child(["arm-none-eabi-nm", "-S", "-t", "d", "--defined-only", str(path)])
    if proc.returncode != 0:
        raise TinyqError(f"{path}: arm-none-eabi-nm failed: {proc.stderr.strip()}")
    return {parts[3]: int(parts[1]) for parts in (ln.split() for ln in proc.stdout.splitlines())
            if len(parts) == 4 and parts[2] in ("t", "T")}


def engine_functions(elf: Path, top: int) -> list[tuple[str, int]]:
    """The `top` largest functions the ELF kept from the engine's objects (the generated model's and the
    runtime's; not the harness's), with their bytes."""
    kept = _text_symbols(elf)
    names: set[str] = set()
    for obj in sorted((elf.parent / "obj").glob("*.o")):
        if obj.stem not in cortex_m.HARNESS_SOURCES and not obj.stem.endswith("_golden"):
            names |= set(_text_symbols(obj))
    return sorted(((n, kept[n]) for n in names if n in kept), key=lambda e: (-e[1], e[0]))[:top]


def code_bytes(fw: Path, build: Path, target: str) -> tuple[cortex_m.FlashSplit, Path]:
    """Flash split of the folder's stub built for `target` (map file contributions; no run)."""
    elf = cortex_m.build_cortex_m(fw, build, "-O2", target)
    flash, _ = cortex_m.flash_and_ram(elf, Path(str(elf) + ".map"), fw, 0, 0, 0)
    return flash, elf


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=list(registry.TARGETS), choices=list(registry.TARGETS))
    parser.add_argument("--models", nargs="+", default=list(DEMO_MODELS) + [m for m in STANDIN_MODELS
                                                                          if m in BIG_MODELS],
                        choices=DEMO_MODELS + STANDIN_MODELS)
    parser.add_argument("--top", type=int, default=8, help="largest engine functions listed per speed build")
    parser.add_argument("--workdir", type=Path, default=None, help="keep trained stand-ins here for the next run")
    args = parser.parse_args()
    cortex_m.check_toolchain()
    with tempfile.TemporaryDirectory(prefix="tinyq_bench_size_") as tmp:
        work = (args.workdir or Path(tmp)).resolve()
        mnist = data.load_mnist() if set(args.models) & set(DEMO_MODELS) else None
        workloads = {}
        for name in args.models:
            workloads[name] = prepare(name, PREPARE_INPUTS, work, mnist)
            print(f"[{name}] emitted", file=sys.stderr, flush=True)
        rows, functions, failed = [], [], []
        for target in args.targets:
            for name, w in workloads.items():
                cell = {}
                for label, fw in (("size", w.fw_size), ("speed", w.fw_speed)):
                    try:
                        cell[label] = code_bytes(fw, work / "build" / target / name / label, target)
                    except TinyqError as exc:
                        text = str(exc)
                        why = re.search(r"RAM overflow[^|]*|region [^|]*overflowed[^|]*", text)
                        failed.append(f"- {target} {name} {label}: {(why.group(0) if why else text)[:200].strip()}")
                if "speed" in cell:
                    functions.append((target, name, engine_functions(cell["speed"][1], args.top)))
                if cell:
                    rows.append((target, name, cell))
        print("Engine code (bytes, -O2): generated model code + runtime kernels and glue the linker keeps; "
              "model constants beside")
        print("| core | model | size code | speed code | speed - size | size constants | speed constants |")
        print("|---|---|---|---|---|---|---|")
        for target, name, cell in rows:
            size, speed = cell.get("size"), cell.get("speed")
            fmt = (lambda f, attr: "-" if f is None else f"{getattr(f[0], attr):,}")
            diff = "-" if size is None or speed is None else f"{speed[0].engine_code - size[0].engine_code:+,}"
            print(f"| {target} | {name} | {fmt(size, 'engine_code')} | {fmt(speed, 'engine_code')} | {diff} | "
                  f"{fmt(size, 'model_constants')} | {fmt(speed, 'model_constants')} |")
        print(f"\nLargest engine functions of each speed build (bytes, top {args.top})")
        for target, name, funcs in functions:
            print(f"- {target} {name}: " + ", ".join(f"{f} {b:,}" for f, b in funcs))
        if failed:
            print("\nNot built (a core whose memory the build does not fit):")
            print("\n".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
