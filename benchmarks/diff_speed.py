"""Times `tinyq diff` over the full MNIST test set against the verification `tinyq convert` runs (Keras float,
LiteRT reference and default kernels, TFLM, arena search), medians of repeated runs, one process.

    TINYQ_MNIST=../shared/data/mnist python3 benchmarks/diff_speed.py [--model mnist_cnn] [--repeat 3]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import demo_model_from_args, median_seconds

from tinyq import data, emit, models, quantize, verify
from tinyq.diff import DiffConfig, diff_model, folder_inputs


def main() -> None:
    args, ds, model = demo_model_from_args(__doc__)
    q = quantize.quantize(model, data.preprocess(ds.train_x, models.input_shape(model)), labels=ds.train_y)
    checked = verify.verify(model, q, ds.test_x, ds.test_y)
    with tempfile.TemporaryDirectory(prefix="tinyq_diff_speed_") as tmp:
        fw = Path(tmp) / "firmware"
        emit.emit(q, checked, fw)
        inputs, idx = folder_inputs(q, None, None)
        config = DiffConfig()
        steps = {
            "verify (as in convert)": lambda: verify.verify(model, q, ds.test_x, ds.test_y),
            "tinyq diff, 4 runtimes": lambda: diff_model(q.tflite, inputs, idx, fw, config),
        }
        print(f"{args.model}: {len(idx)} test images, median of {args.repeat} runs")
        for name, fn in steps.items():
            med, result = median_seconds(fn, args.repeat)
            print(f"{name:<26} {med:8.2f} s")
        print(f"pairs: {', '.join(f'{a}/{b} {p.identical}' for p in result.pairs for a, b in [p.pair])}")


if __name__ == "__main__":
    main()
