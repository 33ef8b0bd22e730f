"""The C engine next to TFLM for each demo model: bit-exact images, arena, lower bound, constant data, code, time.

    TINYQ_MNIST=../shared/data/mnist python3 benchmarks/c_engine.py [--models mnist_cnn mnist_mlp] [--repeat 3]

Everything is measured in this run on the full test set: TFLM (Python interpreter, the kernels a device runs,
once) and the generated C on this host, as medians of --repeat runs: the stub executable at -O2 fed through
files (`stub in.bin out.bin`, the old bulk path), and the engine library at -O3 in worker processes fed numpy
arrays (firmware.run_library, what the pipeline uses), over 1 and over 2 workers already started (the pipeline
starts them while it builds). Bit-exact counts are over both C paths.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from common import median_seconds  # noqa: E402

from tinyq import data, emit, models, native, quantize, runtimes, verify  # noqa: E402
from tinyq.targets import firmware  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(models.DEMO_MODELS), choices=models.BUILDERS)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each C path; the median is shown")
    args = parser.parse_args()
    ds = data.load_mnist()
    print(f"{'model':<12} {'images':>6} {'bit-exact':>9} {'tflite B':>9} {'TFLM arena':>10} {'C arena':>8} "
          f"{'lower bd':>8} {'C const B':>9} {'C code B':>8} {'TFLM s':>7} {'stub -O2 s':>10} "
          f"{'lib -O3 1w s':>12} {'lib -O3 2w s':>12}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tinyq_bench_c_") as tmp, native.Workers() as workers:
        workers.prepare(native.Runtime.C_ENGINE, slots=2)
        for name in args.models:
            model = models.demo_model(name, ds)
            shape = models.input_shape(model)
            q = quantize.quantize(model, data.preprocess(ds.train_x, shape), labels=ds.train_y)
            x = verify.quantize_input(data.preprocess(ds.test_x, shape), q.input)
            t = time.perf_counter()
            tflm = runtimes.run_tflm(q.tflite, x).reshape(len(x), -1)
            t_tflm = time.perf_counter() - t
            r = verify.VerifyResult.tflm_only(q, x, tflm, ds.test_y, runtimes.tflm_arena_bytes(q.tflite, x[0]))
            emission = emit.prepare(q, r, name)
            fw = Path(tmp) / name
            emit.write_files(list(emission.files), fw)
            exe = firmware.build_stub(fw, Path(tmp) / f"{name}_build")
            lib = firmware.build_library(fw, Path(tmp) / f"{name}_lib")
            t_stub, outs = median_seconds(lambda: firmware.run_batch(exe, x, tflm.shape[1]), args.repeat)
            t_lib1, lib1 = median_seconds(lambda: firmware.run_library(lib, x, tflm.shape[1], workers, jobs=1),
                                          args.repeat)
            t_lib2, lib2 = median_seconds(lambda: firmware.run_library(lib, x, tflm.shape[1], workers, jobs=2),
                                          args.repeat)
            exact = int(np.sum(np.all(outs == tflm, axis=1) & np.all(lib1 == tflm, axis=1)
                               & np.all(lib2 == tflm, axis=1)))
            e = emission.engine
            print(f"{name:<12} {len(x):>6} {exact:>9} {len(q.tflite):>9} {r.tflm_arena_bytes:>10} "
                  f"{e.arena_bytes:>8} {e.lower_bound_bytes:>8} {e.const_bytes:>9} {firmware.code_bytes(exe):>8} "
                  f"{t_tflm:>7.2f} {t_stub:>10.2f} {t_lib1:>12.2f} {t_lib2:>12.2f}", flush=True)
    print(f"medians of {args.repeat} runs; {os.cpu_count()} cores, load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())} at the end ({sys.platform})")


if __name__ == "__main__":
    main()
