"""The interpreter-free C engine: bit-exact with TFLM on the whole test set, sanitizer-clean, static plan,
and clear errors for what it does not run."""

import numpy as np
import pytest
import tensorflow as tf

from tinyq import emit, runtimes, verify
from tinyq.targets import firmware
from tinyq.engine import cengine, macs
from tinyq.render import make_banner
from tinyq.errors import InvalidModelError, UnsupportedOpError
from tinyq.engine import read_graph
from tinyq.engine import Optimize, lower
from tinyq.engine.fixedpoint import quantize_multiplier
from tinyq.engine import plan
from tinyq.quantize import QuantizeConfig, inspect_tflite, quantize


@pytest.mark.parametrize("real, expected", [
    (0.5, (1 << 30, 0)),
    (0.75, (1610612736, 0)),
    (1.0, (1 << 30, 1)),
    (3.0, (1610612736, 2)),
    (0.0, (0, 0)),
    (2.0 ** -40, (0, 0)),
    (1.0 - 2.0 ** -40, (1 << 30, 1)),
])
def test_quantize_multiplier(real, expected):
    assert quantize_multiplier(real) == expected


@pytest.mark.parametrize("real", [0.0123, 0.00390625 * 0.71, 1.7e-5, 0.999999, 123.25])
def test_quantize_multiplier_is_nearest_q31(real):
    q, shift = quantize_multiplier(real)
    assert (1 << 30) <= q < (1 << 31)
    assert abs(q * 2.0 ** (shift - 31) - real) <= 2.0 ** (shift - 32)


def _host_run(q, inputs, tmp_path, sanitize=False, name="m", tflm=None):
    """Emit with golden vectors from TFLM, build the stub on the host, push `inputs` through it."""
    tflm = runtimes.run_tflm(q.tflite, inputs) if tflm is None else tflm
    r = verify.VerifyResult.tflm_only(q, inputs, tflm, np.arange(len(inputs)) % 10)
    fw = tmp_path / f"{name}_fw"
    emit.emit(q, r, fw, name=name, golden_count=min(10, len(inputs)))
    exe = firmware.build_stub(fw, tmp_path / f"{name}_build", sanitize=sanitize)
    golden = firmware.run_golden(exe)
    assert golden.passed, golden.lines
    return firmware.run_batch(exe, inputs, tflm[0].size), tflm, exe


def _assert_bitexact(outs, tflm):
    same = np.all(outs == tflm.reshape(len(tflm), -1), axis=1)
    assert same.all(), f"{int((~same).sum())} of {len(same)} outputs differ, first at {np.flatnonzero(~same)[:5]}"


@pytest.mark.integration
@pytest.mark.parametrize("which", [pytest.param("cnn", marks=pytest.mark.slow),  # test_pipeline's demo checks it
                                   pytest.param("mlp", marks=pytest.mark.slow), "dsres"])
def test_demo_models_bitexact_with_tflm_on_full_test_set(which, request, tmp_path):
    """The stub executable (-O2, through files) and the engine library (-O3, in worker processes) give TFLM's
    bytes on every test image."""
    q = request.getfixturevalue(f"{which}_q")
    r = request.getfixturevalue(f"{which}_verify")
    assert len(r.int8_inputs) == 10000
    outs, _, exe = _host_run(q, r.int8_inputs, tmp_path, name=which, tflm=r.tflm_outputs)
    _assert_bitexact(outs, r.tflm_outputs)
    assert firmware.code_bytes(exe) > 0
    lib = firmware.build_library(tmp_path / f"{which}_fw", tmp_path / f"{which}_lib")
    lib_outs = firmware.run_library(lib, r.int8_inputs, outs.shape[1])
    assert lib_outs.tobytes() == outs.tobytes()
    _assert_bitexact(lib_outs, r.tflm_outputs)


@pytest.mark.integration
@pytest.mark.parametrize("which", ["cnn", "mlp", "dsres"])
@pytest.mark.slow
def test_demo_models_bitexact_under_address_and_ub_sanitizers(which, request, tmp_path):
    q = request.getfixturevalue(f"{which}_q")
    r = request.getfixturevalue(f"{which}_verify")
    outs, _, _ = _host_run(q, r.int8_inputs, tmp_path, sanitize=True, name=which, tflm=r.tflm_outputs)
    _assert_bitexact(outs, r.tflm_outputs)


def _synthetic(layers_fn, shape, seed):
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input(shape)
    model = tf.keras.Model(inp, layers_fn(inp), name=f"synthetic{seed}")
    rng = np.random.default_rng(seed)
    calib = rng.random((64,) + shape, dtype=np.float32)
    return quantize(model, calib, QuantizeConfig(64)), rng


def _conv_mix(x):
    L = tf.keras.layers
    a = L.Conv2D(6, 3, strides=2, padding="same", activation="relu")(x)
    b = L.Conv2D(6, 3, padding="valid", dilation_rate=2, activation="relu6")(x)
    b = L.MaxPooling2D(3, strides=1, padding="valid")(b)
    b = L.Conv2D(6, 1)(b)
    return L.Softmax()(L.Dense(7)(L.Flatten()(L.Add()([a, b]))))


