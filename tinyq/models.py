"""Demo model builders, deterministic training, a cache of trained demo models, and user-model loading."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .data import Dataset, preprocess
from .errors import ModelError

CACHE_ENV_VAR = "TINYQ_CACHE"
DEMO_MODELS = ("mnist_cnn", "mnist_mlp", "mnist_dsres")


@dataclass(frozen=True)
class TrainConfig:
    """How a demo model is trained; the same config and data give the same weights."""

    epochs: int = 12
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 1234


def _tf():
    import tensorflow as tf

    return tf


def build_mnist_cnn() -> "object":
    """Conv16-Pool-Conv32-Pool-Dense10 softmax, about 13k parameters."""
    keras = _tf().keras
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1), name="image"),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(2, name="pool1"),
            keras.layers.Conv2D(32, 3, activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dropout(0.2, name="dropout"),
            keras.layers.Dense(10, activation="softmax", name="logits"),
        ],
        name="mnist_cnn",
    )


def build_mnist_mlp() -> "object":
    """The classic 784-100-100-10 ReLU MLP with a softmax output."""
    keras = _tf().keras
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28), name="image"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(100, activation="relu", name="fc1"),
            keras.layers.Dense(100, activation="relu", name="fc2"),
            keras.layers.Dense(10, activation="softmax", name="logits"),
        ],
        name="mnist_mlp",
    )


def build_mnist_dsres() -> "object":
    """A small residual net exercising SeparableConv2D, BatchNormalization, AveragePooling2D, Add and Softmax."""
    keras = _tf().keras
    layers = keras.layers
    inp = keras.Input(shape=(28, 28, 1), name="image")
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem")(inp)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    y = layers.SeparableConv2D(16, 3, padding="same", use_bias=False, name="sep1")(x)
    y = layers.BatchNormalization(name="sep1_bn")(y)
    y = layers.ReLU(max_value=6.0, name="sep1_relu6")(y)
    x = layers.Add(name="residual")([x, y])
    x = layers.AveragePooling2D(2, name="avgpool")(x)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="valid", activation="relu", name="dw")(x)
    x = layers.Conv2D(24, 1, activation="relu", name="pointwise")(x)
    x = layers.MaxPooling2D(2, name="maxpool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(10, name="logits")(x)
    out = layers.Softmax(name="softmax")(x)
    return keras.Model(inp, out, name="mnist_dsres")


BUILDERS = {"mnist_cnn": build_mnist_cnn, "mnist_mlp": build_mnist_mlp, "mnist_dsres": build_mnist_dsres}


def input_shape(model) -> tuple[int, ...]:
    """Per-sample input shape of a single-input Keras model, all dimensions known."""
    shape = model.inputs[0].shape
    dims = tuple(shape[1:])
    if any(d is None for d in dims):
        raise ModelError(f"model {model.name!r}: input shape {tuple(shape)} has unknown dimensions besides the batch")
    return tuple(int(d) for d in dims)


def check_supported(model, where: str = "") -> None:
    """Refuse what the device path cannot carry: several inputs or outputs, unknown input dimensions."""
    label = where or f"model {model.name!r}"
    if len(model.inputs) != 1:
        raise ModelError(f"{label}: has {len(model.inputs)} inputs; tinyq supports exactly one")
    if len(model.outputs) != 1:
        raise ModelError(f"{label}: has {len(model.outputs)} outputs; tinyq supports exactly one")
    input_shape(model)


def seed_everything(seed: int) -> None:
    """Fix Python, numpy and TF seeds and ask TF for deterministic kernels; call before building a model."""
    tf = _tf()
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build(name: str, config: TrainConfig = TrainConfig()):
    """An untrained demo model whose initial weights depend only on the config's seed."""
    if name not in BUILDERS:
        raise ModelError(f"unknown demo model {name!r}; choose one of {', '.join(BUILDERS)}")
    seed_everything(config.seed)
    return BUILDERS[name]()


def train(model, data: Dataset, config: TrainConfig = TrainConfig()):
    """Train in place with fixed seeds and deterministic ops; returns the model."""
    tf = _tf()
    seed_everything(config.seed)
    x = preprocess(data.train_x, input_shape(model))
    model.compile(
        optimizer=tf.keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, data.train_y.astype(np.int64), epochs=config.epochs, batch_size=config.batch_size,
              shuffle=True, verbose=0)
    return model


def cache_dir() -> Path:
    """Where trained demo models are kept: $TINYQ_CACHE or ~/.cache/tinyq."""
    return Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "tinyq")


def _cache_key(name: str, data: Dataset, config: TrainConfig) -> str:
    tf = _tf()
    h = hashlib.sha256()
    for part in (name, repr(config), __version__, tf.__version__, tf.keras.__version__):
        h.update(part.encode() + b"\0")
    h.update(np.ascontiguousarray(data.train_x).tobytes())
    h.update(np.ascontiguousarray(data.train_y).tobytes())
    return h.hexdigest()[:16]


def demo_model(name: str, data: Dataset, config: TrainConfig = TrainConfig(), use_cache: bool = True):
    """A trained demo model, from the cache when the same name, data, config and versions were trained before."""
    if name not in BUILDERS:
        raise ModelError(f"unknown demo model {name!r}; choose one of {', '.join(BUILDERS)}")
    path = cache_dir() / f"{name}-{_cache_key(name, data, config)}.keras"
    if use_cache and path.is_file():
        return load_keras_model(path)
    model = train(build(name, config), data, config)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.keras")
        model.save(tmp)
        os.replace(tmp, path)
    return model


def load_keras_model(path: str | os.PathLike):
    """Load a user's .keras (or .h5) model for inference and check tinyq can carry it."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p}: no such model file")
    try:
        model = _tf().keras.models.load_model(p, compile=False)
    except Exception as exc:  # noqa: BLE001 - keras raises many types for a bad file
        raise ModelError(f"{p}: cannot load as a Keras model: {exc}") from exc
    check_supported(model, str(p))
    return model
