"""The specialised CONV_2D kernels on the demo CNN: generic (--optimize size) against specialised (speed).

    TINYQ_MNIST=../shared/data/mnist python3 benchmarks/conv_kernels.py [--qemu-images 20]
        [--targets cortex-m4 cortex-m3]

Per engine: images of the whole MNIST test set bit-exact with TFLM on this host (packed path, and -DTQ_PORTABLE
for the specialised engine), the host time for them at -O3, and per Cortex-M target instructions per inference
counted in QEMU at -O2 (with the images that matched TFLM there).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


from common import host_exact  # noqa: E402

from tinyq import data, emit, models, quantize, runtimes, verify  # noqa: E402
from tinyq.targets import cortex_m  # noqa: E402
from tinyq.engine import Optimize  # noqa: E402
from tinyq.engine import macs as count_macs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mnist_cnn", choices=models.BUILDERS)
    parser.add_argument("--qemu-images", type=int, default=20)
    parser.add_argument("--targets", nargs="*", default=["cortex-m4", "cortex-m3"])
    args = parser.parse_args()
    ds = data.load_mnist()
    model = models.demo_model(args.model, ds)
    shape = models.input_shape(model)
    q = quantize.quantize(model, data.preprocess(ds.train_x, shape), labels=ds.train_y)
    x = verify.quantize_input(data.preprocess(ds.test_x, shape), q.input)
    tflm = runtimes.run_tflm(q.tflite, x).reshape(len(x), -1)
    r = verify.VerifyResult.tflm_only(q, x, tflm, ds.test_y)
    macs = count_macs(q.graph)
    print(f"{args.model}: {len(x)} test images, {macs:,} MACs per inference")
    print(f"{'engine':<8} {'host build':<18} {'bit-exact':>9} {'host s':>7}")
    with tempfile.TemporaryDirectory(prefix="tinyq_bench_conv_") as tmp:
        folders = {}
        for opt in (Optimize.SIZE, Optimize.SPEED):
            fw = Path(tmp) / opt.value
            emit.emit(q, r, fw, name=args.model, golden_count=5, optimize=opt)
            folders[opt] = fw
            builds = [("-O3", "-O3")] + ([("-O3 portable", "-O3 -DTQ_PORTABLE")] if opt is Optimize.SPEED else [])
            for label, flags in builds:
                exact, dt = host_exact(fw, Path(tmp) / f"{opt.value}_{label.replace(' ', '_')}", x, tflm, flags)
                print(f"{opt.value:<8} {label:<18} {exact:>9} {dt:>7.2f}")
        n = args.qemu_images
        print(f"\n{'engine':<8} {'target':<10} {'instr/inference':>15} {'per MAC':>7} {'bit-exact':>9}")
        for target in args.targets:
            for opt, fw in folders.items():
                res = cortex_m.measure_cortex_m(fw, Path(tmp) / f"{target}_{opt.value}", x[:n], tflm[:n],
                                                target=target)
                print(f"{opt.value:<8} {target:<10} {res.instructions_per_inference:>15,} "
                      f"{res.instructions_per_inference / macs:>7.2f} {res.bitexact_images:>5}/{n}")


if __name__ == "__main__":
    main()
