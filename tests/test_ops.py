"""The C engine's op families beyond the core set, each bit-exact with TFLM on synthetic graphs.

Each family is one small Keras model, converted to full-integer int8, built once on the host and run on a few
hundred random int8 inputs; every output byte must equal the TFLM Python runtime's. The op list is asserted too,
so a converter that stopped emitting an op fails here instead of passing without exercising it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf
from kernel_checks import convert_layers

from tinyq import emit, runtimes, verify
from tinyq.targets import cortex_m, firmware
from tinyq.errors import UnsupportedOpError
from tinyq.engine import lut, op_macs, read_graph
from tinyq.engine.graph import Activation, ActivationOptions, Graph, NoOptions, Operator, Tensor
from tinyq.engine.schema import BuiltinOperator
from tinyq.engine import lower, supported_ops
from tinyq.quantize import QuantizeConfig, quantize

L = tf.keras.layers
SAMPLES = 300


class _AlignedNearest(L.Layer):
    """Nearest-neighbour resize with align_corners, which Keras layers cannot ask for."""

    def call(self, x):
        return tf.compat.v1.image.resize_nearest_neighbor(x, (7, 11), align_corners=True)


class _PadWith(L.Layer):
    """PADV2: padding with a value other than zero."""

    def call(self, x):
        return tf.pad(x, [[0, 0], [2, 0], [1, 1], [0, 1]], constant_values=0.25)


class _Clip(L.Layer):
    """MAXIMUM and MINIMUM against constants."""

    def call(self, x):
        return tf.minimum(tf.maximum(x, -0.3), 0.4)


class _ExpandSqueeze(L.Layer):
    def call(self, x):
        return tf.squeeze(tf.expand_dims(x, 1), 1)


def _activations(x):
    y = L.Dense(8)(x)
    narrow = L.Activation("hard_swish")(L.Rescaling(0.5)(x))  # hard swish's right-shift branch
    relus = L.Add()([L.LeakyReLU(0.3)(x), L.ReLU()(x), narrow])
    relu6s = L.Add()([L.Dense(8)(L.ReLU(6.0)(x)), L.ReLU(6.0)(L.Rescaling(8.0)(x))])  # MUL with RELU6 fused
    big = L.Rescaling(60.0)(x)  # wide input scales: saturated sigmoid/tanh, hard swish's left-shift branch
    wide = L.Add()([L.Activation("sigmoid")(big), L.Activation("tanh")(big), L.Activation("hard_swish")(big)])
    outs = [L.Activation("sigmoid")(y), L.Activation("tanh")(y), L.Activation("hard_swish")(y),
            L.LeakyReLU(0.2)(y), wide, L.Activation("sigmoid")(x), L.Activation("tanh")(x),
            L.Activation("hard_swish")(x), relus, relu6s]
    return L.Concatenate()(outs)  # TFLM concatenates at most 10 inputs


def _binary(x):
    a, b = L.Conv2D(6, 1)(x), L.Conv2D(6, 1)(x)
    s = L.GlobalAveragePooling2D(keepdims=True)(a)  # squeeze-and-excite style broadcasts
    scaled = L.Rescaling(0.7, offset=-0.2)(b)  # MUL and ADD with constants
    return L.Concatenate()([L.Multiply()([a, b]), L.Subtract()([a, b]), L.Maximum()([a, b]), L.Minimum()([a, b]),
                            L.Multiply()([b, s]), L.Add()([a, s]), L.Subtract()([s, b]), L.Add()([a, b]), scaled,
                            _Clip()(a)])


def _shape(x):
    y = L.ZeroPadding2D(((1, 2), (0, 1)))(x)
    y = L.Conv2D(4, 3, activation="relu")(y)
    y = L.Resizing(10, 9, interpolation="nearest")(y)
    y = L.Conv2DTranspose(5, 4, strides=2, padding="same")(y)  # leading padding 1
    y = L.Conv2DTranspose(3, 2, strides=1, padding="valid", activation="relu")(y)
    z = _AlignedNearest()(_PadWith()(L.Conv2DTranspose(2, 3, padding="same")(x)))
    return L.Concatenate()([L.Dense(4)(L.GlobalAveragePooling2D()(y)), L.Flatten()(z)])


def _conv1d(x):
    y = L.Conv1D(8, 3, padding="same", activation="relu")(x)
    y = _ExpandSqueeze()(L.Conv1D(6, 5, strides=2)(y))
    y = L.Conv1D(4, 3, dilation_rate=2, padding="causal")(y)
    return L.Dense(3)(L.GlobalAveragePooling1D()(y))


@dataclass(frozen=True)
class Family:
    name: str
    layers: object
    shape: tuple[int, ...]
    ops: frozenset[str]  # ops the converted graph must contain


FAMILIES = (
    Family("activations", _activations, (4, 8),
           frozenset({"LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "QUANTIZE", "RELU", "RELU6", "CONCATENATION"})),
    Family("binary", _binary, (4, 5, 3), frozenset({"MUL", "SUB", "ADD", "MAXIMUM", "MINIMUM", "MEAN"})),
    Family("shape", _shape, (6, 5, 2),
           frozenset({"PAD", "PADV2", "RESIZE_NEAREST_NEIGHBOR", "TRANSPOSE_CONV", "MEAN", "CONCATENATION"})),
    Family("conv1d", _conv1d, (20, 3), frozenset({"CONV_2D", "MEAN"})),
)


def _convert(family: Family, seed: int):
    return convert_layers(family.name, family.layers, family.shape, seed)


@pytest.fixture(scope="module")
def converted():
    return {f.name: _convert(f, seed) for seed, f in enumerate(FAMILIES, start=1)}


@dataclass(frozen=True)
class Emitted:
    """One family's generated folder, its random int8 inputs and TFLM's outputs for them."""

    folder: object
    inputs: np.ndarray
    tflm: np.ndarray


@pytest.fixture(scope="module")
def emitted(converted, tmp_path_factory):
    out = {}
    for family in FAMILIES:
        q = converted[family.name]
        ops = {op.name for op in read_graph(q.tflite).operators}
        assert family.ops <= ops, f"converter no longer emits {sorted(family.ops - ops)}"
        xs = np.random.default_rng(7).integers(-128, 128, (SAMPLES,) + q.input.shape[1:], dtype=np.int8)
        tflm = runtimes.run_tflm(q.tflite, xs)
        r = verify.VerifyResult.tflm_only(q, xs, tflm, np.arange(len(xs)) % 10)
        folder = tmp_path_factory.mktemp(family.name) / "fw"
        emit.emit(q, r, folder, name=family.name, golden_count=5)
        out[family.name] = Emitted(folder, xs, tflm.reshape(len(xs), -1))
    return out


def _assert_bitexact(outs: np.ndarray, tflm: np.ndarray) -> None:
    same = np.all(outs == tflm, axis=1)
    assert same.all(), f"{int((~same).sum())} of {len(same)} outputs differ, first at {np.flatnonzero(~same)[:5]}"


@pytest.mark.integration
@pytest.mark.parametrize("sanitize", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["O2", "asan-ubsan"])
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_family_bitexact_with_tflm_on_host(family, sanitize, emitted, tmp_path):
    e = emitted[family.name]
    exe = firmware.build_stub(e.folder, tmp_path / "build", sanitize=sanitize)
    assert firmware.run_golden(exe).passed
    _assert_bitexact(firmware.run_batch(exe, e.inputs, e.tflm.shape[1]), e.tflm)


@pytest.mark.integration
@pytest.mark.qemu
def test_families_bitexact_on_cortex_m4(emitted, tmp_path):
    for name, e in emitted.items():
        elf = cortex_m.build_cortex_m(e.folder, tmp_path / name)
        _assert_bitexact(cortex_m.run_qemu_batch(elf, e.inputs[:40], e.tflm.shape[1]), e.tflm[:40])


def test_conv1d_is_conv2d_between_aliases(converted):
    g = read_graph(converted["conv1d"].tflite)
    calls = lower(g).calls
    assert [c.op_name for c in calls] == ["CONV_2D", "CONV_2D", "PAD", "CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert len(g.operators) > len(calls)  # the reshapes, squeezes and expand_dims cost nothing


def test_supported_ops_and_transpose_conv_macs(converted):
    ops = supported_ops()
    assert {"MEAN", "CONCATENATION", "PAD", "PADV2", "MUL", "SUB", "LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU",
            "QUANTIZE", "SQUEEZE", "EXPAND_DIMS", "RESIZE_NEAREST_NEIGHBOR", "TRANSPOSE_CONV", "MAXIMUM",
            "MINIMUM", "CONV_2D", "RESHAPE"} <= set(ops)
    g = read_graph(converted["shape"].tflite)
    tconv = [op for op in g.operators if op.name == "TRANSPOSE_CONV"]
    assert len(tconv) == 3
    for op in tconv:
        w, x = g.tensors[op.inputs[1]], g.tensors[op.inputs[2]]
        out_c, k_h, k_w, in_c = w.shape
        assert op_macs(g, op) == x.size // in_c * k_h * k_w * in_c * out_c > 0


def test_activation_tables_are_precomputed(converted):
    g = read_graph(converted["activations"].tflite)
    tables = [c for c in lower(g).calls if c.kernel == "tq_lut"]
    assert {c.op_name for c in tables} >= {"LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "QUANTIZE"}
    assert all(a.values.shape == (256,) and a.values.dtype == np.int8 for c in tables for a in c.arrays)


def test_lut_shapes_of_known_functions():
    x = np.arange(-128, 128)
    sig = lut.logistic(8.0 / 128, 0).astype(int)  # input covers [-8, 8)
    assert np.all(np.diff(sig) >= 0) and sig[0] == -128 and sig[-1] == 127 and sig[128] == 0  # 0.5 -> 0
    th = lut.tanh(1.0 / 128, 0).astype(int)  # input covers [-1, 1): no saturation, an odd function
    assert np.all(np.diff(th) >= 0) and th[128] == 0 and np.array_equal(th[1:], -th[1:][::-1])
    assert np.array_equal(lut.requantize(0.1, 3, 0.1, 3), x.astype(np.int8))
    relu6 = lut.relu6(0.1, -10).astype(int)
    assert relu6.min() == -10 and relu6.max() == 50


def test_mean_over_split_axes_refused_clearly():
    inp = tf.keras.Input((4, 5, 3))
    model = tf.keras.Model(inp, L.Lambda(lambda t: tf.reduce_mean(t, axis=[1, 3]))(inp), name="split_mean")
    q = quantize(model, np.random.default_rng(0).random((32, 4, 5, 3), dtype=np.float32), QuantizeConfig(32))
    with pytest.raises(UnsupportedOpError, match=r"op #\d+ MEAN .*only one contiguous run of axes"):
        lower(read_graph(q.tflite))


def _graph(ops: list[tuple[str, tuple[int, ...], tuple[int, ...], object]], tensors: list[tuple]) -> Graph:
    """A hand-built graph: tensors as (shape, dtype, data) with scale 0.05 and zero point 3."""
    codes = BuiltinOperator
    ts = tuple(Tensor(i, f"t{i}", shape, dtype, (0.05,) if dtype == "int8" else (), (3,) if dtype == "int8" else (),
                      0, data) for i, (shape, dtype, data) in enumerate(tensors))
    operators = tuple(Operator(i, getattr(codes, name), name, 1, ins, outs, options)
                      for i, (name, ins, outs, options) in enumerate(ops))
    return Graph(ts, operators, (0,), (operators[-1].outputs[0],))


def test_squeeze_and_expand_dims_are_aliases():
    g = _graph([("EXPAND_DIMS", (0, 1), (2,), NoOptions()), ("RELU6", (2,), (3,), NoOptions()),
                ("SQUEEZE", (3,), (4,), NoOptions()), ("QUANTIZE", (4,), (5,), NoOptions())],
               [((1, 6), "int8", None), ((), "int32", np.array(1, np.int32)), ((1, 1, 6), "int8", None),
                ((1, 1, 6), "int8", None), ((1, 6), "int8", None), ((1, 6), "int8", None)])
    lowered = lower(g)
    assert [c.op_name for c in lowered.calls] == ["RELU6", "QUANTIZE"]
    assert dict(lowered.aliases) == {2: 0, 4: 3}


def test_broadcast_beyond_4d_refused_clearly():
    g = _graph([("MUL", (0, 1), (2,), ActivationOptions(Activation.NONE))],
               [((1, 2, 3, 4, 5), "int8", None), ((1, 2, 3, 4, 5), "int8", None), ((1, 2, 3, 4, 5), "int8", None)])
    with pytest.raises(UnsupportedOpError, match=r"op #0 MUL .*has 5 dimensions; at most 4 are supported"):
        lower(g)


def test_incompatible_broadcast_refused_clearly():
    g = _graph([("SUB", (0, 1), (2,), ActivationOptions(Activation.NONE))],
               [((1, 4, 6), "int8", None), ((1, 3, 6), "int8", None), ((1, 4, 6), "int8", None)])
    with pytest.raises(UnsupportedOpError, match=r"op #0 SUB .*input 't1' of shape \(1, 3, 6\) does not broadcast"):
        lower(g)
