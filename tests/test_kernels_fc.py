"""The specialised FULLY_CONNECTED kernels (tq_fc_stacked4, and tq_fc_rows4 where stacking is inexact) against
TFLM, byte for byte.

One synthetic Dense chain per kernel covers its branches: in_depth % 4 of 0..3 (the widening tail, the ARMv6-M
head columns) and % 8 (zero padding), out_depth % 4 of 0..3 (a padded high row, the last pair with and without
one), 6 or more grouped pairs (the ARMv6-M passes of three pairs), more than one input row, fused ReLU, non-zero
input zero points (folded into the bias). The tq_fc_rows4 chain's weights defeat stacking both ways: -128 high
weights over negative low ones, and a-row sums past 2^23. Each runs on a few hundred random int8 inputs on the host
(packed path through the plain-C intrinsics, the portable path, sanitizers) and on a few dozen in QEMU on a
Cortex-M4 (DSP), a Cortex-M3 and a Cortex-M0 (no DSP, its own assembly). The layouts and the generation-time checks
of exactness are tested directly (the fused requantization itself is checked against the reference by
tests/test_kernels_conv.py).
"""

from __future__ import annotations


import numpy as np
import pytest
import tensorflow as tf
from kernel_checks import HOST_BUILDS, QEMU_SAMPLES, check_host, check_qemu

from tinyq import emit, runtimes, verify
from tinyq.engine import read_graph
from tinyq.engine.ops import fully_connected as fc
from tinyq.engine.ops.base import ConstArray
from tinyq.engine import Optimize, lower
from tinyq.quantize import QuantizeConfig, inspect_tflite, quantize

L = tf.keras.layers
SAMPLES = 300
SHAPE = (3, 13)
# (in_depth, out_depth) of every FULLY_CONNECTED the chain must lower to: every K tail and every row tail.
FC_SHAPES = [(13, 7), (7, 8), (24, 14), (14, 11), (11, 6), (6, 5), (5, 4), (4, 3), (3, 10), (10, 1)]


def _chain(x):
    y = L.Dense(7, activation="relu")(x)  # rows 3
    y = L.Flatten()(L.Dense(8)(y))
    for units in (14, 11, 6, 5, 4, 3, 10, 1):
        y = L.Dense(units, activation="relu" if units == 5 else None)(y)
    return y


@pytest.fixture(scope="module")
def fc_model():
    tf.keras.utils.set_random_seed(11)
    inp = tf.keras.Input(SHAPE)
    model = tf.keras.Model(inp, _chain(inp), name="fc_chain")
    rng = np.random.default_rng(11)
    for v in model.weights:
        if v.path.endswith("bias"):
            v.assign(rng.normal(0.0, 0.3, v.shape).astype(np.float32))
    calib = rng.random((64,) + SHAPE, dtype=np.float32) * 2 - 0.7  # asymmetric: non-zero input zero points
    return quantize(model, calib, QuantizeConfig(64, input_range=(-0.7, 1.3)))


def _emitted(q, name: str, seed: int, tmp_path_factory):
    """The model's generated folder (speed), SAMPLES random int8 inputs and TFLM's outputs for them."""
    xs = np.random.default_rng(seed).integers(-128, 128, (SAMPLES,) + q.input.shape[1:], dtype=np.int8)
    tflm = runtimes.run_tflm(q.tflite, xs)
    r = verify.VerifyResult.tflm_only(q, xs, tflm, np.arange(len(xs)) % 10)
    folder = tmp_path_factory.mktemp(name) / "fw"
    emit.emit(q, r, folder, name=name, golden_count=5, class_labels=None)
    return folder, xs, tflm.reshape(len(xs), -1)


@pytest.fixture(scope="module")
def fc_case(fc_model, tmp_path_factory):
    return _emitted(fc_model, "fc_chain", 5, tmp_path_factory)


# The unstacked kernel's chain: each FULLY_CONNECTED's weights defeat stacking, the 603-wide one through its a-rows'
# sums (every weight +-127 after quantization), the others through -128 high weights over negative low ones
# written into the converted model. Every K tail (% 4, % 8) and row tail (% 4), two input rows.
ROWS_SHAPES = [(13, 7), (14, 603), (603, 9), (9, 8), (8, 6), (6, 5), (5, 3), (3, 4)]
ROWS_WIDE = 2  # index in ROWS_SHAPES of the layer rejected by its sums


