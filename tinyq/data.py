"""MNIST loading: IDX (gzip or raw) or Keras mnist.npz, validated, from a path, $TINYQ_MNIST or keras."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

ENV_VAR = "TINYQ_MNIST"
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)

_IDX_MAGIC_IMAGES = 0x00000803  # unsigned byte, 3 dimensions
_IDX_MAGIC_LABELS = 0x00000801  # unsigned byte, 1 dimension
_SPLITS = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class Dataset:
    """uint8 images (N, 28, 28) and uint8 labels (N,) for a training and a test split."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str


def load_mnist(path: str | os.PathLike | None = None) -> Dataset:
    """Load MNIST from `path` (IDX folder or mnist.npz), else $TINYQ_MNIST, else keras.datasets (network)."""
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    if path is None:
        return _load_keras()
    p = Path(path)
    if p.is_dir():
        return _load_idx_dir(p)
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


def _load_idx_dir(folder: Path) -> Dataset:
    arrays = {}
    for split, prefix in _SPLITS.items():
        img_path = _find(folder, f"{prefix}-images-idx3-ubyte")
        lbl_path = _find(folder, f"{prefix}-labels-idx1-ubyte")
        x = read_idx(img_path, _IDX_MAGIC_IMAGES)
        y = read_idx(lbl_path, _IDX_MAGIC_LABELS)
        arrays[split] = _validate(x, y, f"{img_path} / {lbl_path}")
    return Dataset(*arrays["train"], *arrays["test"], source=str(folder))


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
    return Dataset(*train, *test, source=str(path))


def _load_keras() -> Dataset:
    import tensorflow as tf

    try:
        (xtr, ytr), (xte, yte) = tf.keras.datasets.mnist.load_data()
    except Exception as exc:  # noqa: BLE001 - any download failure means the same thing to the user
        raise DataError(
            f"no MNIST path given, ${ENV_VAR} is unset, and keras.datasets.mnist could not download it ({exc}); "
            f"pass a folder of IDX files or a mnist.npz") from exc
    train = _validate(xtr, ytr, "keras.datasets.mnist (train)")
    test = _validate(xte, yte, "keras.datasets.mnist (test)")
    return Dataset(*train, *test, source="keras.datasets.mnist")


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


def preprocess(images: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """uint8 images -> float32 in 0..1, reshaped to the model's per-sample input shape (the training recipe)."""
    images = np.asarray(images)
    per_sample = int(np.prod(images.shape[1:]))
    if per_sample != int(np.prod(input_shape)):
        raise DataError(f"images of shape {images.shape[1:]} do not fit a model input of shape {input_shape}")
    return (images.astype(np.float32) / 255.0).reshape((images.shape[0],) + tuple(input_shape))


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
