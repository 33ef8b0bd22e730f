"""Flash, RAM and instructions per inference of the C engine on a Cortex-M4 (QEMU mps2-an386), at -O2 and -Os.

    TINYQ_MNIST=../shared/data/mnist python3 benchmarks/cortex_m.py [--models mnist_cnn mnist_mlp] [--images 1000]

Every figure is measured in this run: the demo models are trained (or taken from the model cache), quantized,
checked in TFLM on the first --images test images, emitted, cross-compiled and run in QEMU with -icount shift=0.
Instructions per inference is the mean over those images (counter overhead removed, resolution one SysTick
tick = 40 instructions per reading); bit-exact counts images whose int8 output equals TFLM's.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tinyq import cortex_m, data, emit, models, quantize, verify  # noqa: E402

OPTS = ("-O2", "-Os")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mnist_cnn", "mnist_mlp"], choices=models.BUILDERS)
    parser.add_argument("--images", type=int, default=1000, help="test images streamed through QEMU")
    args = parser.parse_args()
    cortex_m.check_toolchain()
    ds = data.load_mnist()
    n = min(args.images, len(ds.test_x))
    rows = []
    with tempfile.TemporaryDirectory(prefix="tinyq_bench_cm4_") as tmp:
        for name in args.models:
            model = models.demo_model(name, ds)
            shape = models.input_shape(model)
            q = quantize.quantize(model, data.preprocess(ds.train_x, shape), labels=ds.train_y)
            result = verify.verify(model, q, ds.test_x[:n], ds.test_y[:n])
            fw = Path(tmp) / name / "firmware"
            emit.emit(q, result, fw, name=name)
            inputs = result.int8_inputs.reshape(n, -1)
            expected = result.tflm_outputs.reshape(n, -1)
            for opt in OPTS:
                t = time.perf_counter()
                m = cortex_m.measure_cortex_m(fw, Path(tmp) / name / f"build{opt}", inputs, expected, opt=opt)
                rows.append((name, result.macs, m, time.perf_counter() - t))
    print(f"Cortex-M4 (QEMU {cortex_m.QEMU_MACHINE}, -icount shift=0), C engine, {n} test images per row")
    head = (f"{'model':<10} {'opt':<4} {'flash B':>8} {'model':>7} {'code':>6} {'golden':>6} {'rt/libc':>7} "
            f"{'RAM B':>7} {'arena':>6} {'stack':>6} {'instr/inf':>10} {'MACs':>8} {'instr/MAC':>9} "
            f"{'bit-exact':>10} {'run s':>6}")
    print(head)
    print("-" * len(head))
    for name, macs, m, secs in rows:
        f, r = m.flash, m.ram
        print(f"{name:<10} {m.opt:<4} {m.flash_bytes:>8} {f.model_constants:>7} {f.engine_code:>6} "
              f"{f.golden_vectors:>6} {f.startup_libc:>7} {m.ram_bytes:>7} {r.arena:>6} {r.stack_peak:>6} "
              f"{m.instructions_per_inference:>10} {macs:>8} {m.instructions_per_inference / macs:>9.2f} "
              f"{m.bitexact_images:>5}/{m.images:<4} {secs:>6.1f}")
    print("flash = model constants + engine/stub code + golden vectors + start-up/newlib; "
          "RAM = arena + other .data/.bss + heap + stack high-water (whole run, incl. printf/stdio)")


if __name__ == "__main__":
    main()
