"""The specialised depthwise kernels (tinyq/engine/ops/depthwise.py, firmware_stub/runtime/depthwise/), each
bit-exact with TFLM: one synthetic graph whose layers reach every branch of the choice (the 3x3 stream kernels
with strides 1 and 2, SAME (padded, asymmetric too) and VALID; 3x3 with a channel tail and a two-step rescale and a
tall window on the any-size kernel; a depth multiplier left to the generic kernel), run on a few hundred random inputs through the packed path, the portable path, the sanitizers,
and in QEMU on a Cortex-M4 (DSP) and a Cortex-M3 (no DSP)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
import tensorflow as tf
from kernel_checks import HOST_BUILDS, QEMU_TARGETS, assert_bitexact, check_host, check_qemu

from tinyq import emit, runtimes, verify
from tinyq.targets import firmware
from tinyq.engine.ops import depthwise
from tinyq.engine.fixedpoint import mul_by_quantized_multiplier
from tinyq.engine import read_graph
from tinyq.engine.ops.depthwise import GROUP_WORDS, LAST, REQUANT_SIZE, dw3_stream, grouped_weights, requant_records
from tinyq.engine.ops.requant import fused_constant
from tinyq.engine import Optimize, lower
from tinyq.quantize import QuantizeConfig, quantize

L = tf.keras.layers
SAMPLES = 300
SHAPE = (10, 11, 8)


def _model():
    inp = tf.keras.Input(SHAPE)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(inp)  # 2 groups, input offset per tap
    t = L.DepthwiseConv2D(3, padding="same")(L.Conv2D(7, 1)(x))  # 1 group + 3 tail channels: any-size kernel
    x = L.Conv2D(12, 1)(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same")(x)  # padded at the bottom only, both sides of the width
    y = L.DepthwiseConv2D(3, padding="valid")(x)  # offset folded into the bias, no padding
    z = L.DepthwiseConv2D((5, 2), strides=(1, 2), padding="same")(x)  # any-size window
    w = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)  # generic kernel
    # large weights into a ReLU6: rescales above 1/4, TFLite's two-step requantization on the any-size kernel
    v = L.DepthwiseConv2D(3, padding="same", activation="relu6", name="big")(x)
    outs = [L.Flatten()(o) for o in (y, z, w, v, t)]
    return tf.keras.Model(inp, L.Concatenate()(outs), name="dw")


@dataclass(frozen=True)
class Case:
    quantized: object
    folder: object
    inputs: np.ndarray
    tflm: np.ndarray


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> Case:
    tf.keras.utils.set_random_seed(11)
    model = _model()
    rng = np.random.default_rng(11)
    for v in model.weights:  # non-zero biases, or the converter drops them
        if v.path.endswith("bias"):
            v.assign(rng.normal(0.0, 0.2, v.shape).astype(np.float32))
        elif v.path.startswith("big/"):
            v.assign(rng.normal(0.0, 300.0, v.shape).astype(np.float32))
    calib = rng.random((64,) + SHAPE, dtype=np.float32) * 2 - 0.5  # asymmetric: non-zero input zero point
    q = quantize(model, calib, QuantizeConfig(64, input_range=(-0.5, 1.5)))
    xs = np.random.default_rng(7).integers(-128, 128, (SAMPLES,) + q.input.shape[1:], dtype=np.int8)
    tflm = runtimes.run_tflm(q.tflite, xs)
    r = verify.VerifyResult.tflm_only(q, xs, tflm, np.arange(len(xs)) % 10)
    folder = tmp_path_factory.mktemp("dw") / "fw"
    emit.emit(q, r, folder, name="dw", golden_count=5)
    return Case(q, folder, xs, tflm.reshape(len(xs), -1))


@pytest.fixture(scope="module")
def clamp_folder(case, tmp_path_factory):
    """The same model with the 3x3 layers clamping to their activation range (exact for any range, so for these
    too)."""
    choose = depthwise.RULE.choose

    def clamping(fields, arrays, name, rounding):
        v = choose(fields, arrays, name, rounding)
        if v is None or not v.kernel.startswith("tq_dw_conv3x3"):
            return v
        return replace(v, fields=tuple((k, 1 if k == "clamp" else x) for k, x in v.fields))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(depthwise, "RULE", replace(depthwise.RULE, choose=clamping))
        r = verify.VerifyResult.tflm_only(case.quantized, case.inputs, case.tflm, np.arange(len(case.inputs)) % 10)
        folder = tmp_path_factory.mktemp("dw_clamp") / "fw"
        emit.emit(case.quantized, r, folder, name="dw", golden_count=5)
    assert ".clamp = 1" in next(folder.glob("*_model.c")).read_text()
    return folder


def test_choice_covers_every_variant_and_size_keeps_generic(case):
    g = read_graph(case.quantized.tflite)
    speed = [c.kernel for c in lower(g).calls if c.op_name == "DEPTHWISE_CONV_2D"]
    size = [c.kernel for c in lower(g, Optimize.SIZE).calls if c.op_name == "DEPTHWISE_CONV_2D"]
    assert sorted(speed) == ["tq_depthwise_conv2d", "tq_dw_conv", "tq_dw_conv", "tq_dw_conv", "tq_dw_conv3x3",
                             "tq_dw_conv3x3_pad", "tq_dw_conv3x3_pad"]
    assert size == ["tq_depthwise_conv2d"] * 7
    two_step = [c for c in lower(g).calls if c.kernel == "tq_dw_conv" and c.layer == "big"]
    assert len(two_step) == 1 and (two_step[0].arrays[1].values.reshape(-1, REQUANT_SIZE)[:, 3] < 0).any()
    fast = [dict(c.fields) for c in lower(g).calls if c.kernel.startswith("tq_dw_conv3x3")]
    assert all(f["clamp"] == "0" for f in fast)  # every activation range here is all of int8
    assert any(f["pad_value"] != "0" for f in fast)  # padding reads the input zero point


def test_fused_constant_equals_tflite_rounding():
    """tq_requantize_fused's formula with requant.fused_constant's c, evaluated in Python, against TFLite's two
    steps plus the output offset; the records hold c, or TFLite's shift where the fused form does not apply."""
    rng = np.random.default_rng(3)
    edges = [0, 1, -1, 2, -2, 3, -3, (1 << 31) - 1, -(1 << 31), (1 << 30), -(1 << 30), 12345, -12345]
    xs = edges + [int(v) for v in rng.integers(-(1 << 31), 1 << 31, 300)]
    xs += [int(v) for v in rng.integers(-(1 << 16), 1 << 16, 300)]
    mults = [0, 1 << 30, (1 << 31) - 1] + [int(v) for v in rng.integers(1 << 30, 1 << 31, 6)]
    fused = 0
    for shift in range(-31, 3):
        for m in mults:
            zp = int(rng.integers(-128, 128))
            c = fused_constant(m, shift, zp)
            if c is None:
                assert shift >= 0 or -shift > 23  # no right shift, or a 64-bit sum that could overflow
                continue
            fused += 1
            for x in xs:
                got = (x * m + c - ((x < 0) << 31)) >> (31 - shift)
                assert got == mul_by_quantized_multiplier(x, m, shift) + zp, (x, m, shift, zp)
    assert fused > 20 * len(mults)
    rec, all_fused = requant_records(np.array([5, -7]), np.array([1 << 30, 3 << 29]), np.array([-9, 1]), -3)
    c = fused_constant(1 << 30, -9, -3)
    assert not all_fused and rec.reshape(2, REQUANT_SIZE).tolist() == [
        [c & 0xFFFFFFFF, c >> 32, 1 << 30, 8, 5], [1, 0, 3 << 29, -1, -7]]


