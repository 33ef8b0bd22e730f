"""The C engine next to TFLM for each demo model: bit-exact images, arena, lower bound, constant data, code, time.

    TINYQ_MNIST=../shared/data/mnist python3 benchmarks/c_engine.py [--models mnist_cnn mnist_mlp mnist_dsres]

Everything is measured in this run on the full test set: TFLM (Python interpreter, the kernels a device
runs) and the generated C built with -O2 on this host, one process for all images each.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from tinyq import data, emit, firmware, models, quantize, verify  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(models.DEMO_MODELS), choices=models.BUILDERS)
    args = parser.parse_args()
    ds = data.load_mnist()
    print(f"{'model':<12} {'images':>6} {'bit-exact':>9} {'tflite B':>9} {'TFLM arena':>10} {'C arena':>8} "
          f"{'lower bd':>8} {'C const B':>9} {'C code B':>8} {'TFLM s':>7} {'C s':>6}")
    with tempfile.TemporaryDirectory(prefix="tinyq_bench_c_") as tmp:
        for name in args.models:
            model = models.demo_model(name, ds)
            shape = models.input_shape(model)
            q = quantize.quantize(model, data.preprocess(ds.train_x, shape), labels=ds.train_y)
            x = verify.quantize_input(data.preprocess(ds.test_x, shape), q.input)
            t = time.perf_counter()
            tflm = verify.run_tflm(q.tflite, x).reshape(len(x), -1)
            t_tflm = time.perf_counter() - t
            r = verify.VerifyResult.tflm_only(q, x, tflm, ds.test_y, verify.tflm_arena_bytes(q.tflite, x[0]))
            emission = emit.prepare(q, r, name)
            fw = Path(tmp) / name
            emit.write_files(list(emission.files), fw)
            exe = firmware.build_stub(fw, Path(tmp) / f"{name}_build")
            t = time.perf_counter()
            outs = firmware.run_batch(exe, x, tflm.shape[1])
            t_c = time.perf_counter() - t
            exact = int(np.sum(np.all(outs == tflm, axis=1)))
            e = emission.engine
            print(f"{name:<12} {len(x):>6} {exact:>9} {len(q.tflite):>9} {r.tflm_arena_bytes:>10} "
                  f"{e.arena_bytes:>8} {e.lower_bound_bytes:>8} {e.const_bytes:>9} {firmware.code_bytes(exe):>8} "
                  f"{t_tflm:>7.2f} {t_c:>6.2f}")


if __name__ == "__main__":
    main()
