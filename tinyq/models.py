"""Demo model builders, deterministic training, a cache of trained demo models, and user-model loading."""

from __future__ import annotations

import enum
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .data import Dataset, preprocess
from .engine import Graph, read_graph
from .errors import InvalidModelError, ModelError, NativeCrash, NativeTimeout, TinyqError
from .native import Workers
from .qmodel import QuantizedModel, inspect_tflite

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
    import tensorflow as tf  # heavy optional dependency: loaded only when a Keras model is built or read

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
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        ins = [getattr(t, "name", str(t)) for t in model.inputs]
        outs = [getattr(t, "name", str(t)) for t in model.outputs]
        raise ModelError(f"{label}: has {len(ins)} inputs {ins} and {len(outs)} outputs {outs}; tinyq supports "
                         f"exactly one input and one output")
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


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _producer(name: str, key: str, config: TrainConfig) -> dict:
    """What a cache entry records about how it was made, besides its content hash."""
    tf = _tf()
    return {"model": name, "key": key, "train_config": repr(config), "tinyq": __version__,
            "tensorflow": tf.__version__, "keras": tf.keras.__version__}


def _cache_problem(path: Path, sidecar: Path, producer: dict) -> str | None:
    """Why a cache entry cannot be trusted (None if it can): its sidecar is missing or broken, says another
    producer made it, or its content hash does not match the file."""
    if not path.is_file():
        return "has no model file"
    try:
        record = json.loads(sidecar.read_text())
    except FileNotFoundError:
        return f"has no record of what produced it ({sidecar.name} missing)"
    except (OSError, ValueError) as exc:
        return f"has an unreadable record {sidecar.name} ({exc})"
    if not isinstance(record, dict):
        return f"has an unreadable record {sidecar.name}"
    differs = [k for k, v in producer.items() if record.get(k) != v]
    if differs:
        return f"was produced differently ({', '.join(differs)} differ)"
    if record.get("sha256") != _sha256_file(path):
        return "is corrupt or was replaced (content hash mismatch)"
    return None


def demo_model(name: str, data: Dataset, config: TrainConfig = TrainConfig(), use_cache: bool = True,
               progress=None):
    """A trained demo model, from the cache when the same name, data, config and versions were trained before.

    A cache entry is a .keras file and a JSON sidecar with its sha256 and what produced it; an entry that
    is corrupt, replaced, unrecorded or does not load is rebuilt, saying why through `progress`."""
    if name not in BUILDERS:
        raise ModelError(f"unknown demo model {name!r}; choose one of {', '.join(BUILDERS)}")
    say = progress or (lambda _msg: None)
    key = _cache_key(name, data, config)
    path = cache_dir() / f"{name}-{key}.keras"
    sidecar = path.with_suffix(".json")
    producer = _producer(name, key, config)
    if use_cache and (path.exists() or sidecar.exists()):
        problem = _cache_problem(path, sidecar, producer)
        if problem is None:
            try:
                model = load_keras_model(path)
            except ModelError as exc:
                problem = f"does not load ({exc})"
            else:
                if model.name == name:
                    return model
                problem = f"holds model {model.name!r}, not {name!r}"
        say(f"model cache: {path} {problem}; retraining {name}")
        for stale in (path, sidecar):
            stale.unlink(missing_ok=True)
    model = train(build(name, config), data, config)
    if use_cache:
        _cache_store(model, path, sidecar, producer)
    return model