def _depthwise_mix(x):
    L = tf.keras.layers
    y = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=3, activation="relu")(x)
    y = L.AveragePooling2D(3, strides=2, padding="same")(y)
    z = L.DepthwiseConv2D(2, padding="valid", dilation_rate=1)(y)
    z = L.AveragePooling2D(2, strides=1, padding="valid")(z)
    return L.Dense(5, activation="relu6")(L.Flatten()(z))


@pytest.mark.integration
@pytest.mark.parametrize("layers_fn, shape, seed", [(_conv_mix, (13, 13, 3), 1), (_depthwise_mix, (15, 11, 2), 2)])
def test_synthetic_op_mixes_bitexact(layers_fn, shape, seed, tmp_path):
    q, rng = _synthetic(layers_fn, shape, seed)
    xs = rng.integers(-128, 128, (300,) + q.input.shape[1:], dtype=np.int8)
    outs, tflm, _ = _host_run(q, xs, tmp_path)
    _assert_bitexact(outs, tflm)


def test_plan_reaches_the_lower_bound(cnn_q, mlp_q, dsres_q, cnn_verify):
    for q in (cnn_q, mlp_q, dsres_q):
        g = read_graph(q.tflite)
        p = plan(g, lower(g))
        assert p.arena_bytes == p.lower_bound_bytes > 0
    g = read_graph(cnn_q.tflite)
    assert plan(g, lower(g)).arena_bytes < cnn_verify.tflm_arena_bytes


def test_reshape_is_an_alias(mlp_q):
    g = read_graph(mlp_q.tflite)
    lowered = lower(g)
    assert "RESHAPE" not in [c.op_name for c in lowered.calls]
    p = plan(g, lowered)
    assert p.location(g.operators[0].outputs[0]).where.value == "input"
    # two 100-byte hidden layers, and the largest FC scratch (live only during its call, beside one of them)
    scratch = max(c.scratch_bytes for c in lowered.calls)
    assert p.arena_bytes == p.lower_bound_bytes == max(200, 100 + scratch)
    assert plan(g, lower(g, Optimize.SIZE)).arena_bytes == 200  # the generic kernels take no scratch


def test_placements_never_overlap_in_time_and_space(dsres_q):
    g = read_graph(dsres_q.tflite)
    ps = plan(g, lower(g)).placements
    for a in ps:
        for b in ps:
            if a is not b and a.first <= b.last and b.first <= a.last:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset


def test_unsupported_op_named_and_nothing_written(tmp_path, cnn_verify):
    L = tf.keras.layers
    inp = tf.keras.Input((28, 28))
    model = tf.keras.Model(inp, L.Dense(10)(L.GlobalMaxPooling1D(name="squash")(inp)), name="with_reduce_max")
    q = quantize(model, np.random.default_rng(0).random((32, 28, 28), dtype=np.float32), QuantizeConfig(32))
    with pytest.raises(UnsupportedOpError, match=r"op #\d+ REDUCE_MAX \(layer squash\): op not supported by the C engine"):
        emit.emit(q, cnn_verify, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_corrupt_and_truncated_tflite(cnn_q):
    with pytest.raises(InvalidModelError, match="not a .tflite flatbuffer"):
        read_graph(b"\0" * 64)
    with pytest.raises(InvalidModelError, match=r"invalid \.tflite: Model.*the 2000-byte buffer"):
        read_graph(cnn_q.tflite[:2000])


def test_float_model_rejected_naming_op(cnn_keras):
    from tinyq.quantize import convert_float

    g = read_graph(convert_float(cnn_keras))
    with pytest.raises(UnsupportedOpError, match=r"op #0 CONV_2D \(layer conv1\): input tensor .* is float32"):
        lower(g)


def test_engine_figures(cnn_q):
    e = cengine.generate(read_graph(cnn_q.tflite), "mnist", make_banner(cnn_q.name, cnn_q.sha256))
    assert [f.name for f in e.files] == ["mnist_model.h", "mnist_model.c", "tq_rounding.h"]
    weights = sum(t.nbytes for t in read_graph(cnn_q.tflite).tensors if t.is_constant and t.dtype == "int8")
    assert weights < e.const_bytes < weights + 4096
    assert "#define MNIST_ARENA_BYTES %d" % e.arena_bytes in e.files[0].text
    assert "float" not in e.files[1].text and "double" not in e.files[1].text


def test_graph_macs_and_layers(cnn_q):
    g = read_graph(cnn_q.tflite)
    assert macs(g) == 26 * 26 * 16 * 9 + 11 * 11 * 32 * 144 + 800 * 10
    assert [g.layer(op.outputs[0]) for op in g.operators][:3] == ["conv1", "pool1", "conv2"]


def test_inspect_then_lower_round_trip(cnn_q):
    assert inspect_tflite(cnn_q.tflite, "again").ops == cnn_q.ops
