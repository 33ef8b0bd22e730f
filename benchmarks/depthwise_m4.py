"""Depthwise kernels on a Cortex-M (default the M4, QEMU mps2-an386): instructions per inference with the generic kernel
(--optimize size) and the specialised ones (speed), on one-op depthwise models and the DS-CNN and
MobileNetV1-0.25 stand-ins of tests/standins.py (random weights: the instruction counts do not depend on them).

    python3 benchmarks/depthwise_m4.py [--inputs 40] [--big-inputs 8] [--target cortex-m3] [--one-op] [--per-op]

--per-op adds each depthwise op's instructions (a `make PROFILE=1` build, tinyq.targets.cortex_m.profile_ops; means over
the inputs counted, one SysTick tick of resolution per op).

Every figure is measured in this run; each build is first checked bit-exact against TFLM on the host over
--host-inputs random inputs and in QEMU on the inputs it counts.
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

from common import host_exact  # noqa: E402

from tinyq import emit, runtimes, verify  # noqa: E402
from tinyq.targets import cortex_m, firmware, registry  # noqa: E402
from tinyq.errors import NativeCrash  # noqa: E402
from tinyq.engine import op_macs, read_graph  # noqa: E402
from tinyq.engine import macs as count_macs  # noqa: E402
from tinyq.engine import Optimize  # noqa: E402
from tinyq.quantize import QuantizeConfig, quantize  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import standins  # noqa: E402


def one_op(stride: int, padding: str = "same"):
    """A single 3x3 depthwise layer on 24x24x32 with a fused ReLU."""
    inp = tf.keras.Input((24, 24, 32))
    out = tf.keras.layers.DepthwiseConv2D(3, strides=stride, padding=padding, activation="relu")(inp)
    return tf.keras.Model(inp, out, name=f"dw3x3_s{stride}_{padding}")


def measure(model, n_host: int, n_qemu: int, tmp: Path, target: str, per_op: bool) -> list[str]:
    rng = np.random.default_rng(0)
    shape = tuple(model.input_shape[1:])
    calib = rng.random((32,) + shape, dtype=np.float32) * 2 - 0.5
    q = quantize(model, calib, QuantizeConfig(32, input_range=(-0.5, 1.5)))
    g = read_graph(q.tflite)
    macs = count_macs(g)
    dw_macs = sum(op_macs(g, op) for op in g.operators if op.name == "DEPTHWISE_CONV_2D")
    xs = rng.integers(-128, 128, (n_host,) + tuple(q.input.shape[1:]), dtype=np.int8)
    reference = "TFLM"
    try:
        tflm = runtimes.run_tflm(q.tflite, xs).reshape(n_host, -1)
    except NativeCrash:  # the generic C kernels (checked against TFLM elsewhere) stand in as the reference
        reference = "generic C engine (TFLM crashed)"
        out_bytes = int(np.prod(q.output.shape[1:]))
        r0 = verify.VerifyResult.tflm_only(q, xs[:1], np.zeros((1, out_bytes), np.int8), np.zeros(1, int))
        fw = tmp / model.name / "reference" / "fw"
        emit.emit(q, r0, fw, name="dwbench", golden_count=1, optimize=Optimize.SIZE)
        exe = firmware.build_stub(fw, tmp / model.name / "reference" / "host", opt="-O2")
        tflm = firmware.run_batch(exe, xs, out_bytes)
    r = verify.VerifyResult.tflm_only(q, xs, tflm, np.arange(n_host) % 2)
    rows, counts = [], {}
    for opt in (Optimize.SIZE, Optimize.SPEED):
        fw = tmp / model.name / opt.name / "fw"
        emit.emit(q, r, fw, name="dwbench", golden_count=2, optimize=opt)
        host_ok, _ = host_exact(fw, tmp / model.name / opt.name / "host", xs, tflm)
        m = cortex_m.measure_cortex_m(fw, tmp / model.name / opt.name / target, xs[:n_qemu], tflm[:n_qemu],
                                      target=target)
        counts[opt] = m.instructions_per_inference
        rows.append(f"{model.name:<20} {opt.name.lower():<5} {m.instructions_per_inference:>11} {macs:>9} "
                    f"{m.instructions_per_inference / macs:>9.2f} {m.flash.model_constants:>7} "
                    f"{m.flash.engine_code:>6} {host_ok:>5}/{n_host:<4} {m.bitexact_images:>4}/{m.images:<4}")
        if per_op:
            prof = cortex_m.profile_ops(fw, tmp / model.name / opt.name / f"{target}-profile", q.graph, xs[:n_qemu],
                                        tflm[:n_qemu], target=target)
            for o in prof.ops:
                if o.op_name == "DEPTHWISE_CONV_2D":
                    rows.append(f"{'':<20} {opt.name.lower():<5} op {o.op_index:>2} {o.kernel:<20} {o.macs:>8} MACs "
                                f"{o.instructions:>10.0f} instr {o.instructions_per_mac:>6.2f}/MAC "
                                f"(profiled exact {prof.bitexact_images}/{prof.images})")
    saved = counts[Optimize.SIZE] - counts[Optimize.SPEED]
    rows.append(f"{'':<20} depthwise MACs {dw_macs}, instructions saved {saved}; exactness against {reference}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=40, help="inputs counted in QEMU (one-op models, DS-CNN)")
    parser.add_argument("--big-inputs", type=int, default=8, help="inputs counted in QEMU for MobileNetV1")
    parser.add_argument("--host-inputs", type=int, default=300, help="inputs checked bit-exact on the host")
    parser.add_argument("--target", default=registry.DEFAULT_TARGET, choices=list(registry.TARGETS))
    parser.add_argument("--one-op", action="store_true", help="only the one-op models")
    parser.add_argument("--per-op", action="store_true", help="also each depthwise op's instructions")
    parser.add_argument("--no-mobilenet", action="store_true", help="skip the MobileNetV1 stand-in (slow)")
    args = parser.parse_args()
    cortex_m.check_toolchain()
    tf.keras.utils.set_random_seed(0)
    cases = [(one_op(1), args.inputs), (one_op(2), args.inputs), (one_op(1, "valid"), args.inputs),
             (standins.ds_cnn(tf.keras), args.inputs), (standins.mobilenet_v1(tf.keras), args.big_inputs)]
    if args.one_op:
        cases = cases[:3]
    elif args.no_mobilenet:
        cases = cases[:4]
    print(f"{args.target} (QEMU {registry.get(args.target).qemu_machine}, -O2), generic (size) vs specialised (speed) "
          f"depthwise")
    head = (f"{'model':<20} {'opt':<5} {'instr/inf':>11} {'MACs':>9} {'instr/MAC':>9} {'consts':>7} {'code':>6} "
            f"{'host exact':>10} {'qemu exact':>9}")
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory(prefix="tinyq_bench_dw_") as tmp:
        for model, n in cases:
            for row in measure(model, args.host_inputs, n, Path(tmp), args.target, args.per_op):
                print(row, flush=True)


if __name__ == "__main__":
    main()