def test_dw3_stream_layout_and_doubled_rounding():
    """The 3x3 stream: start values with the input offset folded in, doubled weights and c, LAST in the final
    record; the doubled requantization ((2x * m + 2c) >> 32) - [x < 0]) >> r equals TFLite's; no stream where the
    doubled sum could leave int32, for channel tails or a two-step rescale."""
    rng = np.random.default_rng(5)
    w = rng.integers(-127, 128, (3, 3, 8)).astype(np.int8)
    bias = rng.integers(-5000, 5000, 8)
    mult = rng.integers(1 << 30, 1 << 31, 8)
    shift = rng.integers(-12, -1, 8)
    s = dw3_stream(w.reshape(-1), bias, mult, shift, 17, -9).reshape(2, GROUP_WORDS).astype(np.int64)
    flat = w.reshape(9, 8).astype(np.int64)
    assert np.array_equal(s[:, :4].reshape(-1), 2 * (bias + 17 * flat.sum(axis=0)))
    words = s[:, 4:22].reshape(2, 9, 2)  # [group][tap][word]
    lanes = np.stack([(words << 48) >> 48, (words << 32) >> 48], axis=-1)[..., [0, 1, 0, 1], [0, 0, 1, 1]]
    assert np.array_equal(lanes.transpose(1, 0, 2).reshape(9, 8), 2 * flat)  # (w0, w2), (w1, w3) doubled
    rec = s[:, 22:].reshape(8, 4)
    assert (rec[:-1, 3] == -shift[:-1]).all() and rec[-1, 3] == -shift[-1] | LAST
    for ch in range(8):
        c2 = (int(rec[ch, 0]) & 0xFFFFFFFF) | (int(rec[ch, 1]) << 32)
        assert c2 == 2 * fused_constant(int(mult[ch]), int(shift[ch]), -9)
        for x in [0, 1, -1, 7, -7, 1 << 20, -(1 << 20)] + [int(v) for v in rng.integers(-(1 << 29), 1 << 29, 200)]:
            got = (((2 * x * int(rec[ch, 2]) + c2) >> 32) - (x < 0)) >> int(rec[ch, 3] & 0xFF)
            assert got == mul_by_quantized_multiplier(x, int(mult[ch]), int(shift[ch])) - 9, (ch, x)
    assert dw3_stream(w.reshape(-1), bias + (1 << 30), mult, shift, 17, -9) is None
    assert dw3_stream(w[..., :7].reshape(-1), bias[:7], mult[:7], shift[:7], 17, -9) is None
    assert dw3_stream(w.reshape(-1), bias, mult, np.r_[shift[:7], 1], 17, -9) is None


