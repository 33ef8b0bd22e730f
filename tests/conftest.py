"""Session fixtures: the dataset, the three demo models trained once, their int8 conversions and verifications."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tinyq import data, models, quantize, verify  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _data_path() -> str | None:
    """$TINYQ_MNIST, else the shared data folder beside the checkout, else None (keras download)."""
    env = os.environ.get(data.ENV_VAR)
    if env:
        return env
    beside = REPO.parent / "shared" / "data" / "mnist"
    return str(beside) if beside.is_dir() else None


if _data_path() is not None:
    os.environ.setdefault(data.ENV_VAR, _data_path())  # the CLI tests read it like a user's shell would


@pytest.fixture(scope="session")
def dataset() -> data.Dataset:
    return data.load_mnist(_data_path())


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """A fresh model cache for this run, shared by the fixtures and the CLI tests (which then reuse models)."""
    path = tmp_path_factory.mktemp("model_cache")
    old = os.environ.get(models.CACHE_ENV_VAR)
    os.environ[models.CACHE_ENV_VAR] = str(path)
    yield path
    if old is None:
        os.environ.pop(models.CACHE_ENV_VAR, None)
    else:
        os.environ[models.CACHE_ENV_VAR] = old


def _trained(name, dataset):
    return models.demo_model(name, dataset)


def _quantized(model, dataset):
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


@pytest.fixture(scope="session")
def cnn_verify(cnn_keras, cnn_q, dataset):
    return verify.verify(cnn_keras, cnn_q, dataset.test_x, dataset.test_y)


@pytest.fixture(scope="session")
def mlp_verify(mlp_keras, mlp_q, dataset):
    return verify.verify(mlp_keras, mlp_q, dataset.test_x, dataset.test_y)


@pytest.fixture(scope="session")
def dsres_verify(dsres_keras, dsres_q, dataset):
    return verify.verify(dsres_keras, dsres_q, dataset.test_x, dataset.test_y)
