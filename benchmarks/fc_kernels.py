"""The specialised FULLY_CONNECTED kernel against the generic one: instructions on a Cortex-M4 in QEMU, bit-exact
images on the host over the whole MNIST test set.

    TINYQ_MNIST=../shared/data/mnist python3 benchmarks/fc_kernels.py [--images 200]

Rows: the demo MLP (784-100-100-10) and a synthetic one-op FC of awkward sizes (333 -> 77), each emitted with
--optimize size (generic tq_fully_connected) and speed (tq_fc_stacked4), cross-compiled at -O2, run in QEMU
(mps2-an386, -icount shift=0) on --images inputs; instructions per inference and per MAC of the whole inference
(the MLP's softmax and the harness included). Then the MLP's 10,000 test images through the host build of each
(packed path at -O3, portable path), compared with TFLM byte for byte, with the host wall time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import host_exact  # noqa: E402

from tinyq import cortex_m, data, emit, models, quantize, verify  # noqa: E402
from tinyq.graph import read_graph  # noqa: E402
from tinyq.lower import Optimize, lower  # noqa: E402

SYNTH_IN, SYNTH_OUT = 333, 77


def _synthetic():
    """One Dense layer of awkward sizes, int8, with an asymmetric input range (non-zero input zero point)."""
    tf.keras.utils.set_random_seed(3)
    inp = tf.keras.Input((SYNTH_IN,))
    model = tf.keras.Model(inp, tf.keras.layers.Dense(SYNTH_OUT)(inp), name="fc_333_77")
    calib = np.random.default_rng(3).random((64, SYNTH_IN), dtype=np.float32) * 2 - 0.5
    return quantize.quantize(model, calib, quantize.QuantizeConfig(64, input_range=(-0.5, 1.5)))


def fc_macs(q) -> int:
    """Multiply-accumulates of the model's FULLY_CONNECTED ops."""
    calls = [dict(c.fields) for c in lower(read_graph(q.tflite)).calls if c.op_name == "FULLY_CONNECTED"]
    return sum(int(f["rows"]) * int(f["in_depth"]) * int(f["out_depth"]) for f in calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="inputs streamed through QEMU per build")
    args = parser.parse_args()
    cortex_m.check_toolchain()
    ds = data.load_mnist()
    mlp = models.demo_model("mnist_mlp", ds)
    shape = models.input_shape(mlp)
    q_mlp = quantize.quantize(mlp, data.preprocess(ds.train_x, shape), labels=ds.train_y)
    x_all = verify.quantize_input(data.preprocess(ds.test_x, shape), q_mlp.input)
    tflm_all = verify.run_tflm(q_mlp.tflite, x_all).reshape(len(x_all), -1)
    q_syn = _synthetic()
    x_syn = np.random.default_rng(9).integers(-128, 128, (args.images, SYNTH_IN), dtype=np.int8)
    tflm_syn = verify.run_tflm(q_syn.tflite, x_syn).reshape(args.images, -1)
    cases = [("mnist_mlp", q_mlp, x_all, tflm_all, ds.test_y), ("fc_333_77", q_syn, x_syn, tflm_syn,
                                                                 np.arange(args.images) % 10)]
    print(f"Cortex-M4 (QEMU {cortex_m.machine('cortex-m4')}, -icount shift=0, -O2), {args.images} inputs per row")
    print(f"{'model':<10} {'optimize':<8} {'instr/inf':>10} {'MACs':>8} {'instr/MAC':>9} {'bit-exact':>10}")
    host = []
    with tempfile.TemporaryDirectory(prefix="tinyq_bench_fc_") as tmp:
        for name, q, x, tflm, labels in cases:
            r = verify.VerifyResult.tflm_only(q, x, tflm, labels)
            for optimize in (Optimize.SIZE, Optimize.SPEED):
                fw = Path(tmp) / name / optimize.value
                emit.emit(q, r, fw, name=name.replace("_", ""), golden_count=5, class_labels=None,
                          optimize=optimize)
                n = args.images
                m = cortex_m.measure_cortex_m(fw, Path(tmp) / name / f"{optimize.value}_m4", x[:n], tflm[:n])
                print(f"{name:<10} {optimize.value:<8} {m.instructions_per_inference:>10} {fc_macs(q):>8} "
                      f"{m.instructions_per_inference / fc_macs(q):>9.3f} {m.bitexact_images:>5}/{m.images:<4}")
                if name == "mnist_mlp":
                    host.append((optimize, fw))
        print(f"Host (gcc), mnist_mlp, all {len(x_all)} test images against TFLM")
        for optimize, fw in host:
            for opt in ("-O3", "-O3 -DTQ_PORTABLE"):
                exact, secs = host_exact(fw, Path(tmp) / f"host_{optimize.value}_{len(opt)}", x_all, tflm_all, opt)
                print(f"  {optimize.value:<6} {opt:<18} bit-exact {exact}/{len(x_all)}  {secs:.2f} s")


if __name__ == "__main__":
    main()
