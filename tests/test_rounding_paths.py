"""--rounding single on every C path: a model whose layers take the specialised kernels with the rounding folded
into their own arithmetic (3x3 depthwise with its assembly requantization on the M4, the 1x1 and im2col
convolutions, FC with its ARMv6-M product on the M0, the ADD tables), emitted with single rounding and golden
outputs from the exact single-rounding model (tests/int8_reference.py), run on the three host builds and in QEMU
on a core with DSP, one without and the M0."""

import numpy as np
import pytest

import int8_reference
from kernel_checks import HOST_BUILDS, check_host, check_qemu, convert_layers
from tinyq import emit, runtimes, verify
from tinyq.engine import Rounding

pytestmark = pytest.mark.integration

SAMPLES = 48


def _layers(x):
    import tensorflow as tf  # heavy: only for the fixture

    L = tf.keras.layers
    a = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    b = L.Conv2D(8, 1, activation="relu")(a)
    c = L.Conv2D(8, 3, padding="same")(x)
    s = L.Add()([b, c])
    return L.Dense(10)(L.Flatten()(s))


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    q = convert_layers("rounding_paths", _layers, (6, 6, 8), seed=3)
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (SAMPLES,) + tuple(q.input.shape[1:])).astype(np.int8)
    single = np.stack([int8_reference.run(q.tflite, v, Rounding.SINGLE) for v in x])
    tflm = runtimes.run_tflm(q.tflite, x).reshape(SAMPLES, -1)
    r = verify.VerifyResult.tflm_only(q, x, tflm, np.arange(SAMPLES) % 10)
    folder = tmp_path_factory.mktemp("rounding_paths") / "fw"
    emit.emit(q, r, folder, name="rp", golden_count=5, rounding=Rounding.SINGLE, expected_outputs=single)
    return folder, x.reshape(SAMPLES, -1), single, tflm


def test_the_case_separates_the_rules_and_takes_the_folded_kernels(case):
    folder, _, single, tflm = case
    assert (single != tflm).any(axis=1).sum() > 0
    source = next(folder.glob("*_model.c")).read_text()
    for kernel in ("tq_dw_conv3x3", "tq_conv2d_1x1", "tq_add_lut", "tq_fc_"):
        assert kernel in source, kernel


@HOST_BUILDS
def test_single_rounding_on_the_host_builds(case, opt, sanitize, tmp_path):
    folder, x, single, _ = case
    check_host(folder, x, single, tmp_path, opt=opt, sanitize=sanitize)


@pytest.mark.qemu
@pytest.mark.parametrize("target", ["cortex-m4", pytest.param("cortex-m3", marks=pytest.mark.slow), "cortex-m0"])
def test_single_rounding_in_qemu(case, target, tmp_path):
    folder, x, single, _ = case
    check_qemu(folder, x, single, tmp_path / target, target, samples=SAMPLES)
