"""Instructions per op and per MAC of the C engine on a Cortex-M core in QEMU, for one demo model.

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
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tinyq import cortex_m, data, emit, models, quantize, verify  # noqa: E402


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
    parser.add_argument("--model", default="mnist_cnn", choices=models.BUILDERS)
    parser.add_argument("--target", default=cortex_m.TARGET, choices=cortex_m.TARGETS)
    parser.add_argument("--images", type=int, default=100, help="test images streamed through each build")
    parser.add_argument("--opt", default="-O2", choices=["-O2", "-Os", "-O3"])
    args = parser.parse_args()
    cortex_m.check_toolchain()
    ds = data.load_mnist()
    n = min(args.images, len(ds.test_x))
    model = models.demo_model(args.model, ds)
    q = quantize.quantize(model, data.preprocess(ds.train_x, models.input_shape(model)), labels=ds.train_y)
    result = verify.verify(model, q, ds.test_x[:n], ds.test_y[:n])
    inputs = result.int8_inputs.reshape(n, -1)
    expected = result.tflm_outputs.reshape(n, -1)
    with tempfile.TemporaryDirectory(prefix="tinyq_bench_per_op_") as tmp:
        fw = Path(tmp) / "firmware"
        emit.emit(q, result, fw, name=args.model)
        plain = cortex_m.measure_cortex_m(fw, Path(tmp) / "plain", inputs, expected, opt=args.opt,
                                          target=args.target)
        profile = cortex_m.profile_ops(fw, Path(tmp) / "profile", q.tflite, inputs, expected, opt=args.opt,
                                       target=args.target)
    print(f"{args.model} on {args.target} (QEMU {cortex_m.machine(args.target)}, -icount shift=0, {args.opt}), "
          f"C engine, {n} test images; bit-exact with TFLM: plain {plain.bitexact_images}/{n}, "
          f"profiled {profile.bitexact_images}/{n}; resolution {profile.resolution} instructions per mark")
    for line in per_op_lines(profile, plain.instructions_per_inference):
        print(line)


if __name__ == "__main__":
    main()
