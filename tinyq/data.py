"""Datasets: MNIST (IDX or mnist.npz, as for the demo), a user's .npz, .npy, image folder, arrays or
representative-dataset generator; the declared preprocessing from stored values to the model's float input;
and the task kind the labels imply."""

from __future__ import annotations

import enum
import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

ENV_VAR = "TINYQ_MNIST"
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)
MNIST_CLASSES = tuple(str(d) for d in range(NUM_CLASSES))

_IDX_MAGIC_IMAGES = 0x00000803  # unsigned byte, 3 dimensions
_IDX_MAGIC_LABELS = 0x00000801  # unsigned byte, 1 dimension
_SPLITS = {"train": "train", "test": "t10k"}


class ClassOrder(enum.Enum):
    """How class indices were given to named classes: by the labels as stored, by sorted image-folder names, or
    by a --labels file (its line order) that image folders follow."""

    STORED = "the labels as stored"
    FOLDER_NAMES = "sorted folder names"
    LABELS_FILE = "the --labels file"


@dataclass(frozen=True)
class Dataset:
    """Samples as stored (N, ...) for calibration (`train_*`) and test, with optional labels: integer class
    labels (N,), or float targets (N, ...) for a regression; None when there are none."""

    train_x: np.ndarray
    train_y: np.ndarray | None
    test_x: np.ndarray
    test_y: np.ndarray | None
    source: str
    class_names: tuple[str, ...] | None = None
    class_order: ClassOrder = ClassOrder.STORED

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.test_x.shape[1:])


def load_mnist(path: str | os.PathLike | None = None) -> Dataset:
    """Load MNIST from `path` (IDX folder or mnist.npz), else $TINYQ_MNIST, else keras.datasets (network)."""
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    if path is None:
        return _load_keras()
    p = Path(path)
    if p.is_dir():
        return load_idx_folder(p)
    if p.is_file():
        return _load_npz(p)
    raise DataError(f"{p}: no such file or directory (expected an IDX folder or a mnist.npz)")


def read_idx(path: str | os.PathLike, expected_magic: int) -> np.ndarray:
    """Read one IDX file (gzip or raw), checking magic number, dimensions and length."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{p}: cannot read: {exc}") from exc
    if len(raw) < 4:
        raise DataError(f"{p}: truncated: {len(raw)} bytes, no IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise DataError(
            f"{p}: not an IDX file of the expected kind: magic 0x{magic:08x}, expected 0x{expected_magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{p}: truncated header: {len(raw)} bytes, need {header}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"{p}: {what}: {len(raw)} bytes, dimensions {dims} need {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: missing {stem}.gz (or {stem})")


def load_idx_folder(folder: Path) -> Dataset:
    """The MNIST training and test sets from a folder of IDX files (gzip or raw)."""
    arrays = {}
    for split, prefix in _SPLITS.items():
        img_path = _find(folder, f"{prefix}-images-idx3-ubyte")
        lbl_path = _find(folder, f"{prefix}-labels-idx1-ubyte")
        x = read_idx(img_path, _IDX_MAGIC_IMAGES)
        y = read_idx(lbl_path, _IDX_MAGIC_LABELS)
        arrays[split] = _validate(x, y, f"{img_path} / {lbl_path}")
    return Dataset(*arrays["train"], *arrays["test"], source=str(folder), class_names=MNIST_CLASSES)


def _load_npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in npz.files]
            if missing:
                raise DataError(f"{path}: not a Keras mnist.npz: missing array {', '.join(repr(k) for k in missing)}")
            parts = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file: {exc}") from exc
    train = _validate(parts["x_train"], parts["y_train"], f"{path} (x_train/y_train)")
    test = _validate(parts["x_test"], parts["y_test"], f"{path} (x_test/y_test)")
    return Dataset(*train, *test, source=str(path), class_names=MNIST_CLASSES)


def _load_keras() -> Dataset:
    import tensorflow as tf  # heavy optional dependency: only to download MNIST when no copy is given

    try:
        (xtr, ytr), (xte, yte) = tf.keras.datasets.mnist.load_data()
    except Exception as exc:  # noqa: BLE001 - any download failure means the same thing to the user
        raise DataError(
            f"no MNIST path given, ${ENV_VAR} is unset, and keras.datasets.mnist could not download it ({exc}); "
            f"pass a folder of IDX files or a mnist.npz") from exc
    train = _validate(xtr, ytr, "keras.datasets.mnist (train)")
    test = _validate(xte, yte, "keras.datasets.mnist (test)")
    return Dataset(*train, *test, source="keras.datasets.mnist", class_names=MNIST_CLASSES)


def _validate(x: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{where}: images have shape {x.shape}, expected (N, 28, 28)")
    if y.ndim != 1:
        raise DataError(f"{where}: labels have shape {y.shape}, expected (N,)")
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{where}: {x.shape[0]} images but {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise DataError(f"{where}: no images")
    if x.dtype != np.uint8:
        raise DataError(f"{where}: images are {x.dtype}, expected uint8 0..255")
    return x, check_labels(y, NUM_CLASSES, where).astype(np.uint8)


def check_labels(labels, classes: int, where: str) -> np.ndarray:
    """Class labels as int64, refused unless each is an integer in [0, classes): the error names the first bad
    label's index and value (a float label is never truncated, -1 never wraps around)."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise DataError(f"{where}: labels have shape {y.shape}, expected (N,)")
    if y.dtype == bool or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise DataError(f"{where}: labels are {y.dtype}, expected integers 0..{classes - 1}")
    if np.issubdtype(y.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{where}: label #{i} is {y[i].item()!r}, not an integer ({bad.size} such labels); "
                            f"labels are class indices 0..{classes - 1}")
    bad = np.flatnonzero((y < 0) | (y >= classes))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{where}: label #{i} is {y[i].item()!r}, outside 0..{classes - 1} ({bad.size} such "
                        f"labels; there are {classes} classes)")
    return y.astype(np.int64)


