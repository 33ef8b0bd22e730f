"""The specialised same-shape ADD (tinyq/engine/ops/elementwise.py, firmware_stub/runtime/elementwise/) bit-exact with
TFLM.

One synthetic int8 model holds four ADDs of activations with different scales and zero points: no activation
(tq_add_lut, 210 elements: a tail of 2), fused ReLU and ReLU6 whose output quantization is edited so the clamps
narrow int8 (tq_add_lut_clamp), and one of 3 elements (the tail only). It runs on a few hundred random inputs on the host (packed path, -DTQ_PORTABLE, ASan+UBSan) and on a few
dozen in QEMU on a DSP core (Cortex-M4, SMMLAR) and one without (Cortex-M3). The input tables are checked against
an independent replay of TFLite's rescale over all 256 inputs, and the kernel's arithmetic against the generic's
over all 65,536 input pairs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tflite_fuzz as fz
from kernel_checks import HOST_BUILDS, QEMU_TARGETS, check_host, check_qemu

from tinyq import emit, resources, runtimes, verify
from tinyq.engine.fixedpoint import quantize_multiplier
from tinyq.engine import read_graph
from tinyq.engine.ops import elementwise
from tinyq.engine import Optimize, lower
from tinyq.engine.ops.elementwise import ADD_LEFT_SHIFT
from tinyq.quantize import QuantizeConfig, inspect_tflite, quantize

L = tf.keras.layers
SAMPLES = 300
SHAPE = (7, 5, 6)
GENERIC_FIELDS = ("size", "left_shift", "in1_offset", "in1_mult", "in1_shift", "in2_offset", "in2_mult",
                  "in2_shift", "out_offset", "out_mult", "out_shift", "act_min", "act_max")
ADD_CODE, RELU, RELU6 = 0, 1, 3  # schema BuiltinOperator.ADD, ActivationFunctionType.RELU / RELU6


def _quantized():
    tf.keras.utils.set_random_seed(3)
    inp = tf.keras.Input(SHAPE)
    a = L.Conv2D(6, 1, name="big")(inp)
    b = L.Conv2D(6, 1)(inp)
    y = L.Add()([a, b])                       # plain: full int8 range
    y = L.ReLU()(L.Add()([y, a]))             # fused ReLU: act_min > -128
    y = L.ReLU(6.0)(L.Add()([y, b]))          # fused ReLU6: act_max < 127
    p1 = L.AveragePooling2D((7, 1), (7, 2))(L.Conv2D(1, 1)(y))
    p2 = L.AveragePooling2D((7, 1), (7, 2))(L.Conv2D(1, 1, name="wide")(y))
    z = L.Add()([p1, p2])                     # 3 elements: the tail loop only
    model = tf.keras.Model(inp, L.Conv2D(2, 1)(z), name="add_case")
    for layer in model.layers:
        if layer.name in ("big", "wide"):     # another scale for one side of each add
            layer.kernel.assign(layer.kernel * 5.0)
    calib = np.random.default_rng(3).random((48,) + SHAPE, dtype=np.float32) * 2 - 0.6
    q = quantize(model, calib, QuantizeConfig(48, input_range=(-0.6, 1.4)))
    return inspect_tflite(fz.edit(q.tflite, _narrow_fused_ranges), q.name, q.config)


def _narrow_fused_ranges(model) -> None:
    """Calibration gives a fused ReLU/ReLU6 output exactly its clamp range, so the clamp never narrows int8:
    move the ReLU ADD's output zero point up and double the ReLU6 ADD's output scale, so both clamps bite."""
    graph = model.subgraphs[0]
    for op in graph.operators:
        act = getattr(op.builtinOptions, "fusedActivationFunction", 0)
        if model.operatorCodes[op.opcodeIndex].builtinCode != ADD_CODE or act not in (RELU, RELU6):
            continue
        quant = graph.tensors[op.outputs[0]].quantization
        if act == RELU:
            quant.zeroPoint = [-40]
        else:
            quant.scale = [2.0 * float(quant.scale[0])]


@pytest.fixture(scope="module")
def add_case(tmp_path_factory):
    q = _quantized()
    xs = np.random.default_rng(5).integers(-128, 128, (SAMPLES,) + q.input.shape[1:], dtype=np.int8)
    tflm = runtimes.run_tflm(q.tflite, xs)
    r = verify.VerifyResult.tflm_only(q, xs, tflm, np.arange(len(xs)) % 10)
    folder = tmp_path_factory.mktemp("add") / "fw"
    emit.emit(q, r, folder, name="add_case", golden_count=5, class_labels=None)
    return q, folder, xs, tflm.reshape(len(xs), -1)


def _add_calls(q, optimize):
    return [c for c in lower(read_graph(q.tflite), optimize).calls if c.op_name == "ADD"]


def _tflm_rescale(x: np.ndarray, mult: int, shift: int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier on int64 arrays step by step, as its reference C++ writes it (int32
    left shift, int64 product, nudge by sign, truncating division by 2^31, then RoundingDivideByPOT)."""
    left, right = max(shift, 0), max(-shift, 0)
    a = ((np.asarray(x, np.int64) << left) + (1 << 31)) % (1 << 32) - (1 << 31)
    ab = a * mult
    n = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(n >= 0, n >> 31, -((-n) >> 31))
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + ((high & mask) > threshold)