def _rows_chain(x):
    y = L.Flatten()(L.Dense(7, activation="relu")(x))
    y = L.Dense(603)(y)
    for units in (9, 8, 6, 5, 3, 4):
        y = L.Dense(units, activation="relu" if units == 5 else None)(y)
    return y


def _defeat_stacking(q):
    """The model with -128 in the high row of some pairs over negative low weights in every FULLY_CONNECTED but the
    wide one, patched into the flatbuffer's weight bytes (TFLite's quantizer itself keeps weights in [-127, 127])."""
    g = read_graph(q.tflite)
    data = bytearray(q.tflite)
    fcs = [op for op in g.operators if op.name == "FULLY_CONNECTED"]
    for i, op in enumerate(fcs):
        w = g.tensors[op.inputs[1]].data
        if i == ROWS_WIDE or w.shape[0] < 2:
            continue
        new = w.copy()
        new[1::2, ::3] = -128
        new[0:2 * (len(w) // 2):2, ::3] = -np.abs(new[0:2 * (len(w) // 2):2, ::3]) - 1
        at = bytes(data).find(w.tobytes())
        assert at >= 0 and bytes(data).find(w.tobytes(), at + 1) < 0
        data[at:at + w.nbytes] = new.tobytes()
    return inspect_tflite(bytes(data), q.name, q.config)


@pytest.fixture(scope="module")
def rows_model():
    tf.keras.utils.set_random_seed(13)
    inp = tf.keras.Input((2, 13))
    model = tf.keras.Model(inp, _rows_chain(inp), name="fc_rows")
    rng = np.random.default_rng(13)
    for v in model.weights:
        if v.path.endswith("bias"):
            v.assign(rng.normal(0.0, 0.3, v.shape).astype(np.float32))
    wide = model.layers[4]  # Dense(9) on the 603-wide layer: every weight +-1, +-127 once quantized
    wide.kernel.assign(np.where(rng.random(wide.kernel.shape) < 0.5, -1.0, 1.0).astype(np.float32))
    calib = rng.random((64, 2, 13), dtype=np.float32) * 2 - 0.7
    return _defeat_stacking(quantize(model, calib, QuantizeConfig(64, input_range=(-0.7, 1.3))))


@pytest.fixture(scope="module")
def rows_case(rows_model, tmp_path_factory):
    return _emitted(rows_model, "fc_rows", 6, tmp_path_factory)


def _fc_calls(q, optimize):
    return [c for c in lower(read_graph(q.tflite), optimize).calls if c.op_name == "FULLY_CONNECTED"]


def test_speed_picks_stacked_and_size_keeps_generic(fc_model):
    speed = _fc_calls(fc_model, Optimize.SPEED)
    shapes = [(int(dict(c.fields)["in_depth"]), int(dict(c.fields)["out_depth"])) for c in speed]
    assert shapes == FC_SHAPES
    assert dict(speed[0].fields)["rows"] == "3"
    assert {c.kernel for c in speed} == {"tq_fc_stacked4"}
    assert {c.kernel for c in _fc_calls(fc_model, Optimize.SIZE)} == {"tq_fully_connected"}


def test_speed_picks_rows_where_stacking_fails(rows_model):
    speed = _fc_calls(rows_model, Optimize.SPEED)
    shapes = [(int(dict(c.fields)["in_depth"]), int(dict(c.fields)["out_depth"])) for c in speed]
    assert shapes == ROWS_SHAPES
    assert dict(speed[0].fields)["rows"] == "2"
    assert {c.kernel for c in speed} == {"tq_fc_rows4"}
    assert {c.kernel for c in _fc_calls(rows_model, Optimize.SIZE)} == {"tq_fully_connected"}
    weights = [read_graph(rows_model.tflite).tensors[op.inputs[1]].data
               for op in read_graph(rows_model.tflite).operators if op.name == "FULLY_CONNECTED"]
    assert all((w == -128).any() for i, w in enumerate(weights) if i != ROWS_WIDE)
    assert (np.abs(weights[ROWS_WIDE]) == 127).all()


def test_stacked_layout_in_kernel_order():
    w = np.arange(-35, 35).reshape(10, 7)  # 5 pairs (two groups and a last pair), 7 columns padded to 8
    half = fc.stacked_halfwords(w)
    assert half.shape == (5, 8)
    assert half[1, 2] == 256 * w[3, 2] + w[2, 2] and (half[:, 7] == 0).all()
    words = fc.stack(half).view("<i2").reshape(-1, 2)  # each word's two lanes
    assert len(words) == 5 * 8 // 2
    # group 0 (pairs 0, 1), columns 0-3: pair 0's lanes (c0, c2), (c1, c3), then pair 1's
    assert [list(v) for v in words[:4]] == [[half[0, 0], half[0, 2]], [half[0, 1], half[0, 3]],
                                           [half[1, 0], half[1, 2]], [half[1, 1], half[1, 3]]]
    assert [list(v) for v in words[-2:]] == [[half[4, 4], half[4, 6]], [half[4, 5], half[4, 7]]]


def _variant(w, shift=-1):
    out_depth, in_depth = w.shape
    fields = dict(rows=1, in_depth=in_depth, out_depth=out_depth, output_offset=0, act_min=-128, act_max=127)
    ones = np.ones(out_depth)
    arrays = dict(weights=ConstArray("w", "int8_t", w.astype(np.int8).reshape(-1)),
                  bias=ConstArray("b", "int32_t", np.zeros(out_depth, np.int32)),
                  mult=ConstArray("m", "int32_t", (ones * 2**30).astype(np.int32)),
                  shift=ConstArray("s", "int8_t", (shift * ones).astype(np.int8)))
    return fc.choose(fields, arrays, "fc")


def test_stacking_rejected_where_inexact():
    ok = np.full((2, 516), 127)
    ok[1, -1] = 126  # high row's sum at most 127 * 127 * 515 + 127 * 126 < 2^23 (and > -2^23)
    assert fc.stacked_halfwords(ok) is not None and _variant(ok).kernel == "tq_fc_stacked4"
    big = np.full((2, 517), 127)  # -128 * 127 * 517 < -2^23: 256 times the high row's lowest sum leaves int32
    assert fc.stacked_halfwords(big) is None
    edge = np.zeros((2, 4))
    edge[1, 0], edge[0, 0] = -128, -1  # lane 256 * -128 - 1 is outside int16
    assert fc.stacked_halfwords(edge) is None
    edge[0, 0] = 0
    assert fc.stacked_halfwords(edge) is not None
    assert _variant(edge, shift=0) is None  # no right shift: not the fused requantization's form


def test_unstackable_weights_take_the_rows_kernel():
    w = np.arange(-60, 45).reshape(7, 15)
    w[1, 3], w[0, 3] = -128, -2  # one lane outside int16: no stacking
    v = _variant(w)
    assert v.kernel == "tq_fc_rows4" and dict(v.fields)["depth"] == 16 and v.scratch_bytes == 32
    words = v.arrays[0].values
    assert words.dtype == np.int32 and v.counts[0] == len(words) == 7 * 16 // 4
    rows = words.astype("<i4").view(np.int8).reshape(7, 16)  # little-endian bytes: row-major, zero-padded
    assert (rows[:, :15] == w).all() and (rows[:, 15] == 0).all()
    assert _variant(w, shift=0) is None


@pytest.mark.integration
@HOST_BUILDS
def test_fc_bitexact_on_host(fc_case, opt, sanitize, tmp_path):
    folder, xs, tflm = fc_case
    check_host(folder, xs, tflm, tmp_path / "build", opt, sanitize)


def _qemu_samples(target: str) -> int:
    """Every input on the Cortex-M0, whose assembly (passes, requantization) the host builds do not run."""
    return SAMPLES if target == "cortex-m0" else QEMU_SAMPLES


@pytest.mark.integration
@pytest.mark.qemu
@pytest.mark.parametrize("target", ["cortex-m4", pytest.param("cortex-m3", marks=pytest.mark.slow),
                                    "cortex-m0"])  # DSP, ARMv7-M, ARMv6-M
def test_fc_bitexact_in_qemu(fc_case, target, tmp_path):
    folder, xs, tflm = fc_case
    check_qemu(folder, xs, tflm, tmp_path / "build", target, _qemu_samples(target))


@pytest.mark.integration
@HOST_BUILDS
def test_fc_rows_bitexact_on_host(rows_case, opt, sanitize, tmp_path):
    folder, xs, tflm = rows_case
    check_host(folder, xs, tflm, tmp_path / "build", opt, sanitize)


@pytest.mark.integration
@pytest.mark.qemu
@pytest.mark.parametrize("target", ["cortex-m4", pytest.param("cortex-m3", marks=pytest.mark.slow), "cortex-m0"])
def test_fc_rows_bitexact_in_qemu(rows_case, target, tmp_path):
    folder, xs, tflm = rows_case
    check_qemu(folder, xs, tflm, tmp_path / "build", target, _qemu_samples(target))
