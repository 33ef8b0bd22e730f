"""Times each verification stage over the full MNIST test set (medians of repeated runs, one process).

    TINYQ_MNIST=../shared/data/mnist python3 benchmarks/verify_speed.py [--model mnist_cnn] [--repeat 3]
"""

from __future__ import annotations

from common import demo_model_from_args, median_seconds

from tinyq import data, models, quantize, verify


def main() -> None:
    args, ds, model = demo_model_from_args(__doc__)
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
        med, _ = median_seconds(fn, args.repeat)
        print(f"{name:<26} {med:9.3f} {1e6 * med / len(x):9.1f}")


if __name__ == "__main__":
    main()
