"""The user's own data: an MNIST IDX folder, a .npz, a .npy of samples, a folder of images with one subfolder
per class, or arrays and a representative-dataset generator from Python; each becomes a Dataset (tinyq.data)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .data import ClassOrder, Dataset, load_idx_folder, load_mnist
from .errors import DataError


@dataclass(frozen=True)
class NpzKeys:
    """Array names inside a .npz: calibration samples/labels and test samples/labels (labels optional)."""

    x_train: str = "x_train"
    y_train: str = "y_train"
    x_test: str = "x_test"
    y_test: str = "y_test"

    @classmethod
    def parse(cls, text: str) -> "NpzKeys":
        """'x_train=images,y_train=labels,...' (any subset of the four)."""
        fields = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in cls.__dataclass_fields__ or not value.strip():
                raise DataError(f"--npz-keys: {part!r} is not ROLE=NAME with ROLE one of "
                                f"{', '.join(cls.__dataclass_fields__)}")
            fields[key.strip()] = value.strip()
        return cls(**fields)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff")


def load_data(path: str | os.PathLike | None, npz_keys: NpzKeys = NpzKeys(),
              calibration: str | os.PathLike | None = None, labels_file: str | os.PathLike | None = None
              ) -> Dataset:
    """A dataset from MNIST IDX (as `load_mnist`), a .npz, a .npy (samples only), or a folder of images
    with one sub-folder per class (optionally inside train/ and test/). A source with one set serves as
    both calibration and test set, unless `calibration` names a separate source. `labels_file` names the
    classes (line i = output i); an image folder's classes then take their indices from it."""
    names = None if labels_file is None else read_labels_file(labels_file)
    if path is None:
        ds = load_mnist(None)
    else:
        p = Path(path)
        if p.is_dir() and _has_idx(p):
            ds = load_idx_folder(p)
        elif p.is_dir():
            ds = load_image_folder(p, names, labels_file)
        elif p.is_file() and p.suffix.lower() == ".npy":
            ds = load_npy(p)
        elif p.is_file():
            ds = load_npz(p, npz_keys)
        else:
            raise DataError(f"{p}: no such file or directory (expected an IDX folder, a .npz, a .npy or a "
                            f"folder of images with one sub-folder per class)")
    if calibration is not None:
        cal = load_data(calibration, npz_keys)
        ds = replace(ds, train_x=cal.train_x, train_y=cal.train_y, source=f"{ds.source} (calibration: {cal.source})")
    if names is not None and ds.class_order is not ClassOrder.LABELS_FILE:
        ds = replace(ds, class_names=names)
    return ds


def _has_idx(folder: Path) -> bool:
    return any((folder / f"train-images-idx3-ubyte{gz}").is_file() for gz in ("", ".gz"))


def read_labels_file(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names, one a line (blank lines ignored), index = output position."""
    p = Path(path)
    try:
        names = tuple(line.strip() for line in p.read_text().splitlines() if line.strip())
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: cannot read class names: {exc}") from exc
    if not names:
        raise DataError(f"{p}: no class names (expected one a line)")
    return names


def check_samples(x: np.ndarray, y: np.ndarray | None, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Any per-sample shape of numbers; labels integer (N,) or float targets (N, ...), or None."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise DataError(f"{where}: samples have shape {x.shape}, expected (N, ...) with one row per sample")
    if x.shape[0] == 0:
        raise DataError(f"{where}: no samples")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{where}: samples are {x.dtype}, expected integers or floats")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise DataError(f"{where}: samples hold {int((~np.isfinite(x)).sum())} NaN/Inf values")
    if y is None:
        return x, None
    y = np.asarray(y)
    if y.ndim == 0 or y.shape[0] != x.shape[0]:
        raise DataError(f"{where}: {x.shape[0]} samples but labels of shape {y.shape}")
    if np.issubdtype(y.dtype, np.integer):
        if y.ndim != 1:
            raise DataError(f"{where}: integer labels have shape {y.shape}, expected (N,)")
        if y.min() < 0:
            raise DataError(f"{where}: label {int(y.min())} is negative")
        return x, y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.floating):
        raise DataError(f"{where}: labels are {y.dtype}, expected integer classes or float targets")
    return x, y


def load_npz(path: Path, keys: NpzKeys = NpzKeys()) -> Dataset:
    """A .npz with calibration and test arrays (labels optional), or a single set as x/y."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file: {exc}") from exc
    if keys.x_test in arrays:
        xte, yte = check_samples(arrays[keys.x_test], arrays.get(keys.y_test), f"{path} ({keys.x_test})")
        if keys.x_train in arrays:
            xtr, ytr = check_samples(arrays[keys.x_train], arrays.get(keys.y_train), f"{path} ({keys.x_train})")
        else:
            xtr, ytr = xte, yte
        return Dataset(xtr, ytr, xte, yte, str(path))
    if "x" in arrays:
        x, y = check_samples(arrays["x"], arrays.get("y"), f"{path} (x)")
        return Dataset(x, y, x, y, f"{path} (calibration and test from the same set)")
    raise DataError(f"{path}: no array {keys.x_test!r} (nor 'x'); it holds {sorted(arrays)}; name the arrays "
                    f"with --npz-keys x_train=...,y_train=...,x_test=...,y_test=...")


