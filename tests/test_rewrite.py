"""Function-preserving rewrites before conversion (issue 24 item 2.2): cross-layer equalization keeps the float
outputs and recovers int8 accuracy on an MLP whose three hidden units swamp the per-tensor activation range;
the pairs it finds through pooling and flatten; bias correction removes the expected error of int8 weights."""

import numpy as np
import pytest

from tinyq import data, models, quantize, rewrite, runtimes, verify
from tinyq.analyze import weight_roundtrip
from tinyq.errors import QuantizationError
from tinyq.native import session
from tinyq.rewrite import LayerPair

pytestmark = pytest.mark.integration

OUTLIER = 1000.0  # three fc1 units scaled up by this, fc2's weights from them down by it


def outlier_units(model, units=(0, 1, 2), factor=OUTLIER):
    """A copy of the MNIST MLP computing the same function with `units` of fc1 `factor` times larger."""
    out = rewrite.copy_model(model)
    scales = np.ones(int(out.get_layer("fc1").kernel.shape[-1]))
    scales[list(units)] = 1.0 / factor
    rewrite.rescale_channels(out, LayerPair("fc1", "fc2", 0), scales)
    return out


def _tflm_accuracy(model, calib, x, y, workers, config=quantize.QuantizeConfig()):
    q = quantize.quantize(model, calib, config, workers=workers)
    return verify.accuracy(runtimes.run_tflm(q.tflite, verify.quantize_input(x, q.input), workers), y)


def test_cle_recovers_int8_accuracy_of_outlier_units(mlp_keras, dataset):
    shape = models.input_shape(mlp_keras)
    calib = data.preprocess(dataset.train_x[:2000], shape)
    x, y = data.preprocess(dataset.test_x, shape), dataset.test_y.astype(np.int64)
    fragile = outlier_units(mlp_keras)
    rewrite.check_same_function(mlp_keras, fragile, x[:1000], "the outlier stand-in")
    float_acc = verify.accuracy(fragile.predict(x, batch_size=1000, verbose=0), y)
    result = rewrite.equalize(fragile, x[:1000])
    assert [e.pair for e in result.equalized] == [LayerPair("fc1", "fc2", 0), LayerPair("fc2", "logits", 0)]
    assert result.equalized[0].max_scale == pytest.approx(OUTLIER, rel=0.2)  # it undoes the outliers
    assert result.max_abs_difference <= rewrite.CHECK_RTOL * result.output_range + rewrite.CHECK_ATOL
    with session() as w:
        default = _tflm_accuracy(fragile, calib, x, y, w)
        recovered = _tflm_accuracy(result.model, calib, x, y, w)
    print(f"float {float_acc:.4f}, default int8 {default:.4f}, CLE int8 {recovered:.4f}")
    assert float_acc - default > 0.2  # fragile: the swamped units lose their signal in int8
    assert float_acc - recovered < 0.01
    assert fragile.get_layer("fc1").kernel.numpy().max() > 10 * result.model.get_layer("fc1").kernel.numpy().max()


def test_pairs_through_pooling_and_flatten_keep_the_cnn(cnn_keras, dsres_keras, dataset):
    assert rewrite.layer_pairs(cnn_keras) == (LayerPair("conv1", "conv2", 0), LayerPair("conv2", "logits", 32))
    assert rewrite.layer_pairs(dsres_keras) == (LayerPair("pointwise", "logits", 24),)  # BN and depthwise stop
    x = data.preprocess(dataset.test_x[:500], models.input_shape(cnn_keras))
    for model in (cnn_keras, dsres_keras):
        result = rewrite.equalize(model, x)  # raises if the outputs moved
        assert result.model is not model and len(result.equalized) == len(rewrite.layer_pairs(model))
    wrong = rewrite.copy_model(cnn_keras)
    kernel, bias = wrong.get_layer("conv2").get_weights()
    wrong.get_layer("conv2").set_weights([kernel, bias + 1.0])
    with pytest.raises(QuantizationError, match="changed the float outputs by up to"):
        rewrite.check_same_function(cnn_keras, wrong, x, "a test")


def test_relu6_and_bad_scales_are_refused():
    import tensorflow as tf  # heavy optional dependency: builds the small models

    L = tf.keras.layers
    inp = tf.keras.Input((4,))
    clipped = tf.keras.Model(inp, L.Dense(2, name="b")(L.Dense(3, activation="relu6", name="a")(inp)))
    assert rewrite.layer_pairs(clipped) == ()  # ReLU6 is not positively homogeneous
    inp = tf.keras.Input((4,))
    a = L.Dense(3, activation="relu", name="a")(inp)
    branched = tf.keras.Model(inp, [L.Dense(2, name="b")(a), L.Dense(2, name="c")(a)])
    assert rewrite.layer_pairs(branched) == ()  # two readers of a: rescaling would need both
    with pytest.raises(QuantizationError, match="'a' -> 'b': channel scales must be positive"):
        rewrite.rescale_channels(branched, LayerPair("a", "b", 0), np.array([1.0, 0.0, 2.0]))


def test_bias_correction_removes_the_expected_weight_error():
    import tensorflow as tf  # heavy optional dependency: builds the small model

    rng = np.random.default_rng(3)
    inp = tf.keras.Input((16,))
    model = tf.keras.Model(inp, tf.keras.layers.Dense(5, name="fc")(inp))
    kernel = rng.normal(size=(16, 5)).astype(np.float32)
    kernel[0] *= 40.0  # one large row: a coarse per-tensor step for the others
    model.get_layer("fc").set_weights([kernel, rng.normal(size=5).astype(np.float32)])
    calib = (rng.normal(size=(400, 16)) + 2.0).astype(np.float32)  # a non-zero mean input
    result = rewrite.correct_bias(model, calib, per_channel=False)
    fc = result.model.get_layer("fc")
    quantized_kernel = weight_roundtrip(fc.kernel.numpy(), False).astype(np.float32)
    with_int8_weights = calib @ quantized_kernel + fc.bias.numpy()
    before = calib @ quantized_kernel + model.get_layer("fc").bias.numpy()
    target = model.predict(calib, verbose=0)
    assert np.abs((with_int8_weights - target).mean(axis=0)).max() < 1e-4  # no bias left
    assert np.abs((before - target).mean(axis=0)).max() > 100 * 1e-4
    assert result.biases[0].layer == "fc" and result.max_abs_difference == pytest.approx(
        np.abs(before - target).mean(axis=0).max(), rel=0.1)
