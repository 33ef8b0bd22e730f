"""Demo model builders, deterministic training, the cache, and the demo CNN's accuracy budget."""

import dataclasses

import numpy as np
import pytest

from tinyq import data, models


def _small(ds, n=500):
    return dataclasses.replace(ds, train_x=ds.train_x[:n], train_y=ds.train_y[:n])


def _weights(m):
    return [w.copy() for w in m.get_weights()]


def test_builders():
    cnn = models.build("mnist_cnn")
    assert 10_000 < cnn.count_params() < 16_000
    mlp = models.build("mnist_mlp")
    assert [w.shape for w in mlp.get_weights()] == [(784, 100), (100,), (100, 100), (100,), (100, 10), (10,)]
    kinds = {type(l).__name__ for l in models.build("mnist_dsres").layers}
    assert {"SeparableConv2D", "BatchNormalization", "AveragePooling2D", "Add", "Softmax",
            "DepthwiseConv2D"} <= kinds


def test_same_seed_same_weights_other_seed_other_weights(dataset):
    ds = _small(dataset)
    cfg = models.TrainConfig(epochs=1)
    a = models.train(models.build("mnist_cnn", cfg), ds, cfg)
    b = models.train(models.build("mnist_cnn", cfg), ds, cfg)
    assert all(np.array_equal(x, y) for x, y in zip(_weights(a), _weights(b)))
    other = dataclasses.replace(cfg, seed=cfg.seed + 1)
    c = models.train(models.build("mnist_cnn", other), ds, other)
    assert not all(np.array_equal(x, y) for x, y in zip(_weights(a), _weights(c)))


def test_cache_reuses_trained_model(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV_VAR, str(tmp_path))
    ds = _small(dataset, 300)
    cfg = models.TrainConfig(epochs=1)
    first = models.demo_model("mnist_mlp", ds, cfg)
    cached = list(tmp_path.glob("mnist_mlp-*.keras"))
    assert len(cached) == 1
    again = models.demo_model("mnist_mlp", ds, cfg)
    assert all(np.array_equal(x, y) for x, y in zip(_weights(first), _weights(again)))
    models.demo_model("mnist_mlp", _small(dataset, 200), cfg)  # other data: another cache entry
    assert len(list(tmp_path.glob("mnist_mlp-*.keras"))) == 2


def test_demo_cnn_float_accuracy(cnn_keras, dataset):
    x = data.preprocess(dataset.test_x, models.input_shape(cnn_keras))
    acc = float(np.mean(cnn_keras.predict(x, batch_size=1000, verbose=0).argmax(1) == dataset.test_y))
    assert acc >= 0.970


def test_user_model_round_trip(cnn_keras, tmp_path):
    path = tmp_path / "user.keras"
    cnn_keras.save(path)
    loaded = models.load_keras_model(path)
    assert models.input_shape(loaded) == (28, 28, 1)


def test_unknown_input_dims_rejected():
    import tensorflow as tf
    from tinyq.errors import ModelError

    inp = tf.keras.Input((None, None, 1))
    m = tf.keras.Model(inp, tf.keras.layers.GlobalAveragePooling2D()(inp), name="anysize")
    with pytest.raises(ModelError, match="'anysize'.*unknown dimensions"):
        models.input_shape(m)
