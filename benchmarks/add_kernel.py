"""The specialised same-shape ADD (tq_add_lut) against the generic tq_add: instructions per ADD op and per
element on a Cortex-M core in QEMU, and what the tables cost in flash.

    python3 benchmarks/add_kernel.py [--images 20] [--targets cortex-m4,cortex-m3] [--no-resnet8]

Models: one ADD of a 16x16x32 activation and its ReLU (a table op with another scale and zero point), with and
without a fused ReLU, one of 15x15x7 (a tail), and the ResNet-8 stand-in of tests/standins.py (random weights:
the counts do not depend on them). Each is emitted with --optimize size (generic) and speed, built with
`make PROFILE=1` at -O2 and run in QEMU on --images random inputs checked against TFLM byte for byte; the per-op
figures are means over the images (one SysTick tick of resolution per mark). The plain speed build gives flash:
model constants (the tables included) and engine code.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tinyq import emit, quantize, runtimes, verify  # noqa: E402
from tinyq.targets import cortex_m  # noqa: E402
from tinyq.engine import read_graph  # noqa: E402
from tinyq.engine import Optimize  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import standins  # noqa: E402

L = tf.keras.layers


def one_add(shape, relu: bool, name: str):
    """x + ReLU(x): two operands of different scales and zero points, optionally a fused ReLU."""
    inp = tf.keras.Input(shape)
    y = L.Add()([inp, L.ReLU()(inp)])
    return tf.keras.Model(inp, L.ReLU()(y) if relu else y, name=name)


def measure(model, images: int, targets: list[str], tmp: Path) -> list[str]:
    """Rows per ADD op and target (size vs speed instructions, per element), then the model's totals and flash."""
    rng = np.random.default_rng(0)
    shape = tuple(model.input_shape[1:])
    calib = rng.random((16,) + shape, dtype=np.float32) * 2 - 0.7
    q = quantize.quantize(model, calib, quantize.QuantizeConfig(16, input_range=(-0.7, 1.3)))
    graph = read_graph(q.tflite)
    xs = rng.integers(-128, 128, (images,) + tuple(q.input.shape[1:]), dtype=np.int8)
    tflm = runtimes.run_tflm(q.tflite, xs).reshape(images, -1)
    r = verify.VerifyResult.tflm_only(q, xs, tflm, np.arange(images) % 2)
    rows = []
    for target in targets:
        prof, plain = {}, {}
        for opt in (Optimize.SIZE, Optimize.SPEED):
            fw = tmp / model.name / opt.value / "fw"
            if not fw.exists():
                emit.emit(q, r, fw, name="addbench", golden_count=1, class_labels=None, optimize=opt)
            prof[opt] = cortex_m.profile_ops(fw, tmp / model.name / opt.value / f"{target}_profile", q.graph,
                                             xs, tflm, target=target)
            plain[opt] = cortex_m.measure_cortex_m(fw, tmp / model.name / opt.value / target, xs, tflm,
                                                   target=target)
        exact = min(min(p.bitexact_images for p in prof.values()), min(m.bitexact_images for m in plain.values()))
        for a, b in zip(prof[Optimize.SIZE].ops, prof[Optimize.SPEED].ops):
            if a.op_name != "ADD":
                continue
            n = graph.tensors[graph.operators[a.op_index].outputs[0]].size
            rows.append(f"{model.name:<18} {target:<10} {a.op_index:>3} {n:>8} {b.kernel:<17} "
                        f"{a.instructions:>10.0f} {b.instructions:>9.0f} {a.instructions / b.instructions:>6.2f} "
                        f"{a.instructions / n:>8.1f} {b.instructions / n:>8.1f} {exact:>3}/{images:<3}")
        s, f = plain[Optimize.SIZE], plain[Optimize.SPEED]
        rows.append(f"{model.name:<18} {target:<10} whole inference {s.instructions_per_inference} -> "
                    f"{f.instructions_per_inference} instructions; flash constants {s.flash.model_constants} -> "
                    f"{f.flash.model_constants} B, engine code {s.flash.engine_code} -> {f.flash.engine_code} B")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20, help="inputs streamed through QEMU per build")
    parser.add_argument("--targets", default="cortex-m4,cortex-m3")
    parser.add_argument("--no-resnet8", action="store_true", help="only the one-op models")
    args = parser.parse_args()
    cortex_m.check_toolchain()
    tf.keras.utils.set_random_seed(0)
    cases = [one_add((16, 16, 32), False, "add_16x16x32"), one_add((16, 16, 32), True, "add_relu_16x16x32"),
             one_add((15, 15, 7), False, "add_15x15x7")]
    if not args.no_resnet8:
        cases.append(standins.resnet8(tf.keras))
    print(f"ADD ops, QEMU -icount shift=0, -O2, {args.images} random inputs per build (profiled, means per "
          f"inference); generic tq_add (size) vs specialised (speed)")
    head = (f"{'model':<18} {'target':<10} {'op':>3} {'elements':>8} {'kernel (speed)':<17} {'size':>10} "
            f"{'speed':>9} {'ratio':>6} {'size/el':>8} {'speed/el':>8} {'exact':>7}")
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory(prefix="tinyq_bench_add_") as tmp:
        for model in cases:
            for row in measure(model, args.images, args.targets.split(","), Path(tmp)):
                print(row, flush=True)


if __name__ == "__main__":
    main()
