"""A user's data: .npz / .npy / image folder / arrays / representative generator, the declared preprocessing
and its uint8 -> int8 table, task kinds and their metrics, and which model files are taken or refused."""

import numpy as np
import pytest

from tinyq import data, models, userdata
from tinyq.data import Preprocessing, PreprocessingKind, Task
from tinyq.errors import DataError, ModelError
from tinyq.quantize import TensorQuant
from tinyq.verify import Scorer, output_error, quantize_input


def _images(n, shape=(6, 5, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n,) + shape, dtype=np.uint8)


def test_npz_with_standard_keys(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x_train=_images(12), y_train=np.arange(12) % 3, x_test=_images(6, seed=1), y_test=np.arange(6) % 3)
    ds = userdata.load_data(p)
    assert ds.train_x.shape == (12, 6, 5, 3) and ds.test_x.shape == (6, 6, 5, 3)
    assert ds.test_y.dtype == np.int64 and ds.test_y.tolist() == [0, 1, 2, 0, 1, 2]
    assert ds.sample_shape == (6, 5, 3)


def test_npz_with_named_keys_and_missing_keys(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, calib=_images(4), val=_images(3), val_targets=np.zeros((3, 2), np.float32))
    ds = userdata.load_data(p, userdata.NpzKeys.parse("x_train=calib,x_test=val,y_test=val_targets"))
    assert ds.train_x.shape[0] == 4 and ds.train_y is None and ds.test_y.shape == (3, 2)
    with pytest.raises(DataError, match=r"no array 'x_test'.*\['calib', 'val', 'val_targets'\].*--npz-keys"):
        userdata.load_data(p)
    with pytest.raises(DataError, match="ROLE=NAME"):
        userdata.NpzKeys.parse("images=calib")


def test_npz_single_set_and_npy_without_labels(tmp_path):
    np.savez(tmp_path / "one.npz", x=np.ones((5, 640), np.float32), y=np.arange(5))
    ds = userdata.load_data(tmp_path / "one.npz")
    assert ds.train_x is ds.test_x and "same set" in ds.source
    np.save(tmp_path / "x.npy", np.ones((7, 49, 10, 1), np.float32))
    ds = userdata.load_data(tmp_path / "x.npy")
    assert ds.test_x.shape == (7, 49, 10, 1) and ds.test_y is None and ds.train_y is None


def test_separate_calibration_set_and_labels_file(tmp_path):
    np.save(tmp_path / "cal.npy", _images(9))
    np.savez(tmp_path / "test.npz", x_test=_images(4), y_test=np.array([0, 1, 1, 0]))
    (tmp_path / "labels.txt").write_text("cat\n\ndog\n")
    ds = userdata.load_data(tmp_path / "test.npz", calibration=tmp_path / "cal.npy", labels_file=tmp_path / "labels.txt")
    assert ds.train_x.shape[0] == 9 and ds.test_x.shape[0] == 4 and ds.class_names == ("cat", "dog")
    assert "calibration" in ds.source


def test_bad_samples_are_named(tmp_path):
    np.savez(tmp_path / "nan.npz", x=np.full((2, 3), np.nan, np.float32))
    with pytest.raises(DataError, match=r"nan.npz \(x\): samples hold 6 NaN/Inf"):
        userdata.load_data(tmp_path / "nan.npz")
    np.savez(tmp_path / "count.npz", x=np.ones((3, 4)), y=np.arange(2))
    with pytest.raises(DataError, match="3 samples but labels of shape"):
        userdata.load_data(tmp_path / "count.npz")


def test_image_folder_flat_and_split(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        for c, name in enumerate(("no", "yes")):
            folder = tmp_path / "split" / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(_images(1, (8, 8, 3), seed=10 * c + i)[0]).save(folder / f"{i}.png")
    ds = userdata.load_data(tmp_path / "split")
    assert ds.train_x.shape == (6, 8, 8, 3) and ds.train_x.dtype == np.uint8
    assert ds.class_names == ("no", "yes") and ds.test_y.tolist() == [0, 0, 0, 1, 1, 1]
    flat = tmp_path / "flat"
    for c in ("a", "b"):
        (flat / c).mkdir(parents=True)
        Image.fromarray(np.full((4, 4), 7 if c == "a" else 200, np.uint8)).save(flat / c / "x.png")
    ds = userdata.load_data(flat)
    assert ds.test_x.shape == (2, 4, 4) and ds.test_x[1, 0, 0] == 200 and ds.train_x is ds.test_x
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(flat / "b" / "y.png")
    with pytest.raises(DataError, match=r"y.png: image of shape \(5, 4\), but .* has \(4, 4\)"):
        userdata.load_data(flat)


def test_arrays_and_representative_generator():
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)

    def representative():
        for row in x[:6]:
            yield [row[np.newaxis]]

    ds = userdata.from_representative(representative, x, np.arange(10) % 2)
    assert ds.train_x.shape == (6, 4) and np.array_equal(ds.train_x, x[:6])
    with pytest.raises(DataError, match="expected \\[input\\]"):
        userdata.from_representative(lambda: iter([x[0]]), x)
    ds = userdata.from_arrays(x[:3], x, class_names=["u", "v"])
    assert ds.test_y is None and ds.class_names == ("u", "v")


