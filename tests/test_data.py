"""IDX / npz loading and validation, the TINYQ_MNIST variable, and class-balanced sampling."""

import gzip
import struct

import numpy as np
import pytest

from tinyq import data
from tinyq.errors import DataError

pytestmark = pytest.mark.fast  # no TensorFlow: IDX/npz files it writes, or the shared MNIST folder


def _idx(arr: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def _write_set(folder, n_train=20, n_test=10, gz=True, labels_max=9):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % (labels_max + 1)).astype(np.uint8)
        for stem, blob in ((f"{prefix}-images-idx3-ubyte", _idx(x, 0x803)), (f"{prefix}-labels-idx1-ubyte", _idx(y, 0x801))):
            if gz:
                (folder / (stem + ".gz")).write_bytes(gzip.compress(blob, mtime=0))
            else:
                (folder / stem).write_bytes(blob)
    return folder


def test_shared_data_shapes_and_counts(request):
    import conftest

    if conftest._fast_lane(request.config) and conftest._data_path() is None:
        pytest.skip("no MNIST folder given and none beside the checkout; the fast lane downloads nothing")
    dataset = request.getfixturevalue("dataset")
    assert dataset.train_x.shape == (5000, 28, 28) and dataset.train_x.dtype == np.uint8
    assert dataset.test_x.shape == (10000, 28, 28)
    assert np.bincount(dataset.test_y, minlength=10).sum() == 10000
    assert set(np.unique(dataset.train_y)) == set(range(10))


@pytest.mark.parametrize("gz", [True, False])
def test_reads_gzip_and_raw_idx(tmp_path, gz):
    d = data.load_mnist(_write_set(tmp_path / "m", gz=gz))
    assert d.train_x.shape == (20, 28, 28) and d.test_y.shape == (10,)
    assert d.train_y.tolist() == [i % 10 for i in range(20)]


def test_reads_npz(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=rng.integers(0, 256, (8, 28, 28), dtype=np.uint8), y_train=np.arange(8, dtype=np.uint8),
             x_test=rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), y_test=np.arange(4, dtype=np.uint8))
    d = data.load_mnist(path)
    assert d.train_x.shape == (8, 28, 28) and d.test_y.tolist() == [0, 1, 2, 3]


def test_env_variable_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(_write_set(tmp_path / "env")))
    assert data.load_mnist().source == str(tmp_path / "env")


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        data.load_mnist(tmp_path / "nowhere")


def test_missing_file_in_folder(tmp_path):
    folder = _write_set(tmp_path / "m")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        data.load_mnist(folder)


def test_truncated_idx_names_file(tmp_path):
    folder = _write_set(tmp_path / "m", gz=False)
    f = folder / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: truncated"):
        data.load_mnist(folder)


def test_trailing_bytes(tmp_path):
    folder = _write_set(tmp_path / "m", gz=False)
    f = folder / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes() + b"\0")
    with pytest.raises(DataError, match="trailing bytes"):
        data.load_mnist(folder)


def test_foreign_magic(tmp_path):
    folder = _write_set(tmp_path / "m", gz=False)
    (folder / "train-labels-idx1-ubyte").write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: not an IDX file.*magic 0x504b0304"):
        data.load_mnist(folder)


def test_broken_gzip(tmp_path):
    folder = _write_set(tmp_path / "m")
    f = folder / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: cannot read"):
        data.load_mnist(folder)


def test_label_out_of_range(tmp_path):
    folder = _write_set(tmp_path / "m", labels_max=11, n_train=24)
    with pytest.raises(DataError, match=r"label #\d+ is 1[01], outside 0..9"):
        data.load_mnist(folder)


def test_count_mismatch(tmp_path):
    folder = _write_set(tmp_path / "m", gz=False)
    y = np.zeros(7, dtype=np.uint8)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx(y, 0x801))
    with pytest.raises(DataError, match="10 images but 7 labels"):
        data.load_mnist(folder)


def test_wrong_image_size(tmp_path):
    folder = _write_set(tmp_path / "m", gz=False)
    (folder / "t10k-images-idx3-ubyte").write_bytes(_idx(np.zeros((10, 32, 32), np.uint8), 0x803))
    with pytest.raises(DataError, match=r"shape \(10, 32, 32\), expected \(N, 28, 28\)"):
        data.load_mnist(folder)


def test_npz_missing_array(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="missing array 'y_train'"):
        data.load_mnist(path)


def test_not_an_npz(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_text("hello")
    with pytest.raises(DataError, match="not a readable .npz"):
        data.load_mnist(path)


def test_preprocess_scales_and_reshapes():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = data.preprocess(x, (4,))
    assert out.dtype == np.float32 and out.shape == (1, 4)
    assert np.allclose(out, [[0.0, 1.0, 0.2, 0.4]])
    with pytest.raises(DataError, match="do not fit a model input"):
        data.preprocess(x, (5,))


def test_balanced_indices_are_balanced_and_seeded():
    labels = np.repeat(np.arange(10), [50, 5, 50, 50, 50, 50, 50, 50, 50, 50])
    idx = data.balanced_indices(labels, 100, seed=3)
    counts = np.bincount(labels[idx], minlength=10)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100
    assert counts[1] == 5 and counts.max() - counts[counts != 5].min() <= 1
    assert np.array_equal(idx, data.balanced_indices(labels, 100, seed=3))
    assert not np.array_equal(idx, data.balanced_indices(labels, 100, seed=4))
