"""The specialised pooling kernels (tinyq/engine/ops/pool.py, firmware_stub/runtime/pool/) bit-exact with TFLM.

Two synthetic int8 models cover every branch of the choice and of the C: max and average windows of 2x2, 3x3 and
3x2, strides 1 and 2, SAME padding (windows cut at the borders, counts that vary) and VALID, the full 2x2 fast
path, 3, 6 and 8 channels (word tails and none), fused ReLU and ReLU6 clamps (the converter folds them into the
pool), and global average pooling over more than 256 pixels (16-bit lane sums widened chunk by chunk). Each runs
on a few hundred random inputs on the host (packed path, -DTQ_PORTABLE, ASan+UBSan) and on a few dozen in QEMU on a
DSP core (Cortex-M4) and one without (Cortex-M3).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from kernel_checks import HOST_BUILDS, QEMU_TARGETS, check_host, check_qemu

from tinyq import emit, runtimes, verify
from tinyq.engine import read_graph
from tinyq.engine.ops import pool
from tinyq.engine import Optimize, lower
from tinyq.quantize import QuantizeConfig, quantize

L = tf.keras.layers
SAMPLES = 300
POOLS = ("MAX_POOL_2D", "AVERAGE_POOL_2D")


def _local(x):
    x = L.MaxPooling2D(3, 1, "same")(x)                  # 3 channels: tail only; borders on every side
    x = L.Conv2D(6, 1, name="boost")(x)
    x = L.AveragePooling2D(3, 2, "same")(x)               # 6 channels; windows cut at the end
    x = L.ReLU(6.0)(x)                                    # fused: act_max < 127
    x = L.MaxPooling2D(2, 1, "valid")(x)                  # full 2x2 windows, stride 1
    x = L.ReLU()(x)
    x = L.Conv2D(8, 1)(x)
    x = L.MaxPooling2D(2, 2, "valid")(x)                  # 8 channels, 2x2 stride 2 (the demo CNN's pool)
    x = L.ReLU()(x)                                       # fused: act_min > -128
    x = L.AveragePooling2D(2, 1, "same")(x)               # counts 4, 2 and 1
    x = L.MaxPooling2D(3, 2, "same")(x)                   # 3x3 stride 2 SAME
    return L.AveragePooling2D((3, 2), (2, 1), "valid")(x)


def _global(x):
    x = L.MaxPooling2D(2, 1, "same")(x)
    return L.AveragePooling2D((20, 15))(x)                # 300 pixels, 5 channels


MODELS = {"local": ((40, 30, 3), _local), "global": ((20, 15, 5), _global)}


def _quantized(which):
    shape, body = MODELS[which]
    tf.keras.utils.set_random_seed(7)
    inp = tf.keras.Input(shape)
    model = tf.keras.Model(inp, body(inp), name=f"pool_{which}")
    for layer in model.layers:
        if layer.name == "boost":  # outputs past 6, so the fused ReLU6 clamps
            layer.kernel.assign(layer.kernel * 12.0)
    rng = np.random.default_rng(7)
    calib = rng.random((48,) + shape, dtype=np.float32) * 2 - 0.7
    return quantize(model, calib, QuantizeConfig(48, input_range=(-0.7, 1.3)))


@pytest.fixture(scope="module", params=sorted(MODELS))
def pool_case(request, tmp_path_factory):
    q = _quantized(request.param)
    xs = np.random.default_rng(5).integers(-128, 128, (SAMPLES,) + q.input.shape[1:], dtype=np.int8)
    tflm = runtimes.run_tflm(q.tflite, xs)
    r = verify.VerifyResult.tflm_only(q, xs, tflm, np.arange(len(xs)) % 10)
    folder = tmp_path_factory.mktemp(f"pool_{request.param}") / "fw"
    emit.emit(q, r, folder, name=f"pool_{request.param}", golden_count=5, class_labels=None)
    return request.param, q, folder, xs, tflm.reshape(len(xs), -1)


def _pool_calls(q, optimize):
    return [c for c in lower(read_graph(q.tflite), optimize).calls if c.op_name in POOLS]


def test_choice_covers_every_branch(pool_case):
    which, q, *_ = pool_case
    speed = _pool_calls(q, Optimize.SPEED)
    assert {c.kernel for c in _pool_calls(q, Optimize.SIZE)} <= {"tq_max_pool", "tq_average_pool"}
    for c in speed:  # the variant keeps the generic call's fields and tensors
        assert c.params_type == "tq_pool_params" and not c.arrays and c.scratch_bytes == 0
    f = [{k: int(v) for k, v in c.fields} for c in speed]
    if which == "global":
        assert [c.kernel for c in speed] == ["tq_max_pool_c4", "tq_global_average_pool"]
        assert f[1]["in_h"] * f[1]["in_w"] > pool.LANE_TAPS and f[1]["channels"] % 4
        return
    assert [c.kernel for c in speed] == ["tq_max_pool_c4", "tq_average_pool_c4", "tq_max_pool_c4",
                                         "tq_max_pool_c4", "tq_average_pool_c4", "tq_max_pool_c4",
                                         "tq_average_pool_c4"]
    assert {g["channels"] for g in f} == {3, 6, 8}
    assert any(g["act_max"] < 127 for g in f) and any(g["act_min"] > -128 for g in f)
    assert any(g["pad_h"] > 0 for g in f) and {g["stride_h"] for g in f} == {1, 2}


def test_choice_rules():
    base = dict(in_h=30, in_w=30, channels=4, out_h=1, out_w=1, k_h=30, k_w=30, stride_h=1, stride_w=1, pad_h=0,
                pad_w=0, act_min=-128, act_max=127)
    assert pool.choose_average(base, {}, "op0").kernel == "tq_global_average_pool"
    assert pool.choose_max(base, {}, "op0").kernel == "tq_max_pool_c4"
    local = dict(base, in_h=40)  # one 30x30 window that is not the whole input: 900 taps overflow 16-bit lanes
    assert pool.choose_average(local, {}, "op0") is None
    assert pool.choose_average(dict(local, k_h=16, k_w=16), {}, "op0").kernel == "tq_average_pool_c4"
    assert pool.choose_average(dict(local, k_h=16, k_w=17), {}, "op0") is None


@pytest.mark.integration
@HOST_BUILDS
def test_pool_bitexact_on_host(pool_case, opt, sanitize, tmp_path):
    _, _, folder, xs, tflm = pool_case
    check_host(folder, xs, tflm, tmp_path / "build", opt, sanitize)


@pytest.mark.integration
@pytest.mark.qemu
@QEMU_TARGETS
def test_pool_bitexact_in_qemu(pool_case, target, tmp_path):
    _, _, folder, xs, tflm = pool_case
    check_qemu(folder, xs, tflm, tmp_path / "build", target)
