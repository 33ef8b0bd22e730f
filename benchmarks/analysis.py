"""Times the quantization sweep of `tinyq analyze` / `tinyq demo`: each setting's conversion and its measurement
over the full MNIST test set, and the whole sweep (medians of repeated runs, one process).

    TINYQ_MNIST=../shared/data/mnist python3 benchmarks/analysis.py [--model mnist_cnn] [--repeat 3]
"""

from __future__ import annotations

from common import demo_model_from_args, median_seconds

from tinyq import analyze


def main() -> None:
    args, ds, model = demo_model_from_args(__doc__)

    def one(config):
        return lambda: analyze.sweep(model, ds.train_x, ds.train_y, ds.test_x, ds.test_y, (config,),
                                     comparisons=False)[0]

    print(f"{args.model}: {len(ds.test_x)} test images a setting, median of {args.repeat} runs")
    print(f"{'setting':<46} {'median s':>9} {'accuracy':>9} {'measured in':>12}")
    for config in analyze.default_sweep():
        seconds, row = median_seconds(one(config), args.repeat)
        acc = "-" if row.accuracy is None else f"{100 * row.accuracy:.2f} %"
        print(f"{row.label:<46} {seconds:9.2f} {acc:>9} {row.runtime:>12}")
    seconds, rows = median_seconds(
        lambda: analyze.sweep(model, ds.train_x, ds.train_y, ds.test_x, ds.test_y), args.repeat)
    print(f"whole sweep: {len(rows)} settings (with the 2 comparison models) in {seconds:.1f} s (median)")


if __name__ == "__main__":
    main()
