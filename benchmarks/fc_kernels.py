"""The specialised FULLY_CONNECTED kernels against the generic one: instructions per inference on Cortex-M cores in
QEMU, bit-exact images on the host over the whole MNIST test set.

    TINYQ_MNIST=../shared/data/mnist python3 benchmarks/fc_kernels.py [--images 200] [--targets cortex-m4 ...]

Models: the demo MLP (784-100-100-10); a one-op FC of awkward sizes (333 -> 77); an untrained stand-in of the
640-input FC autoencoder's shapes (640-128x4-8-128x4-640, not on the Cortex-M0: its weights exceed the
micro:bit's 256 KB of flash); and a one-op FC 640 -> 64 whose weights are all +-127 once quantized, so that
256 times a high row's sum can leave int32 and stacking is refused (tq_fc_rows4). Each is emitted with --optimize
size (generic tq_fully_connected) and speed (the FC kernels the chooser picks, listed), cross-compiled at -O2 and
run in QEMU (-icount shift=0) on --images inputs per target; instructions per inference and per MAC of the whole
inference (the MLP's softmax and the harness included), and the inputs whose outputs equal TFLM's. Then the
MLP's and the 640 -> 64 FC's inputs through the host build of each (packed path at -O3, portable path), compared
with TFLM byte for byte, with the host wall time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import host_exact  # noqa: E402

from tinyq import data, emit, models, quantize, runtimes, verify  # noqa: E402
from tinyq.targets import cortex_m, registry  # noqa: E402
from tinyq.engine import read_graph  # noqa: E402
from tinyq.engine import Optimize, lower  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import standins  # noqa: E402

SYNTH_IN, SYNTH_OUT = 333, 77
WIDE_IN, WIDE_OUT = 640, 64
TARGETS = ("cortex-m4", "cortex-m3", "cortex-m0")
SMALL_FLASH = ("cortex-m0",)  # 256 KB: no room for the autoencoder's 260 KB of weights


@dataclass(frozen=True)
class Case:
    """One benchmarked model: its int8 model, raw int8 inputs, TFLM's outputs and labels for the harness."""

    name: str
    q: quantize.QuantizedModel
    inputs: np.ndarray
    tflm: np.ndarray
    labels: np.ndarray
    small_flash: bool = True  # fits the Cortex-M0's flash


def _one_dense(name: str, n_in: int, n_out: int, seed: int, plus_minus_one: bool = False):
    """One Dense layer, int8, with an asymmetric input range (non-zero input zero point); `plus_minus_one` sets
    every weight to +-1 (+-127 once quantized per channel)."""
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((n_in,))
    dense = tf.keras.layers.Dense(n_out)
    model = tf.keras.Model(inp, dense(inp), name=name)
    rng = np.random.default_rng(seed)
    if plus_minus_one:
        dense.kernel.assign(np.where(rng.random((n_in, n_out)) < 0.5, -1.0, 1.0).astype(np.float32))
        dense.bias.assign(rng.normal(0.0, 1.0, n_out).astype(np.float32))
    calib = rng.random((64, n_in), dtype=np.float32) * 2 - 0.5
    return quantize.quantize(model, calib, quantize.QuantizeConfig(64, input_range=(-0.5, 1.5)))


def _autoencoder():
    """The FC autoencoder stand-in's shapes with Keras's initial weights, calibrated on random features."""
    tf.keras.utils.set_random_seed(5)
    model = standins.fc_autoencoder(tf.keras)
    calib = np.random.default_rng(5).random((64, 640), dtype=np.float32) * 4 - 2
    return quantize.quantize(model, calib, quantize.QuantizeConfig(64, input_range=(-2.0, 2.0)))


def _random_case(name: str, q, n: int, seed: int, small_flash: bool = True) -> Case:
    x = np.random.default_rng(seed).integers(-128, 128, (n,) + tuple(q.input.shape[1:]), dtype=np.int8)
    return Case(name, q, x, runtimes.run_tflm(q.tflite, x).reshape(n, -1), np.arange(n) % 10, small_flash)