def _generic_add(f: dict, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """tq_add's output for each pair, replayed with _tflm_rescale."""
    sa = _tflm_rescale((x1 + f["in1_offset"]) << f["left_shift"], f["in1_mult"], f["in1_shift"])
    sb = _tflm_rescale((x2 + f["in2_offset"]) << f["left_shift"], f["in2_mult"], f["in2_shift"])
    v = _tflm_rescale(sa + sb, f["out_mult"], f["out_shift"]) + f["out_offset"]
    return np.clip(v, f["act_min"], f["act_max"])


def _kernel_add(v: dict, t1: np.ndarray, t2: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """tq_add_lut's arithmetic on numpy int64: SMMLAR of the doubled sum, sign correction, shift, clamp."""
    s2 = t1[x1 + 128].astype(np.int64) + t2[x2 + 128]
    assert np.abs(s2).max() < 1 << 31
    high = (v["acc"] * (1 << 32) + s2 * v["mult"] + (1 << 31)) >> 32
    assert np.abs(high).max() < 1 << 31
    return np.clip((high - (s2 < 0)) >> v["shift"], v["act_min"], v["act_max"])


def _exhaustive_check(fields: dict, name: str = "op0") -> bool:
    """Whether the chooser took the ADD; if so, assert its tables and its arithmetic over all 65,536 pairs."""
    variant = elementwise.choose(fields, {}, name)
    if variant is None:
        return False
    v = dict(variant.fields)
    t1, t2 = (a.values.astype(np.int64) for a in variant.arrays)
    xs = np.arange(-128, 128)
    for k, t in ((1, t1), (2, t2)):
        replay = _tflm_rescale((xs + fields[f"in{k}_offset"]) << fields["left_shift"], fields[f"in{k}_mult"],
                               fields[f"in{k}_shift"])
        np.testing.assert_array_equal(t, 2 * replay, err_msg=f"table {k}")
    x1, x2 = (g.reshape(-1) for g in np.meshgrid(xs, xs))
    np.testing.assert_array_equal(_kernel_add(v, t1, t2, x1, x2), _generic_add(fields, x1, x2))
    return True


def test_choice_and_exhaustive_arithmetic(add_case):
    q, *_ = add_case
    assert {c.kernel for c in _add_calls(q, Optimize.SIZE)} == {"tq_add"}
    speed = _add_calls(q, Optimize.SPEED)
    assert [c.kernel for c in speed] == ["tq_add_lut", "tq_add_lut_clamp", "tq_add_lut_clamp", "tq_add_lut"]
    assert all(c.scratch_bytes == 0 and sum(a.nbytes for a in c.arrays) == 2048 for c in speed)
    generic = [{k: int(v) for k, v in c.fields} for c in _add_calls(q, Optimize.SIZE)]
    assert [g["size"] for g in generic] == [210, 210, 210, 3]
    assert generic[1]["act_min"] > -128 and generic[2]["act_max"] < 127
    assert all(g["in1_mult"] != g["in2_mult"] and g["in1_offset"] != g["in2_offset"] for g in generic)
    for g in generic:
        assert _exhaustive_check(g)


def _random_fields(rng) -> dict:
    """An ADD's generic fields for random scales and zero points, derived as lower.py derives them."""
    s1, s2, so = (float(np.float32(s)) for s in 10.0 ** rng.uniform(-3, 0, 3))
    twice = 2.0 * max(s1, s2)
    (m1, h1), (m2, h2) = quantize_multiplier(s1 / twice), quantize_multiplier(s2 / twice)
    mo, ho = quantize_multiplier(twice / (float(1 << ADD_LEFT_SHIFT) * so))
    lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2)) if rng.random() < 0.5 else (-128, 127)
    return dict(size=16, left_shift=ADD_LEFT_SHIFT, in1_offset=int(rng.integers(-127, 129)), in1_mult=m1,
                in1_shift=h1, in2_offset=int(rng.integers(-127, 129)), in2_mult=m2, in2_shift=h2,
                out_offset=int(rng.integers(-128, 128)), out_mult=mo, out_shift=ho, act_min=lo, act_max=hi)


# 40 random ADDs (a few refused: an output shift so large that the zero point's term overflows int32); in one of
# them a pair's output depends on the kernel's sign correction (a tie).
RANDOM_FIELDS = tuple(_random_fields(rng) for rng in [np.random.default_rng(11)] for _ in range(40))
TAKEN_FIELDS = tuple(f for f in RANDOM_FIELDS if elementwise.choose(f, {}, "op0") is not None)


