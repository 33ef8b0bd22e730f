"""The specialised pooling kernels against the generic ones: instructions per inference on Cortex-M cores in QEMU.

    python3 benchmarks/pool_kernels.py [--images 20] [--targets cortex-m4,cortex-m3]

Rows: synthetic one-op int8 models, each emitted with --optimize size (generic tq_max_pool / tq_average_pool) and
speed (tinyq/engine/ops/pool.py's choice), cross-compiled at -O2, run in QEMU (-icount shift=0) on --images random
inputs checked against TFLM byte for byte. Figures are whole inferences (the same harness cost in both columns);
the last column is the specialised kernel's instructions per output element, after the one-op model's fixed cost
(entry, copy-out) measured on a 1x1 model is taken off.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tinyq import emit, quantize, runtimes, verify  # noqa: E402
from tinyq.targets import cortex_m  # noqa: E402
from tinyq.engine import read_graph  # noqa: E402
from tinyq.engine import Optimize, lower  # noqa: E402

L = tf.keras.layers
# name, input shape (h, w, c), layer
CASES = (
    ("max 2x2/2 26x26x16", (26, 26, 16), lambda: L.MaxPooling2D(2, 2)),
    ("max 3x3/2 same 32x32x8", (32, 32, 8), lambda: L.MaxPooling2D(3, 2, "same")),
    ("avg 2x2/2 26x26x16", (26, 26, 16), lambda: L.AveragePooling2D(2, 2)),
    ("avg 3x3/1 same 16x16x12", (16, 16, 12), lambda: L.AveragePooling2D(3, 1, "same")),
    ("avg global 8x8x64", (8, 8, 64), lambda: L.AveragePooling2D(8)),
    ("avg global 25x5x64", (25, 5, 64), lambda: L.AveragePooling2D((25, 5))),
)


def _one_op(shape, layer):
    tf.keras.utils.set_random_seed(1)
    inp = tf.keras.Input(shape)
    model = tf.keras.Model(inp, layer()(inp))
    calib = np.random.default_rng(1).random((16,) + shape, dtype=np.float32) * 2 - 1
    return quantize.quantize(model, calib, quantize.QuantizeConfig(16, input_range=(-1.0, 1.0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20, help="inputs streamed through QEMU per build")
    parser.add_argument("--targets", default="cortex-m4,cortex-m3")
    args = parser.parse_args()
    cortex_m.check_toolchain()
    targets = args.targets.split(",")
    print(f"one-op pooling models, QEMU -icount shift=0, -O2, {args.images} random inputs per build, whole inference")
    print(f"{'case':<26} {'target':<10} {'kernel (speed)':<24} {'size':>9} {'speed':>9} {'ratio':>6} "
          f"{'bit-exact':>10} {'instr/out':>9}")
    with tempfile.TemporaryDirectory(prefix="tinyq_bench_pool_") as tmp:
        base = {}
        for case, shape, layer in (("fixed cost 1x1x4", (1, 1, 4), lambda: L.MaxPooling2D(1)),) + CASES:
            q = _one_op(shape, layer)
            x = np.random.default_rng(2).integers(-128, 128, (args.images,) + shape, dtype=np.int8)
            tflm = runtimes.run_tflm(q.tflite, x).reshape(args.images, -1)
            r = verify.VerifyResult.tflm_only(q, x, tflm, np.arange(args.images) % 10)
            kernel = next(c.kernel for c in lower(read_graph(q.tflite), Optimize.SPEED).calls)
            slug = "".join(ch if ch.isalnum() else "_" for ch in case)
            for target in targets:
                runs = {}
                for optimize in (Optimize.SIZE, Optimize.SPEED):
                    fw = Path(tmp) / slug / optimize.value
                    if not fw.exists():
                        emit.emit(q, r, fw, name="pool", golden_count=2, class_labels=None, optimize=optimize)
                    runs[optimize] = cortex_m.measure_cortex_m(fw, Path(tmp) / slug / f"{optimize.value}_{target}",
                                                               x, tflm, target=target)
                size, speed = (runs[o].instructions_per_inference for o in (Optimize.SIZE, Optimize.SPEED))
                exact = min(runs[o].bitexact_images for o in runs)
                if case.startswith("fixed"):
                    base[target] = speed
                per_out = (speed - base[target]) / tflm.shape[1]
                print(f"{case:<26} {target:<10} {kernel:<24} {size:>9} {speed:>9} {size / speed:>6.2f} "
                      f"{exact:>5}/{args.images:<4} {per_out:>9.2f}")


if __name__ == "__main__":
    main()