def test_grouped_weights_layout():
    w = np.arange(-36, 36, 2, dtype=np.int8).reshape(2, 3, 6)  # [k_h][k_w][channels]
    g = grouped_weights(w.reshape(-1), 6, 6).reshape(2, 6, 2)  # [group][tap][word]
    lanes = np.stack([(g << 16) >> 16, g >> 16], axis=-1)  # [group][tap][word][lo, hi]
    chans = lanes[..., [0, 1, 0, 1], [0, 0, 1, 1]]  # words (w0, w2), (w1, w3) -> channels 0..3
    flat = w.reshape(6, 6)
    assert np.array_equal(chans[0], flat[:, :4])
    assert np.array_equal(chans[1, :, :2], flat[:, 4:]) and not chans[1, :, 2:].any()


@pytest.mark.integration
@HOST_BUILDS
def test_bitexact_with_tflm_on_host(case, opt, sanitize, tmp_path):
    check_host(case.folder, case.inputs, case.tflm, tmp_path / "build", opt, sanitize)


@pytest.mark.integration
@pytest.mark.parametrize("opt", ["-O2", "-O2 -DTQ_PORTABLE"])
def test_clamping_twin_bitexact_on_host(case, clamp_folder, opt, tmp_path):
    exe = firmware.build_stub(clamp_folder, tmp_path / "build", opt=opt)
    assert_bitexact(firmware.run_batch(exe, case.inputs, case.tflm.shape[1]), case.tflm)


@pytest.mark.integration
@pytest.mark.qemu
@QEMU_TARGETS
def test_bitexact_with_tflm_in_qemu(case, target, tmp_path):
    check_qemu(case.folder, case.inputs, case.tflm, tmp_path / target, target)


@pytest.mark.integration
@pytest.mark.qemu
def test_clamping_twin_bitexact_in_qemu_m4(case, clamp_folder, tmp_path):
    check_qemu(clamp_folder, case.inputs, case.tflm, tmp_path / "m4", "cortex-m4")
