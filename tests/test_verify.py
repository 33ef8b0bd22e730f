"""Runtime checks: input quantization, agreement, the TFLM arena search, and the demo CNN's acceptance figures."""

import numpy as np
import pytest

from tinyq import runtimes, verify
from tinyq.quantize import TensorQuant


def _q(scale, zp):
    return TensorQuant("t", (1, 4), "int8", scale, zp)


def test_quantize_input_rounds_half_away_from_zero_and_saturates():
    q = _q(0.5, -3)
    x = np.array([0.25, -0.25, 0.75, -0.75, 1000.0, -1000.0, 0.0], np.float32)
    # x/scale = 0.5, -0.5, 1.5, -1.5 -> 1, -1, 2, -2 (away from zero), then + zp, saturated
    assert verify.quantize_input(x, q).tolist() == [-2, -4, -1, -5, 127, -128, -3]


def test_dequantize_is_scale_times_offset():
    assert verify.dequantize(np.array([-128, 0, 127], np.int8), _q(0.5, -128)).tolist() == [0.0, 64.0, 127.5]


def test_agreement_counts_whole_vectors():
    a = np.array([[1, 2, 3], [4, 5, 6], [0, 9, 1]], np.int8)
    b = np.array([[1, 2, 3], [4, 5, 7], [0, 7, 1]], np.int8)
    ag = verify.agreement(a, b)
    assert ag.bitexact == pytest.approx(1 / 3) and ag.max_lsb == 2 and ag.argmax == 1.0


def test_tflm_arena_is_tight(cnn_q, cnn_verify):
    sample = cnn_verify.int8_inputs[0]
    n = cnn_verify.tflm_arena_bytes
    assert runtimes._tflm_runs(cnn_q.tflite, n, sample)
    assert not runtimes._tflm_runs(cnn_q.tflite, n - 16, sample)


def test_demo_cnn_acceptance(cnn_verify):
    r = cnn_verify
    assert r.test_images == 10000
    assert r.keras_float >= 0.970
    assert abs(r.litert_ref_int8 - r.keras_float) <= 0.003
    assert r.tflm_vs_litert_ref.argmax >= 0.999
    assert r.int8_tflite_bytes < r.float_tflite_bytes / 2
    assert len(r.per_class_tflm) == 10 and min(r.per_class_tflm) > 0.9


def test_tflm_outputs_are_what_tflm_computes(cnn_q, cnn_verify):
    idx = [0, 1234, 9999]
    again = runtimes.run_tflm(cnn_q.tflite, cnn_verify.int8_inputs[idx])
    assert np.array_equal(again, cnn_verify.tflm_outputs[idx])
    assert cnn_verify.tflm_outputs.dtype == np.int8


def test_params_and_macs(cnn_verify, cnn_keras):
    assert cnn_verify.params == cnn_keras.count_params()
    # conv1 26*26*16*9 + conv2 11*11*32*16*9 + dense 800*10
    assert cnn_verify.macs == 26 * 26 * 16 * 9 + 11 * 11 * 32 * 16 * 9 + 800 * 10


def test_stage_agreement_rows(cnn_verify):
    stages = verify.stage_agreement(cnn_verify)
    assert [s.stage for s in stages] == ["Keras float", "LiteRT int8, reference kernels",
                                         "LiteRT int8, default kernels", "TFLM int8"]
    flt, ref, _, tflm = stages
    assert flt.vs_tflm is None and flt.argmax_vs_float == 1.0 and flt.accuracy == cnn_verify.keras_float
    assert ref.vs_tflm == cnn_verify.tflm_vs_litert_ref
    assert tflm.vs_tflm == verify.Agreement(1.0, 0, 1.0) and tflm.accuracy == cnn_verify.tflm_int8
    float_pred = cnn_verify.float_outputs.argmax(axis=1)
    assert tflm.argmax_vs_float == np.mean(cnn_verify.tflm_outputs.reshape(len(float_pred), -1).argmax(1) == float_pred)
    assert tflm.argmax_vs_float >= 0.99


def test_quantize_input_int16_saturates_at_int16_limits():
    q = TensorQuant("t", (1, 4), "int16", 1.0 / 32767, 0)
    out = verify.quantize_input(np.array([0.0, 0.5, 1.0, 2.0]), q)
    assert out.dtype == np.int16 and out.tolist() == [0, 16384, 32767, 32767]


def test_tflm_runs_a_small_model_with_large_activations():
    """TFLM's own default arena (10x the .tflite) is too small here; tinyq's runs must not call that a failure."""
    import tensorflow as tf

    from tinyq import quantize

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((64, 64, 1))
    wide = tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(10)(tf.keras.layers.GlobalAveragePooling2D()(wide)), name="wide")
    x = np.random.default_rng(0).random((20, 64, 64, 1)).astype(np.float32)
    q = quantize.quantize(model, x, quantize.QuantizeConfig(20))
    assert 64 * 64 * 16 > 10 * len(q.tflite)  # one activation outgrows TFLM's default arena
    xq = verify.quantize_input(x[:2], q.input)
    assert runtimes.tflm_problem(q.tflite, xq[0]) is None
    assert runtimes.run_tflm(q.tflite, xq).shape == (2, 10)
    assert runtimes.tflm_arena_bytes(q.tflite, xq[0]) > 64 * 64 * 16