def test_random_rescales_exhaustive():
    assert sum(_exhaustive_check(f) for f in RANDOM_FIELDS) == len(TAKEN_FIELDS) >= 30


def _tie_sensitive(f: dict) -> bool:
    """Whether some input pair of this ADD gives another output without the sign correction."""
    v = elementwise.choose(f, {}, "op0")
    t1, t2 = (a.values.astype(np.int64) for a in v.arrays)
    v = dict(v.fields)
    xs = np.arange(-128, 128)
    x1, x2 = (g.reshape(-1) for g in np.meshgrid(xs, xs))
    s2 = t1[x1 + 128] + t2[x2 + 128]
    high = (v["acc"] * (1 << 32) + s2 * v["mult"] + (1 << 31)) >> 32
    plain = np.clip(high >> v["shift"], v["act_min"], v["act_max"])
    return bool((plain != _kernel_add(v, t1, t2, x1, x2)).any())


@pytest.fixture(scope="module")
def pairs_harness(tmp_path_factory) -> Path:
    """tests/add_pairs.c with the runtime's tq_add and tq_add_lut (elementwise/tq_elementwise.c), under ASan+UBSan,
    warnings as errors."""
    exe = tmp_path_factory.mktemp("add_pairs") / "add_pairs"
    runtime = resources.runtime_dir()
    includes = [f"-I{d}" for d in (runtime, *sorted(p for p in runtime.iterdir() if p.is_dir()))]
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", *includes, str(Path(__file__).with_name("add_pairs.c")),
                    str(runtime / "elementwise" / "tq_elementwise.c"), str(runtime / "tq_requant.c"), "-o", str(exe)],
                   check=True)
    return exe


@pytest.mark.integration
def test_c_kernel_over_all_input_pairs(pairs_harness, add_case):
    """The C kernels against the C generic over all 65,536 pairs: the model's ADDs and the random ones (one with
    a tie that needs the sign correction, some with clamps), each with a tail of 0 to 3 elements."""
    q, *_ = add_case
    cases = [{k: int(v) for k, v in c.fields} for c in _add_calls(q, Optimize.SIZE)] + list(TAKEN_FIELDS)
    assert any(_tie_sensitive(f) for f in TAKEN_FIELDS)
    assert any(f["act_min"] > -128 or f["act_max"] < 127 for f in cases)
    xs = np.arange(-128, 128)
    x1, x2 = (g.reshape(-1) for g in np.meshgrid(xs, xs))
    for k, f in enumerate(cases):
        v = elementwise.choose(f, {}, "op0")
        fv = dict(v.fields)
        text = [f[n] for n in GENERIC_FIELDS] + [k % 4, fv["mult"], fv["acc"], fv["shift"], fv["act_min"],
                                                   fv["act_max"], int(v.kernel == "tq_add_lut_clamp")]
        text += v.arrays[0].values.tolist() + v.arrays[1].values.tolist()
        run = subprocess.run([str(pairs_harness)], input=" ".join(map(str, text)).encode(), capture_output=True,
                             check=True)
        out = np.frombuffer(run.stdout, np.int8).reshape(2, -1)
        np.testing.assert_array_equal(out[1], out[0], err_msg=f"case {k}: {f}")
        np.testing.assert_array_equal(out[0], _generic_add(f, x1, x2), err_msg=f"case {k}: the replay")


def test_refused_rescales_keep_the_generic():
    f = dict(size=16, left_shift=ADD_LEFT_SHIFT, in1_offset=0, in1_mult=1 << 30, in1_shift=0, in2_offset=0,
             in2_mult=1 << 30, in2_shift=0, out_offset=0, out_mult=1 << 30, out_shift=-19, act_min=-128, act_max=127)
    assert elementwise.choose(f, {}, "op0") is not None
    assert elementwise.choose(dict(f, out_shift=0), {}, "op0") is None      # no right shift
    assert elementwise.choose(dict(f, out_mult=-5), {}, "op0") is None      # negative multiplier
    assert elementwise.choose(dict(f, out_shift=-31, out_offset=127), {}, "op0") is None  # acc overflows int32


@pytest.mark.integration
@HOST_BUILDS
def test_add_bitexact_on_host(add_case, opt, sanitize, tmp_path):
    _, folder, xs, tflm = add_case
    check_host(folder, xs, tflm, tmp_path / "build", opt, sanitize)


@pytest.mark.integration
@pytest.mark.qemu
@QEMU_TARGETS
def test_add_bitexact_in_qemu(add_case, target, tmp_path):
    _, folder, xs, tflm = add_case
    check_qemu(folder, xs, tflm, tmp_path / "build", target)
