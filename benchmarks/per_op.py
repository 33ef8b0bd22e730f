"""Instructions per op and per MAC of the C engine on a Cortex-M core in QEMU, for one demo model or stand-in.

    TINYQ_MNIST=../shared/data/mnist python3 benchmarks/per_op.py --model mnist_cnn --target cortex-m4 [--images 100]

Every figure is measured in this run: the demo model is trained (or taken from the model cache), quantized,
checked in TFLM on the first --images test images, emitted, and cross-compiled twice. The plain build gives
instructions per inference; a `make PROFILE=1` build of the same generated C marks the instruction counter
after every kernel call (firmware_stub/board/cortex_m/profile.c). Each mark reads one SysTick tick (40
instructions on the mps2 boards), so the per-op figures are means over the images; the last line compares their
sum with the plain build's total.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tinyq import data, models  # noqa: E402
from tinyq.targets import cortex_m, registry  # noqa: E402
from tinyq.engine import Optimize, read_graph  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
bench = importlib.import_module("cortex_m")  # benchmarks/cortex_m.py: the models and their preparation


def per_op_lines(profile: cortex_m.OpProfile, instructions_per_inference: int) -> list[str]:
    """The per-op table as text lines: op, kernel, MACs, instructions, instructions per MAC; then the sums."""
    head = f"{'#':>3} {'op':<18} {'kernel':<26} {'MACs':>9} {'instructions':>13} {'instr/MAC':>9} {'share':>7}"
    lines = [head, "-" * len(head)]
    for o in profile.ops:
        per_mac = "-" if o.instructions_per_mac is None else f"{o.instructions_per_mac:.2f}"
        lines.append(f"{o.op_index:>3} {o.op_name:<18} {o.kernel:<26} {o.macs:>9} {o.instructions:>13.0f} "
                     f"{per_mac:>9} {100.0 * o.instructions / instructions_per_inference:>6.2f}%")
    macs = sum(o.macs for o in profile.ops)
    lines.append("-" * len(head))
    lines.append(f"{'':>3} {'sum of ops':<18} {'':<26} {macs:>9} {profile.instructions:>13.0f} "
                 f"{profile.instructions / max(macs, 1):>9.2f} "
                 f"{100.0 * profile.instructions / instructions_per_inference:>6.2f}%")
    lines.append(f"plain build: {instructions_per_inference} instructions per inference; outside the kernel calls "
                 f"(entry, return, one mark's overhead): {profile.outside:.0f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mnist_cnn", choices=[*models.BUILDERS, *bench.STANDIN_MODELS],
                        help="a demo model, or a stand-in of tests/standins.py (trained briefly on synthetic data, "
                             "kept in --workdir)")
    parser.add_argument("--workdir", type=Path, help="keep trained stand-ins here for the next run")
    parser.add_argument("--target", default=registry.DEFAULT_TARGET, choices=list(registry.TARGETS))
    parser.add_argument("--images", type=int, default=100, help="test images streamed through each build")
    parser.add_argument("--opt", default="-O2", choices=["-O2", "-Os", "-O3"])
    parser.add_argument("--optimize", nargs="+", default=["size", "speed"], choices=[o.value for o in Optimize],
                        help="kernel choices to measure, one table each (default: size, i.e. the generic kernels "
                             "(before), then speed (after))")
    args = parser.parse_args()
    cortex_m.check_toolchain()
    with tempfile.TemporaryDirectory(prefix="tinyq_bench_per_op_") as scratch:
        work = args.workdir or Path(scratch)
        mnist = data.load_mnist() if args.model in models.BUILDERS else None
        w = bench.prepare(args.model, args.images, work, mnist)
        measure(args, w)


def measure(args, w) -> None:
    """Plain and profiled builds of the workload's folder for each kernel choice; print their per-op tables."""
    n, q_tflite, inputs, expected = len(w.inputs), w.tflite, w.inputs, w.expected
    for choice in (Optimize(o) for o in args.optimize):
        with tempfile.TemporaryDirectory(prefix="tinyq_bench_per_op_") as tmp:
            fw = w.fw_speed if choice is Optimize.SPEED else w.fw_size
            plain = cortex_m.measure_cortex_m(fw, Path(tmp) / "plain", inputs, expected, opt=args.opt,
                                              target=args.target)
            profile = cortex_m.profile_ops(fw, Path(tmp) / "profile", read_graph(q_tflite), inputs, expected, opt=args.opt,
                                           target=args.target)
        board = registry.get(args.target).qemu_machine
        print(f"{args.model} on {args.target} (QEMU {board}, -icount shift=0, {args.opt}), "
              f"C engine with --optimize {choice.value} kernels, {n} test images; bit-exact with TFLM: plain "
              f"{plain.bitexact_images}/{n}, profiled {profile.bitexact_images}/{n}; resolution "
              f"{profile.resolution} instructions per mark; flash {plain.flash.deployment} B (model constants "
              f"{plain.flash.model_constants} + engine code {plain.flash.engine_code}), RAM {plain.ram.deployment} B")
        for line in per_op_lines(profile, plain.instructions_per_inference):
            print(line)
        print()

if __name__ == "__main__":
    main()