def preprocess(images: np.ndarray, input_shape: tuple[int, ...],
               preprocessing: "Preprocessing | None" = None) -> np.ndarray:
    """Stored samples -> float32 model input through the declared preprocessing (default: the MNIST demo's
    raw 0..255 -> 0..1), reshaped to the model's per-sample input shape."""
    images = np.asarray(images)
    per_sample = int(np.prod(images.shape[1:]))
    if per_sample != int(np.prod(input_shape)):
        raise DataError(f"samples of shape {images.shape[1:]} do not fit a model input of shape {input_shape}")
    pre = preprocessing or MNIST_PREPROCESSING
    return pre.apply(images).reshape((images.shape[0],) + tuple(input_shape))


def balanced_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` indices drawn round-robin over classes (as equal as the data allows), in a seeded order."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order = []
    depth = 0
    while len(order) < count and any(depth < len(ix) for ix in per_class):
        order.extend(int(ix[depth]) for ix in per_class if depth < len(ix))
        depth += 1
    return np.array(sorted(order[:count]), dtype=np.int64)


class Task(enum.Enum):
    """What the model's output means, and so how it is scored."""

    CLASSIFICATION = "classification"  # argmax vs integer labels: accuracy, per class, confusion
    REGRESSION = "regression"  # outputs vs float targets: MSE; int8 vs float output error
    RECONSTRUCTION = "reconstruction"  # outputs vs the model's own (preprocessed) input, e.g. an autoencoder
    NONE = "none"  # no labels: agreement between runtimes only


def infer_task(labels: np.ndarray | None, output_size: int) -> Task:
    """Integer labels (N,) -> classification; float targets -> regression; none -> agreement only."""
    if labels is None:
        return Task.NONE
    y = np.asarray(labels)
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer) and output_size > 1:
        return Task.CLASSIFICATION
    return Task.REGRESSION


class PreprocessingKind(enum.Enum):
    """How stored values become the model's float input."""

    RANGE = "range"  # raw 0..255 mapped linearly onto low..high
    STANDARDIZE = "standardize"  # (raw - mean) / std, per channel (last axis) or for all
    AS_STORED = "as_stored"  # the stored values are the model's float input


@dataclass(frozen=True)
class Preprocessing:
    """The declared mapping from stored data to the model's float input, applied identically in calibration,
    Keras float, every int8 runtime and the golden vectors."""

    kind: PreprocessingKind
    low: float = 0.0
    high: float = 1.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.kind, PreprocessingKind):
            raise DataError(f"preprocessing kind must be a PreprocessingKind, got {self.kind!r}")
        if self.kind is PreprocessingKind.RANGE and not self.low < self.high:
            raise DataError(f"input range must be LO HI with LO < HI, got {self.low:g} {self.high:g}")
        if self.kind is PreprocessingKind.STANDARDIZE:
            if not self.mean or not self.std:
                raise DataError("mean/std preprocessing needs both --mean and --std")
            if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
                raise DataError(f"--mean has {len(self.mean)} values, --std {len(self.std)}: give one each, "
                                f"or one per channel for both")
            if any(not s > 0 for s in self.std):
                raise DataError(f"--std values must be > 0, got {list(self.std)}")

    @classmethod
    def input_range(cls, low: float, high: float) -> "Preprocessing":
        """Raw 0..255 -> low..high."""
        return cls(PreprocessingKind.RANGE, float(low), float(high))

    @classmethod
    def standardize(cls, mean, std) -> "Preprocessing":
        """(raw - mean) / std; scalars or one value per channel (last axis)."""
        return cls(PreprocessingKind.STANDARDIZE, mean=tuple(float(m) for m in np.atleast_1d(mean)),
                   std=tuple(float(s) for s in np.atleast_1d(std)))

    @classmethod
    def as_stored(cls) -> "Preprocessing":
        return cls(PreprocessingKind.AS_STORED)

    @property
    def channels(self) -> int:
        """How many per-channel variants the mapping has (1 unless mean/std are per channel)."""
        return max(len(self.mean), len(self.std), 1) if self.kind is PreprocessingKind.STANDARDIZE else 1

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Stored values -> float32 model input."""
        x = np.asarray(raw).astype(np.float32)
        if self.kind is PreprocessingKind.RANGE:
            return x / np.float32(255.0) * np.float32(self.high - self.low) + np.float32(self.low)
        if self.kind is PreprocessingKind.STANDARDIZE:
            mean = np.asarray(self.mean, np.float32)
            std = np.asarray(self.std, np.float32)
            if self.channels > 1 and (x.ndim < 2 or x.shape[-1] != self.channels):
                raise DataError(f"mean/std have {self.channels} values (one per channel) but samples have shape "
                                f"{x.shape[1:]}, last axis {x.shape[-1] if x.ndim else None}")
            return ((x - mean) / std).astype(np.float32)
        return x

    def output_range(self, source_range: tuple[float, float] = (0.0, 255.0)) -> tuple[float, float]:
        """The float input range this mapping produces from stored values in `source_range`."""
        lo, hi = source_range
        ends = self.apply(np.array([[lo] * self.channels, [hi] * self.channels], np.float32))
        return float(ends.min()), float(ends.max())

    def describe(self) -> str:
        """One line for the report, the progress output and the settings header."""
        if self.kind is PreprocessingKind.RANGE:
            return f"raw 0..255 -> {self.low:g}..{self.high:g}"
        if self.kind is PreprocessingKind.STANDARDIZE:
            fmt = lambda v: ", ".join(f"{x:g}" for x in v)  # noqa: E731
            return f"(raw - mean) / std, mean {fmt(self.mean)}, std {fmt(self.std)}"
        return "as stored (the data is the model's float input)"

    def as_dict(self) -> dict:
        """report.json's view."""
        d = {"kind": self.kind.value, "description": self.describe()}
        if self.kind is PreprocessingKind.RANGE:
            d["input_range"] = [self.low, self.high]
        if self.kind is PreprocessingKind.STANDARDIZE:
            d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


MNIST_PREPROCESSING = Preprocessing.input_range(0.0, 1.0)


def default_preprocessing(samples: np.ndarray) -> Preprocessing:
    """When none is declared: raw 0..255 -> 0..1 for uint8 data (the MNIST demo's recipe), else as stored."""
    return MNIST_PREPROCESSING if np.asarray(samples).dtype == np.uint8 else Preprocessing.as_stored()


def reference_range(pre: Preprocessing, calib: np.ndarray, raw: np.ndarray) -> tuple[float, float]:
    """The float input range the calibration audit checks against: what the preprocessing makes of a uint8
    source, else what the calibration data spans."""
    if np.asarray(raw).dtype == np.uint8 and pre.kind is not PreprocessingKind.AS_STORED:
        return pre.output_range()
    lo, hi = float(np.min(calib)), float(np.max(calib))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)