def _cache_store(model, path: Path, sidecar: Path, producer: dict) -> None:
    """Write the model, then its sidecar (each by rename): an entry killed half-way has no sidecar, so it is
    rebuilt rather than trusted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.keras")
    model.save(tmp)
    record = dict(producer, sha256=_sha256_file(tmp))
    os.replace(tmp, path)
    tmp_side = sidecar.with_suffix(f".tmp{os.getpid()}.json")
    tmp_side.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_side, sidecar)


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


class ModelKind(enum.Enum):
    """What a model file turned out to be."""

    KERAS = "Keras 3 model"
    KERAS2 = "Keras 2 model (loaded with tf_keras)"
    SAVED_MODEL = "SavedModel"
    TFLITE_INT8 = "full-integer .tflite"


@dataclass(frozen=True)
class TfliteModel:
    """An already quantized full-integer .tflite: quantization is skipped, everything after it runs."""

    name: str
    tflite: bytes
    path: str
    quantized: QuantizedModel = field(compare=False, repr=False)  # its description, with the checked Graph


@dataclass(frozen=True)
class LoadedModel:
    """A model from a file: a Keras model (`keras`) or an int8 .tflite (`tflite`), and what it was."""

    kind: ModelKind
    path: str
    keras: object | None = None
    tflite: TfliteModel | None = None

    @property
    def model(self):
        """What pipeline.run takes: the Keras model, or the TfliteModel."""
        return self.keras if self.keras is not None else self.tflite


def is_tflite(data: bytes) -> bool:
    """A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..8."""
    return len(data) >= 8 and data[4:8] == b"TFL3"


def keras_module(model):
    """The Keras the model belongs to: tf_keras (Keras 2) for models it loaded, else tf.keras (Keras 3)."""
    if type(model).__module__.startswith("tf_keras"):
        import tf_keras  # heavy optional dependency (Keras 2): only for its own models

        return tf_keras
    return _tf().keras


def load_model(path: str | os.PathLike, progress=None, workers: Workers | None = None) -> LoadedModel:
    """A .keras, a Keras 2 .h5 (Keras 3 first, then tf_keras where Keras 3 refuses, saying so through
    `progress`), a SavedModel folder, or a full-integer .tflite (checked in LiteRT's worker of `workers`, else
    of a fresh session); refuses other files naming the reason."""
    say = progress or (lambda _msg: None)
    p = Path(path)
    if p.is_dir():
        if not (p / "saved_model.pb").is_file():
            raise ModelError(f"{p}: a folder but not a SavedModel (no saved_model.pb)")
        return LoadedModel(ModelKind.SAVED_MODEL, str(p), keras=_load_saved_model(p, say))
    if not p.is_file():
        raise ModelError(f"{p}: no such model file")
    try:
        head = p.open("rb").read(8)
    except OSError as exc:
        raise ModelError(f"{p}: cannot read: {exc}") from exc
    if is_tflite(head):
        return LoadedModel(ModelKind.TFLITE_INT8, str(p), tflite=load_tflite(p, workers))
    if p.suffix.lower() == ".tflite":
        raise ModelError(f"{p}: named .tflite but not a TFLite flatbuffer (no 'TFL3' identifier at byte 4)")
    try:
        model = _tf().keras.models.load_model(p, compile=False)
        kind = ModelKind.KERAS
    except Exception as exc:  # noqa: BLE001 - keras raises many types for a bad or foreign file
        if head[:4] != b"\x89HDF":
            raise ModelError(f"{p}: cannot load as a Keras model: {exc}") from exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        say(f"Keras 3 cannot load {p.name} ({first[:160]}); loading it with tf_keras (Keras 2)")
        model = _load_tf_keras(p, exc)
        kind = ModelKind.KERAS2
    check_supported(model, str(p))
    return LoadedModel(kind, str(p), keras=model)


def _load_tf_keras(p: Path, keras3_error: Exception):
    try:
        import tf_keras  # heavy optional dependency (Keras 2): only where Keras 3 refuses the file
    except ImportError as exc:
        raise ModelError(f"{p}: Keras 3 cannot load it ({keras3_error}) and tf_keras (Keras 2) is not installed "
                         f"(pip install tf-keras)") from exc
    try:
        return tf_keras.models.load_model(p, compile=False)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{p}: cannot load as a Keras model: Keras 3 said {keras3_error}; tf_keras said {exc}"
                         ) from exc


def _load_saved_model(p: Path, say):
    """A SavedModel as a Keras model: tf_keras restores Keras-2-saved ones whole; any other becomes one
    TFSMLayer over its serving signature (enough to predict and convert; no per-layer analysis)."""
    try:
        import tf_keras  # heavy optional dependency (Keras 2): only for a SavedModel

        model = tf_keras.models.load_model(p, compile=False)
        check_supported(model, str(p))
        say(f"{p.name}: SavedModel loaded with tf_keras (Keras 2)")
        return model
    except ModelError:
        raise
    except Exception:  # noqa: BLE001 - not a Keras-2 SavedModel: fall through to its signature
        pass
    tf = _tf()
    try:
        sig = tf.saved_model.load(str(p)).signatures["serving_default"]
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{p}: cannot load the SavedModel's serving_default signature: {exc}") from exc
    specs = sig.structured_input_signature[1]
    outs = sig.structured_outputs
    if len(specs) != 1 or len(outs) != 1:
        raise ModelError(f"{p}: has inputs {sorted(specs)} and outputs {sorted(outs)}; tinyq supports exactly one "
                         f"input and one output")
    (in_name, spec), = specs.items()
    keras = tf.keras
    inp = keras.Input(shape=tuple(spec.shape[1:]), name=in_name)
    out = keras.layers.TFSMLayer(str(p), call_endpoint="serving_default")(inp)
    if isinstance(out, dict):
        out = next(iter(out.values()))
    say(f"{p.name}: SavedModel wrapped as one layer over its serving signature")
    model = keras.Model(inp, out, name=c_name(p))
    check_supported(model, str(p))
    return model


def c_name(p: Path) -> str:
    """The file's name without its model suffix ('cifar_resnet8.h5' -> 'cifar_resnet8')."""
    name = p.name
    for suffix in (".keras", ".h5", ".hdf5", ".tflite"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def load_tflite(p: Path, workers: Workers | None = None) -> TfliteModel:
    """A full-integer .tflite; a float or hybrid one is refused with the reason (quantization needs the
    TensorFlow model), and so is one with several inputs or outputs, naming the tensors. LiteRT reads it in
    `workers` (else a fresh session)."""
    data = p.read_bytes()
    try:
        graph = read_graph(data)  # the one gate: no runtime sees the bytes before the reader accepts them
    except InvalidModelError as exc:
        raise InvalidModelError(f"{p}: {exc}") from None
    _check_tflite_io(graph, p)
    try:
        quantized = inspect_tflite(data, c_name(p), graph=graph, workers=workers)
    except (NativeCrash, NativeTimeout):
        raise  # LiteRT died or hung on it: that, not the model's types, is the news
    except TinyqError as exc:
        raise ModelError(
            f"{p}: not a full-integer int8 .tflite, so tinyq cannot take it as it is, and cannot quantize it "
            f"either: TFLiteConverter calibrates and quantizes the TensorFlow/Keras model, not a converted "
            f".tflite. Give the .keras/.h5/SavedModel it came from. Details: {exc}") from exc
    return TfliteModel(c_name(p), data, str(p), quantized)


def _check_tflite_io(graph: Graph, p: Path) -> None:
    names = [[graph.tensors[t].name for t in ids] for ids in (graph.inputs, graph.outputs)]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ModelError(f"{p}: has {len(names[0])} inputs {names[0]} and {len(names[1])} outputs {names[1]}; tinyq "
                         f"supports exactly one input and one output")
