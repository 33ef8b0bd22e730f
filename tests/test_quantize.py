"""Quantization config, calibration checks, conversion and the full-integer check."""

import numpy as np
import pytest
import tensorflow as tf

from tinyq import data, models, quantize
from tinyq.errors import ModelError, QuantizationError
from tinyq.quantize import IODtype, QuantizeConfig, WeightGranularity

ALLOWED_DEMO_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE",
                    "SOFTMAX"}


def _tiny_model():
    tf.keras.utils.set_random_seed(0)
    return tf.keras.Sequential([tf.keras.Input((28, 28)), tf.keras.layers.Flatten(),
                                tf.keras.layers.Dense(10, activation="softmax")], name="tiny")


@pytest.fixture(scope="module")
def tiny():
    return _tiny_model()


@pytest.fixture(scope="module")
def calib(dataset):
    return data.preprocess(dataset.train_x[:200], (28, 28))


@pytest.mark.parametrize("kwargs, message", [
    ({"num_calibration_samples": 0}, "num_calibration_samples must be >= 1"),
    ({"granularity": "per_channel"}, "granularity must be a WeightGranularity"),
    ({"io_dtype": "int8"}, "io_dtype must be an IODtype"),
    ({"input_range": (1.0, 0.0)}, "low < high"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(QuantizationError, match=message):
        QuantizeConfig(**kwargs)


def test_config_is_frozen():
    with pytest.raises(Exception):
        QuantizeConfig().seed = 3


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 28, 28), np.float32), "empty"),
    (np.full((3, 28, 28), np.nan, np.float32), "NaN/Inf values"),
    (np.zeros((3, 28, 27), np.float32), r"per-sample shape \(28, 27\), model input expects \(28, 28\)"),
    (np.full((3, 28, 28), 255.0, np.float32), "outside the model's input range 0..1"),
    (np.zeros((3, 28, 28), np.uint8), "calibration data is uint8"),
])
def test_bad_calibration_data_rejected(tiny, bad, message):
    with pytest.raises(QuantizationError, match=message):
        quantize.quantize(tiny, bad)


def test_inf_in_one_sample_names_it(tiny, calib):
    x = calib[:5].copy()
    x[3, 4, 4] = np.inf
    with pytest.raises(QuantizationError, match="first in sample 3"):
        quantize.quantize(tiny, x)


def test_select_calibration_balanced_and_first_n(dataset):
    labels = dataset.train_y
    idx = quantize.select_calibration(dataset.train_x, labels, QuantizeConfig(num_calibration_samples=100))
    assert np.bincount(labels[idx], minlength=10).tolist() == [10] * 10
    first = quantize.select_calibration(dataset.train_x, labels, QuantizeConfig(100, balanced=False))
    assert first.tolist() == list(range(100))
    assert len(quantize.select_calibration(dataset.train_x[:7], None, QuantizeConfig(300))) == 7


def test_demo_cnn_is_full_integer_with_expected_ops(cnn_q):
    assert set(cnn_q.op_names) <= ALLOWED_DEMO_OPS
    assert cnn_q.input.dtype == "int8" and cnn_q.output.dtype == "int8"
    assert cnn_q.input.shape == (1, 28, 28, 1)
    assert cnn_q.output.shape == (1, 10)
    assert len(cnn_q.calibration_indices) == 300
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_content=cnn_q.tflite)
    kinds = {np.dtype(t["dtype"]).name for t in interp.get_tensor_details()}
    assert kinds <= {"int8", "int32"}


def test_conversion_is_deterministic(cnn_keras, dataset, cnn_q):
    x = data.preprocess(dataset.train_x, (28, 28, 1))
    again = quantize.quantize(cnn_keras, x, QuantizeConfig(), labels=dataset.train_y)
    assert again.tflite == cnn_q.tflite


def test_per_tensor_weights_have_one_scale(cnn_keras, dataset):
    x = data.preprocess(dataset.train_x[:100], (28, 28, 1))
    q = quantize.quantize(cnn_keras, x, QuantizeConfig(100, granularity=WeightGranularity.PER_TENSOR))
    from ai_edge_litert.interpreter import Interpreter
    conv_weights = [t for t in Interpreter(model_content=q.tflite).get_tensor_details()
                    if np.dtype(t["dtype"]) == np.int8 and len(t["shape"]) == 4 and t["shape"][0] in (16, 32)
                    and len(t["quantization_parameters"]["scales"]) > 0 and t["name"].endswith("convolution")]
    assert conv_weights, "no conv weight tensors found"
    assert all(len(t["quantization_parameters"]["scales"]) == 1 for t in conv_weights)


def test_hybrid_model_rejected_naming_ops(tiny):
    conv = tf.lite.TFLiteConverter.from_keras_model(tiny)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic-range (hybrid)
    hybrid = conv.convert()
    with pytest.raises(QuantizationError, match=r"not full-integer int8 .*op #4 FULLY_CONNECTED: input '[^']+' is float32"):
        quantize.inspect_tflite(hybrid, "tiny_hybrid")


def test_float_io_is_allowed_only_at_quantize_ops(tiny, calib):
    q = quantize.quantize(tiny, calib, QuantizeConfig(50, io_dtype=IODtype.FLOAT32))
    assert q.input.dtype == "float32" and q.op_names[0] == "QUANTIZE" and q.op_names[-1] == "DEQUANTIZE"
    with pytest.raises(QuantizationError, match=r"op #0 QUANTIZE: input '[^']+' is float32"):
        quantize.inspect_tflite(q.tflite, "tiny", QuantizeConfig())


def test_model_with_two_inputs_rejected():
    a, b = tf.keras.Input((4,)), tf.keras.Input((4,))
    m = tf.keras.Model([a, b], tf.keras.layers.Add()([a, b]), name="two")
    with pytest.raises(ModelError, match="has 2 inputs"):
        quantize.quantize(m, np.zeros((2, 4), np.float32))


def test_load_keras_model_errors(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        models.load_keras_model(tmp_path / "missing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="bad.keras: cannot load as a Keras model"):
        models.load_keras_model(bad)
