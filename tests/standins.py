"""Stand-ins for the public tinyML benchmark models (same layer types and input shapes, small synthetic data,
quick training) and the files a user would hand tinyq: .keras, Keras 2 .h5 written by tf_keras, int8 .tflite,
and the data as .npz, .npy or an image folder.

Every builder takes the Keras module (Keras 3 `tf.keras` or `tf_keras`) and a width multiplier, so tests use
tiny variants and the acceptance runs (`python tests/standins.py OUT`) full-size ones."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Callable

import numpy as np


def resnet8(keras, width: float = 1.0, classes: int = 10):
    """MLPerf Tiny image classification: ResNet-8 on 32x32x3 (CIFAR-10)."""
    L = keras.layers
    f = [max(2, int(c * width)) for c in (16, 32, 64)]
    inp = keras.Input((32, 32, 3), name="image")
    x = L.Conv2D(f[0], 3, padding="same", name="stem")(inp)
    x = L.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = L.Activation("relu", name="stem_relu")(x)
    for i, (c, s) in enumerate(zip(f, (1, 2, 2))):
        y = L.Conv2D(c, 3, strides=s, padding="same", name=f"s{i}_conv1")(x)
        y = L.BatchNormalization(momentum=0.9, name=f"s{i}_bn1")(y)
        y = L.Activation("relu", name=f"s{i}_relu1")(y)
        y = L.Conv2D(c, 3, padding="same", name=f"s{i}_conv2")(y)
        y = L.BatchNormalization(momentum=0.9, name=f"s{i}_bn2")(y)
        if s != 1:
            x = L.Conv2D(c, 1, strides=s, name=f"s{i}_short")(x)
        x = L.Add(name=f"s{i}_add")([x, y])
        x = L.Activation("relu", name=f"s{i}_relu2")(x)
    x = L.AveragePooling2D(8, name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(classes, activation="softmax", name="logits")(x)
    return keras.Model(inp, out, name="resnet8")


def mobilenet_v1(keras, width: float = 0.25, classes: int = 2, size: int = 96):
    """MLPerf Tiny visual wake words: MobileNetV1 (alpha 0.25) on 96x96x3, DepthwiseConv2D blocks."""
    L = keras.layers

    def ch(c: int) -> int:
        return max(2, int(c * width))

    inp = keras.Input((size, size, 3), name="image")
    x = L.Conv2D(ch(32), 3, strides=2, padding="same", use_bias=False, name="conv1")(inp)
    x = L.BatchNormalization(momentum=0.9, name="conv1_bn")(x)
    x = L.ReLU(6.0, name="conv1_relu")(x)
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for i, (c, s) in enumerate(blocks):
        x = L.DepthwiseConv2D(3, strides=s, padding="same", use_bias=False, name=f"dw{i}")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"dw{i}_bn")(x)
        x = L.ReLU(6.0, name=f"dw{i}_relu")(x)
        x = L.Conv2D(ch(c), 1, use_bias=False, name=f"pw{i}")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"pw{i}_bn")(x)
        x = L.ReLU(6.0, name=f"pw{i}_relu")(x)
    x = L.AveragePooling2D(int(x.shape[1]), name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(classes, activation="softmax", name="logits")(x)
    return keras.Model(inp, out, name="mobilenet_v1_025")


def ds_cnn(keras, width: float = 1.0, classes: int = 12):
    """MLPerf Tiny keyword spotting: DS-CNN on 49x10x1 audio features."""
    L = keras.layers
    c = max(2, int(64 * width))
    inp = keras.Input((49, 10, 1), name="features")
    x = L.Conv2D(c, (10, 4), strides=2, padding="same", name="conv1")(inp)
    x = L.BatchNormalization(momentum=0.9, name="conv1_bn")(x)
    x = L.Activation("relu", name="conv1_relu")(x)
    for i in range(4):
        x = L.DepthwiseConv2D(3, padding="same", name=f"dw{i}")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"dw{i}_bn")(x)
        x = L.Activation("relu", name=f"dw{i}_relu")(x)
        x = L.Conv2D(c, 1, name=f"pw{i}")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"pw{i}_bn")(x)
        x = L.Activation("relu", name=f"pw{i}_relu")(x)
    x = L.AveragePooling2D((int(x.shape[1]), int(x.shape[2])), name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(classes, activation="softmax", name="logits")(x)
    return keras.Model(inp, out, name="ds_cnn")


def fc_autoencoder(keras, width: float = 1.0, inputs: int = 640):
    """MLPerf Tiny anomaly detection: a 640-input fully-connected autoencoder (128-wide, 8-wide bottleneck)."""
    L = keras.layers
    w = max(2, int(128 * width))
    inp = keras.Input((inputs,), name="features")
    x = inp
    for i, units in enumerate([w] * 4 + [8] + [w] * 4):
        x = L.Dense(units, name=f"fc{i}")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"fc{i}_bn")(x)
        x = L.Activation("relu", name=f"fc{i}_relu")(x)
    out = L.Dense(inputs, name="reconstruction")(x)
    return keras.Model(inp, out, name="fc_autoencoder")


def odd_op_classifier(keras, op: str = "sqdiff"):
    """A small CNN with an op outside the usual set, for the pre-flight and degrade paths:
    'abs' (ABS: TFLM runs it, tinyq's C engine does not), 'sqdiff' (SQUARED_DIFFERENCE), 'gap' (GlobalAveragePooling2D,
    MEAN), 'gelu' (GELU: neither TFLM's op resolver nor the C engine)."""
    import tensorflow as tf

    L = keras.layers
    inp = keras.Input((12, 12, 3), name="image")
    x = L.Conv2D(4, 3, activation="relu", name="conv")(inp)
    if op == "gap":
        x = L.GlobalAveragePooling2D(name="gap")(x)
    else:
        x = L.Flatten(name="flatten")(x)
        x = L.Dense(6, name="fc")(x)
        if op == "abs":
            x = L.Lambda(lambda t: tf.math.abs(t), name="abs")(x)
        elif op == "sqdiff":
            x = L.Lambda(lambda t: tf.math.squared_difference(t, 0.5), name="sqdiff")(x)
        elif op == "gelu":
            x = L.Activation("gelu", name="gelu")(x)
    out = L.Dense(3, activation="softmax", name="logits")(x)
    return keras.Model(inp, out, name=f"{op}_classifier")


@dataclasses.dataclass(frozen=True)
class Synthetic:
    """Synthetic data: calibration/train and test samples as stored, labels or None."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None


def image_classes(shape: tuple[int, ...], classes: int, n_train: int, n_test: int, seed: int = 0) -> Synthetic:
    """uint8 images: a fixed random template per class plus noise; learnable in an epoch or two."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, (classes,) + shape)

    def make(n: int):
        y = np.arange(n) % classes
        rng.shuffle(y)
        x = 0.6 * templates[y] + 0.4 * rng.uniform(0, 255, (n,) + shape)
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    return Synthetic(xtr, ytr, xte, yte)


def audio_features(classes: int, n_train: int, n_test: int, seed: int = 1) -> Synthetic:
    """float32 MFCC-like features (49x10x1, roughly -60..40) per keyword class, for --mean/--std."""
    rng = np.random.default_rng(seed)
    templates = rng.normal(-10, 20, (classes, 49, 10, 1))

    def make(n: int):
        y = np.arange(n) % classes
        rng.shuffle(y)
        return (templates[y] + rng.normal(0, 8, (n, 49, 10, 1))).astype(np.float32), y.astype(np.int64)

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    return Synthetic(xtr, ytr, xte, yte)


def machine_sounds(n_train: int, n_test: int, inputs: int = 640, seed: int = 2) -> Synthetic:
    """float32 log-mel-like frames (640 values, 0..1) on a low-dimensional manifold; no labels."""
    rng = np.random.default_rng(seed)
    basis = rng.uniform(0, 1, (6, inputs))

    def make(n: int):
        mix = rng.dirichlet(np.ones(6), n)
        return np.clip(mix @ basis + rng.normal(0, 0.02, (n, inputs)), 0, 1).astype(np.float32)

    return Synthetic(make(n_train), None, make(n_test), None)


def train(model, data: Synthetic, preprocess: Callable[[np.ndarray], np.ndarray], epochs: int = 3,
          reconstruction: bool = False, seed: int = 0):
    """A quick deterministic fit: cross-entropy on labels, or MSE against the input."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    x = preprocess(data.x_train)
    if reconstruction:
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, x, epochs=epochs, batch_size=32, verbose=0)
    else:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


def copy_weights_to_tf_keras(model, builder: Callable, *args, **kwargs):
    """The same architecture built in tf_keras (Keras 2) with the Keras 3 model's weights."""
    import tf_keras

    twin = builder(tf_keras, *args, **kwargs)
    twin.set_weights(model.get_weights())
    return twin


def int8_tflite(model, calibration: np.ndarray) -> bytes:
    """A full-integer int8 .tflite as someone else's converter run would make it (batch 1, int8 I/O)."""
    from tinyq.quantize import QuantizeConfig, quantize

    lo, hi = float(calibration.min()), float(calibration.max())
    q = quantize(model, calibration, QuantizeConfig(num_calibration_samples=min(200, len(calibration)),
                                                    input_range=(lo, hi), balanced=False))
    return q.tflite


def save_npz(path: Path, data: Synthetic) -> Path:
    arrays = {"x_train": data.x_train, "x_test": data.x_test}
    if data.y_train is not None:
        arrays.update(y_train=data.y_train, y_test=data.y_test)
    np.savez(path, **arrays)
    return path


def save_image_folder(root: Path, data: Synthetic, names: tuple[str, ...]) -> Path:
    """train/<class>/*.png and test/<class>/*.png."""
    from PIL import Image

    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        for i, (img, label) in enumerate(zip(x, y)):
            folder = root / split / names[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:05d}.png")
    return root


def save_model_files(out: Path, stem: str, model, builder, build_args: tuple, calibration: np.ndarray) -> dict:
    """stem.keras, stem.h5 (Keras 2, written by tf_keras) and stem_int8.tflite."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"keras": out / f"{stem}.keras", "h5": out / f"{stem}.h5", "tflite": out / f"{stem}_int8.tflite"}
    model.save(paths["keras"])
    copy_weights_to_tf_keras(model, builder, *build_args).save(paths["h5"])
    paths["tflite"].write_bytes(int8_tflite(model, calibration))
    return paths


def make_all(out: Path, full: bool = True) -> dict:
    """The four stand-ins with their data and model files under `out`; returns {name: (paths, data path, args)}."""
    import tensorflow as tf

    keras = tf.keras
    n_train, n_test = (2000, 1000) if full else (200, 60)
    made = {}
    cifar = image_classes((32, 32, 3), 10, n_train, n_test)
    m = train(resnet8(keras, 1.0 if full else 0.25), cifar, lambda x: x / 255.0)
    paths = save_model_files(out, "cifar_resnet8", m, resnet8, (1.0 if full else 0.25,), cifar.x_train[:200] / 255.0)
    made["resnet8"] = (paths, save_npz(out / "cifar_like.npz", cifar), ["--input-range", "0", "1"])
    vww = image_classes((96, 96, 3), 2, n_train // 2, n_test // 2, seed=3)
    m = train(mobilenet_v1(keras, 0.25 if full else 0.1), vww, lambda x: x / 127.5 - 1.0)
    paths = save_model_files(out, "vww_mobilenet_v1_025", m, mobilenet_v1, (0.25 if full else 0.1,),
                             vww.x_train[:200] / 127.5 - 1.0)
    made["mobilenet"] = (paths, save_image_folder(out / "vww_images", vww, ("non_person", "person")),
                         ["--input-range", "-1", "1"])
    kws = audio_features(12, n_train, n_test)
    mean, std = float(kws.x_train.mean()), float(kws.x_train.std())
    m = train(ds_cnn(keras, 1.0 if full else 0.25), kws, lambda x: (x - mean) / std)
    paths = save_model_files(out, "kws_ds_cnn", m, ds_cnn, (1.0 if full else 0.25,),
                             (kws.x_train[:200] - mean) / std)
    made["ds_cnn"] = (paths, save_npz(out / "kws_features.npz", kws),
                      ["--mean", f"{mean:.6f}", "--std", f"{std:.6f}"])
    ad = machine_sounds(n_train, n_test)
    m = train(fc_autoencoder(keras, 1.0 if full else 0.125), ad, lambda x: x, epochs=3, reconstruction=True)
    paths = save_model_files(out, "ad_autoencoder", m, fc_autoencoder, (1.0 if full else 0.125,), ad.x_train[:200])
    made["autoencoder"] = (paths, save_npz(out / "machine_frames.npz", ad), ["--as-stored", "--task", "reconstruction"])
    return made


if __name__ == "__main__":
    import json

    result = make_all(Path(sys.argv[1]), full=len(sys.argv) < 3 or sys.argv[2] != "tiny")
    print(json.dumps({k: {"models": {f: str(p) for f, p in v[0].items()}, "data": str(v[1]), "args": v[2]}
                      for k, v in result.items()}, indent=2))
