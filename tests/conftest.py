"""Session fixtures: the dataset, the three demo models trained once, their int8 conversions and verifications;
and the fast lane (`pytest -m fast`): only the files in FAST_FILES are collected, and the run fails if anything
imported TensorFlow.

Nothing here imports TensorFlow: tinyq's modules import it inside the functions that need it, and the modules
the fixtures use are imported inside the fixtures."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
MNIST_ENV_VAR = "TINYQ_MNIST"  # tinyq.data.ENV_VAR (tests/test_data.py checks they agree)
CACHE_ENV_VAR = "TINYQ_CACHE"  # tinyq.models.CACHE_ENV_VAR

FAST_MARK = re.compile(r"pytest\.mark\.fast\b")
# Test files with tests marked `fast` (no TensorFlow at import, each test quick), found by their marker: a new
# family's test file joins the lane by marking its tests.
FAST_FILES = frozenset(p.name for p in Path(__file__).resolve().parent.glob("test_*.py")
                       if FAST_MARK.search(p.read_text()))


def _data_path() -> str | None:
    """$TINYQ_MNIST as an absolute path (a relative one is taken from the folder pytest started in, as the
    README's `TINYQ_MNIST=../shared/data/mnist python3 -m pytest` means), else the shared data folder beside the
    checkout, else None (keras download)."""
    env = os.environ.get(MNIST_ENV_VAR)
    if env:
        return str(Path(env).expanduser().resolve())
    beside = REPO.parent / "shared" / "data" / "mnist"
    return str(beside) if beside.is_dir() else None


# Resolved once, at session start, before any test changes directory: the CLI tests and every subprocess (a
# `tinyq demo` run in another folder) then read the same absolute folder, like a user's shell would give it.
if _data_path() is not None:
    os.environ[MNIST_ENV_VAR] = _data_path()


def _fast_lane(config) -> bool:
    """True when the marker expression selects the fast lane (`-m fast`, `-m "fast and not ..."`)."""
    expr = config.getoption("markexpr", "") or ""
    return "fast" in expr.split() and "not fast" not in expr


def pytest_ignore_collect(collection_path, config):
    """In the fast lane, skip importing the test files that have no fast test (they may import TensorFlow)."""
    if _fast_lane(config) and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return collection_path.name not in FAST_FILES
    return None


def pytest_sessionfinish(session, exitstatus):
    """The fast lane fails when anything imported TensorFlow: it must pass where TensorFlow is not installed."""
    if _fast_lane(session.config) and "tensorflow" in sys.modules:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("FAILED fast lane: tensorflow was imported (the fast lane must not need it)",
                                red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def shared_converter(request):
    """Conversions a test runs without workers of its own share one converter worker per test process, so
    TensorFlow is imported there once, not once per conversion (about 8 s each); a crashed or stopped worker is
    replaced as in any session, and calls with their own workers or time limit keep them."""
    if _fast_lane(request.config):
        yield None
        return
    from tinyq import native, quantize

    real = quantize.session
    shared = native.Workers()

    @contextlib.contextmanager
    def session(workers=None, timeout=None):
        with real(shared if workers is None and timeout is None else workers, timeout) as w:
            yield w

    quantize.session = session
    try:
        yield shared
    finally:
        quantize.session = real
        shared.close()


@pytest.fixture(scope="session")
def dataset():
    from tinyq import data

    return data.load_mnist(_data_path())


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """A fresh model cache for this run, shared by the fixtures and the CLI tests (which then reuse models), and
    by pytest-xdist's workers (`-n 2`), which then train each demo model once between them."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        path = tmp_path_factory.getbasetemp().parent / "model_cache"
        path.mkdir(exist_ok=True)
    else:
        path = tmp_path_factory.mktemp("model_cache")
    old = os.environ.get(CACHE_ENV_VAR)
    os.environ[CACHE_ENV_VAR] = str(path)
    yield path
    if old is None:
        os.environ.pop(CACHE_ENV_VAR, None)
    else:
        os.environ[CACHE_ENV_VAR] = old


def _trained(name, dataset):
    from tinyq import models

    return models.demo_model(name, dataset)


def _quantized(model, dataset):
    from tinyq import data, models, quantize

    x = data.preprocess(dataset.train_x, models.input_shape(model))
    return quantize.quantize(model, x, quantize.QuantizeConfig(), labels=dataset.train_y)


@pytest.fixture(scope="session")
def cnn_keras(dataset):
    return _trained("mnist_cnn", dataset)


@pytest.fixture(scope="session")
def mlp_keras(dataset):
    return _trained("mnist_mlp", dataset)


@pytest.fixture(scope="session")
def dsres_keras(dataset):
    return _trained("mnist_dsres", dataset)


@pytest.fixture(scope="session")
def cnn_q(cnn_keras, dataset):
    return _quantized(cnn_keras, dataset)


@pytest.fixture(scope="session")
def mlp_q(mlp_keras, dataset):
    return _quantized(mlp_keras, dataset)


@pytest.fixture(scope="session")
def dsres_q(dsres_keras, dataset):
    return _quantized(dsres_keras, dataset)


def _verified(keras_model, q, dataset):
    from tinyq import verify

    return verify.verify(keras_model, q, dataset.test_x, dataset.test_y)


@pytest.fixture(scope="session")
def cnn_verify(cnn_keras, cnn_q, dataset):
    return _verified(cnn_keras, cnn_q, dataset)


@pytest.fixture(scope="session")
def mlp_verify(mlp_keras, mlp_q, dataset):
    return _verified(mlp_keras, mlp_q, dataset)


@pytest.fixture(scope="session")
def dsres_verify(dsres_keras, dsres_q, dataset):
    return _verified(dsres_keras, dsres_q, dataset)
