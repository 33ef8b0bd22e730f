"""Times each verification stage over the full MNIST test set (medians of repeated runs, one process).

    TINYQ_MNIST=../shared/data/mnist python3 benchmarks/verify_speed.py [--model mnist_cnn] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tinyq import data, models, quantize, verify  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="mnist_cnn", choices=models.BUILDERS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ds = data.load_mnist()
    model = models.demo_model(args.model, ds)
    shape = models.input_shape(model)
    q = quantize.quantize(model, data.preprocess(ds.train_x, shape), labels=ds.train_y)
    x = data.preprocess(ds.test_x, shape)
    xq = verify.quantize_input(x, q.input)
    stages = {
        "keras float (batch 500)": lambda: model.predict(x, batch_size=500, verbose=0),
        "LiteRT int8 reference": lambda: verify.run_litert(q.tflite, xq, reference=True),
        "LiteRT int8 default": lambda: verify.run_litert(q.tflite, xq, reference=False),
        "TFLM int8": lambda: verify.run_tflm(q.tflite, xq),
        "TFLM arena search": lambda: verify.tflm_arena_bytes(q.tflite, xq[0]),
    }
    print(f"{args.model}: {len(x)} test images, median of {args.repeat} runs")
    print(f"{'stage':<26} {'median s':>9} {'us/image':>9}")
    for name, fn in stages.items():
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        print(f"{name:<26} {med:9.3f} {1e6 * med / len(x):9.1f}")


if __name__ == "__main__":
    main()