def fc_calls(q, optimize: Optimize) -> list[dict]:
    """The fields of the model's FULLY_CONNECTED calls, with the kernel each is lowered to."""
    return [dict(c.fields, kernel=c.kernel) for c in lower(read_graph(q.tflite), optimize).calls
            if c.op_name == "FULLY_CONNECTED"]


def fc_macs(q) -> int:
    """Multiply-accumulates of the model's FULLY_CONNECTED ops."""
    return sum(int(f["rows"]) * int(f["in_depth"]) * int(f["out_depth"]) for f in fc_calls(q, Optimize.SIZE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="inputs streamed through QEMU per build")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(registry.TARGETS))
    args = parser.parse_args()
    cortex_m.check_toolchain()
    ds = data.load_mnist()
    mlp = models.demo_model("mnist_mlp", ds)
    shape = models.input_shape(mlp)
    q_mlp = quantize.quantize(mlp, data.preprocess(ds.train_x, shape), labels=ds.train_y)
    x_all = verify.quantize_input(data.preprocess(ds.test_x, shape), q_mlp.input)
    tflm_all = runtimes.run_tflm(q_mlp.tflite, x_all).reshape(len(x_all), -1)
    n = args.images
    cases = [Case("mnist_mlp", q_mlp, x_all, tflm_all, ds.test_y),
             _random_case("fc_333_77", _one_dense("fc_333_77", SYNTH_IN, SYNTH_OUT, 3), n, 9),
             _random_case("fc_autoenc", _autoencoder(), n, 7, small_flash=False),
             _random_case("fc_640_64", _one_dense("fc_640_64", WIDE_IN, WIDE_OUT, 4, plus_minus_one=True), n, 8)]
    print(f"Cortex-M in QEMU (-icount shift=0, -O2), {n} inputs per row; MACs: the FULLY_CONNECTED ops'")
    print(f"{'target':<10} {'model':<11} {'optimize':<8} {'instr/inf':>10} {'MACs':>7} {'instr/MAC':>9} "
          f"{'bit-exact':>10}  FC kernels")
    with tempfile.TemporaryDirectory(prefix="tinyq_bench_fc_") as tmp:
        folders = {}
        for case in cases:
            r = verify.VerifyResult.tflm_only(case.q, case.inputs, case.tflm, case.labels)
            for optimize in (Optimize.SIZE, Optimize.SPEED):
                fw = Path(tmp) / case.name / optimize.value
                emit.emit(case.q, r, fw, name=case.name.replace("_", ""), golden_count=5, class_labels=None,
                          optimize=optimize)
                folders[case.name, optimize] = fw
        for target in args.targets:
            for case in cases:
                if target in SMALL_FLASH and not case.small_flash:
                    continue
                macs = fc_macs(case.q)
                for optimize in (Optimize.SIZE, Optimize.SPEED):
                    m = cortex_m.measure_cortex_m(folders[case.name, optimize],
                                                  Path(tmp) / case.name / f"{optimize.value}_{target}",
                                                  case.inputs[:n], case.tflm[:n], target=target)
                    kernels = sorted({f["kernel"] for f in fc_calls(case.q, optimize)})
                    print(f"{target:<10} {case.name:<11} {optimize.value:<8} {m.instructions_per_inference:>10.0f} "
                          f"{macs:>7} {m.instructions_per_inference / macs:>9.3f} {m.bitexact_images:>5}/{m.images:<4}"
                          f"  {','.join(kernels)}", flush=True)
        print("Host (gcc) against TFLM, every input of the case")
        for case in (cases[0], cases[3]):
            for optimize in (Optimize.SIZE, Optimize.SPEED):
                for opt in ("-O3", "-O3 -DTQ_PORTABLE"):
                    exact, secs = host_exact(folders[case.name, optimize],
                                             Path(tmp) / f"host_{case.name}_{optimize.value}_{len(opt)}",
                                             case.inputs, case.tflm, opt)
                    print(f"  {case.name:<11} {optimize.value:<6} {opt:<18} bit-exact {exact}/{len(case.inputs)}  "
                          f"{secs:.2f} s", flush=True)


if __name__ == "__main__":
    main()