def load_npy(path: Path) -> Dataset:
    """A .npy of samples (N, ...) without labels, used for calibration and test alike."""
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy file: {exc}") from exc
    x, _ = check_samples(x, None, str(path))
    return Dataset(x, None, x, None, f"{path} (no labels; calibration and test from the same set)")


def _class_indices(folder: Path, folders: list[str], order: tuple[str, ...] | None,
                   labels_file) -> dict[str, int]:
    """Class folder -> class index: sorted names, or each folder's line in the labels file."""
    if order is None:
        return {name: i for i, name in enumerate(sorted(folders))}
    missing = [name for name in sorted(folders) if name not in order]
    if missing:
        raise DataError(f"{labels_file}: no line for class folder(s) {', '.join(repr(m) for m in missing)} of "
                        f"{folder} (the labels file gives each class folder its index: one name a line)")
    if len(set(order)) != len(order):
        twice = sorted({n for n in order if order.count(n) > 1})
        raise DataError(f"{labels_file}: class name(s) {', '.join(repr(n) for n in twice)} on more than one line")
    return {name: order.index(name) for name in folders}


def _image_split(folder: Path, order: tuple[str, ...] | None = None, labels_file=None
                 ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from PIL import Image  # optional image decoder (65 ms to import): only image folders need it

    folders = [d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if not folders:
        raise DataError(f"{folder}: no class sub-folders (expected one folder of images per class)")
    index = _class_indices(folder, folders, order, labels_file)
    classes = tuple(order) if order is not None else tuple(sorted(folders))
    images, labels, first = [], [], None
    for name in sorted(folders):
        c = index[name]
        files = sorted(f for f in (folder / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{folder / name}: no images ({', '.join(IMAGE_SUFFIXES)})")
        for f in files:
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("L" if im.mode in ("1", "L", "I;16") else "RGB"))
            except OSError as exc:
                raise DataError(f"{f}: cannot read image: {exc}") from exc
            if first is None:
                first = (f, arr.shape)
            elif arr.shape != first[1]:
                raise DataError(f"{f}: image of shape {arr.shape}, but {first[0]} has {first[1]}; all images "
                                f"must have the model's input size")
            images.append(arr)
            labels.append(c)
    return np.stack(images), np.array(labels, np.int64), classes


def load_image_folder(folder: Path, order: tuple[str, ...] | None = None, labels_file=None) -> Dataset:
    """Images in one sub-folder per class, or train/ and test/ holding such. Class indices: the folder names
    sorted, or with `order` (the lines of `labels_file`) each folder's position in it."""
    how = ClassOrder.FOLDER_NAMES if order is None else ClassOrder.LABELS_FILE
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        xtr, ytr, ctr = _image_split(folder / "train", order, labels_file)
        xte, yte, cte = _image_split(folder / "test", order, labels_file)
        if ctr != cte:
            raise DataError(f"{folder}: train/ has classes {list(ctr)}, test/ has {list(cte)}")
        return Dataset(xtr, ytr, xte, yte, str(folder), ctr, how)
    x, y, classes = _image_split(folder, order, labels_file)
    return Dataset(x, y, x, y, f"{folder} (calibration and test from the same set)", classes, how)


def from_arrays(calibration_x: np.ndarray, test_x: np.ndarray, test_y: np.ndarray | None = None,
                calibration_y: np.ndarray | None = None, class_names: Iterable[str] | None = None,
                source: str = "arrays") -> Dataset:
    """A dataset from in-memory arrays (Python API)."""
    xtr, ytr = check_samples(calibration_x, calibration_y, f"{source} (calibration)")
    xte, yte = check_samples(test_x, test_y, f"{source} (test)")
    return Dataset(xtr, ytr, xte, yte, source, None if class_names is None else tuple(class_names))


def from_representative(representative: Callable[[], Iterable], test_x: np.ndarray,
                        test_y: np.ndarray | None = None, class_names: Iterable[str] | None = None) -> Dataset:
    """Calibration samples from a TFLite-style representative dataset (a callable yielding `[input]`, the
    input with or without its batch dimension of 1), with test arrays beside it."""
    samples = []
    for i, item in enumerate(representative()):
        if not isinstance(item, (list, tuple)) or len(item) != 1:
            raise DataError(f"representative dataset: item {i} is {type(item).__name__}, expected [input] "
                            f"(a list holding the one model input)")
        arr = np.asarray(item[0])
        if samples and arr.shape not in (samples[0].shape, (1,) + samples[0].shape):
            raise DataError(f"representative dataset: item {i} has shape {arr.shape}, item 0 {samples[0].shape}")
        samples.append(arr[0] if arr.ndim and arr.shape[0] == 1 and arr.ndim == np.asarray(test_x).ndim else arr)
    if not samples:
        raise DataError("representative dataset yielded nothing")
    return from_arrays(np.stack(samples), test_x, test_y, None, class_names, "representative dataset")
