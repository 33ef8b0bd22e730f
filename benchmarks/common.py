"""What the benchmarks share: the command line for one demo model, and timing by the median of repeats."""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tinyq import data, models  # noqa: E402


def demo_model_from_args(description: str):
    """Parse --model and --repeat, load MNIST ($TINYQ_MNIST) and the cached demo model: (args, dataset, model)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="mnist_cnn", choices=models.BUILDERS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ds = data.load_mnist()
    return args, ds, models.demo_model(args.model, ds)


def host_exact(folder, build_dir, inputs, expected, opt: str = "-O3") -> tuple[int, float]:
    """The stub built on the host with `opt` over every input: (outputs equal to `expected`, seconds of the run)."""
    import numpy as np

    from tinyq.targets import firmware

    exe = firmware.build_stub(folder, build_dir, opt=opt)
    t = time.perf_counter()
    outs = firmware.run_batch(exe, inputs, expected.shape[1])
    return int(np.sum(np.all(outs == expected, axis=1))), time.perf_counter() - t


def median_seconds(fn, repeat: int):
    """Median wall time of `repeat` calls of fn, and the last call's result."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result