def test_mnist_preprocessing_is_todays_division_by_255():
    raw = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    assert np.array_equal(data.preprocess(raw, (256,)), (raw.astype(np.float32) / 255.0).reshape(1, 256))
    assert data.default_preprocessing(raw) == data.MNIST_PREPROCESSING
    assert data.default_preprocessing(raw.astype(np.float32)).kind is PreprocessingKind.AS_STORED


def test_declared_preprocessing_kinds():
    raw = np.array([[[0, 255, 51]]], np.uint8)
    assert Preprocessing.input_range(-1, 1).apply(raw).ravel().tolist() == pytest.approx([-1.0, 1.0, -0.6])
    per_channel = Preprocessing.standardize([0, 255, 1], [1, 5, 10])
    assert per_channel.apply(raw).ravel().tolist() == pytest.approx([0.0, 0.0, 5.0])
    assert Preprocessing.as_stored().apply(raw).dtype == np.float32
    assert per_channel.as_dict()["mean"] == [0.0, 255.0, 1.0]
    assert Preprocessing.input_range(0, 255).output_range() == (0.0, 255.0)
    with pytest.raises(DataError, match="one per channel"):
        per_channel.apply(np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(DataError, match="LO < HI"):
        Preprocessing.input_range(1, 1)
    with pytest.raises(DataError, match="> 0"):
        Preprocessing.standardize(0, 0)


def test_uint8_table_is_what_every_runtime_is_fed():
    from tinyq.emit import input_table

    q = TensorQuant("in", (1, 4, 3), "int8", 0.0123, 5)
    for pre in (Preprocessing.input_range(-1, 1), Preprocessing.standardize([120, 110, 100], [60, 50, 40])):
        table = input_table(pre, q)
        raw = np.random.default_rng(0).integers(0, 256, (20, 4, 3), dtype=np.uint8)
        fed = quantize_input(pre.apply(raw), q)
        looked_up = table[np.arange(3)[None, None, :] % pre.channels, raw]
        assert table.shape == (pre.channels, 256) and np.array_equal(fed, looked_up)


def test_task_inference_and_metrics():
    assert data.infer_task(np.array([0, 2, 1]), 3) is Task.CLASSIFICATION
    assert data.infer_task(np.zeros((3, 2), np.float32), 2) is Task.REGRESSION
    assert data.infer_task(None, 10) is Task.NONE
    q = TensorQuant("out", (1, 2), "int8", 0.5, 0)
    targets = np.array([[1.0, 2.0], [0.0, 0.0]])
    assert Scorer(Task.REGRESSION, None, targets, q)(np.array([[2, 4], [0, 2]], np.int8)) == pytest.approx(0.25)
    assert Scorer(Task.NONE, None, None, q)(np.zeros((2, 2), np.int8)) is None
    assert Scorer(Task.CLASSIFICATION, np.array([1, 0]), None, q)(np.array([[0, 3], [1, 0]])) == 1.0
    e = output_error(np.array([3.0, 4.0]), np.array([3.0, 3.0]))
    assert e.mse == pytest.approx(0.5) and e.sqnr_db == pytest.approx(10 * np.log10(25.0))


def test_model_files_by_content(tmp_path):
    assert models.is_tflite(b"\0\0\0\0TFL3rest") and not models.is_tflite(b"\x89HDF\r\n\x1a\n")
    assert models.c_name(tmp_path / "cifar_resnet8.h5") == "cifar_resnet8"
    (tmp_path / "fake.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        models.load_model(tmp_path / "fake.tflite")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelError, match="not a SavedModel"):
        models.load_model(tmp_path / "folder")
