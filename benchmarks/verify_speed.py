"""Times each verification stage over the full MNIST test set (medians of repeated runs), in this process
(as tinyq ran the native runtimes before crash isolation) and in the runtimes' worker processes (as it runs
them now), and the whole verify() with its worker start-ups.

    TINYQ_MNIST=../shared/data/mnist python3 benchmarks/verify_speed.py [--model mnist_cnn] [--repeat 3]
"""

from __future__ import annotations

import time

from common import demo_model_from_args, median_seconds

from tinyq import data, models, native, quantize, runtimes, verify


class InProcess:
    """Calls a runtime function directly: the cost of the runtimes without isolation."""

    timeout = None

    def call(self, _runtime, _step, fn, *args, **_limits):
        return fn(*args)


def main() -> None:
    args, ds, model = demo_model_from_args(__doc__)
    shape = models.input_shape(model)
    calib = data.preprocess(ds.train_x, shape)
    x = data.preprocess(ds.test_x, shape)
    with native.Workers() as workers:
        t = time.perf_counter()
        q = quantize.quantize(model, calib, labels=ds.train_y, workers=workers)
        first_quantize = time.perf_counter() - t
        xq = verify.quantize_input(x, q.input)
        samples = calib[list(q.calibration_indices)]
        inproc = InProcess()
        stages = {
            "LiteRT int8 reference": lambda w: runtimes.run_litert(q.tflite, xq, True, w),
            "LiteRT int8 default": lambda w: runtimes.run_litert(q.tflite, xq, False, w),
            "TFLM int8": lambda w: runtimes.run_tflm(q.tflite, xq, w),
            "TFLM arena search": lambda w: runtimes.tflm_arena_bytes(q.tflite, xq[0], w),
            "calibration+conversion": lambda w: (quantize._int8(quantize._batch1_converter(model, shape), samples,
                                                                q.config, args.model) if w is inproc
                                                 else quantize._isolated_int8(model, shape, samples, q.config, w)),
        }
        print(f"{args.model}: {len(x)} test images, median of {args.repeat} runs (workers already started)")
        print(f"{'stage':<24} {'in-process s':>12} {'worker s':>9} {'overhead s':>10}")
        for name, fn in stages.items():
            inp, _ = median_seconds(lambda: fn(inproc), args.repeat)
            iso, _ = median_seconds(lambda: fn(workers), args.repeat)
            print(f"{name:<24} {inp:12.3f} {iso:9.3f} {iso - inp:10.3f}")
    print(f"first quantize with a cold converter worker (TF import, model load): {first_quantize:.2f} s")
    plain, _ = median_seconds(lambda: verify.verify(model, q, ds.test_x, ds.test_y, workers=InProcess()),
                              args.repeat)
    whole, _ = median_seconds(lambda: verify.verify(model, q, ds.test_x, ds.test_y), args.repeat)
    print(f"verify() end to end: in-process {plain:.2f} s, isolated with fresh workers {whole:.2f} s "
          f"(overhead {whole - plain:+.2f} s, {100 * (whole - plain) / plain:+.0f} %)")


if __name__ == "__main__":
    main()
