"""Calibration: the audit's warnings and errors, percentile ranges, and the converter paths they feed."""
import numpy as np
import pytest

from tinyq import data, models, quantize, runtimes, verify
from tinyq.calibration import Severity, audit_calibration, percentile_range, require_usable
from tinyq.errors import QuantizationError
from tinyq.engine import read_graph
from tinyq.quantize import ActivationType, IODtype, QuantizeConfig

RNG = np.random.default_rng(0)
TRAIN = RNG.random((200, 28, 28, 1)).astype(np.float32)
LABELS = np.arange(200) % 10


RANGE = (0.0, 1.0)


def test_clean_set_has_no_findings():
    audit = audit_calibration(TRAIN[:100], LABELS[:100], RANGE, 10)
    assert audit.findings == () and audit.classes_present == 10
    require_usable(audit)


def test_one_class_is_error():
    audit = audit_calibration(TRAIN[:20], np.zeros(20, int), RANGE, 10)
    assert any("1 of 10 classes" in f.message for f in audit.errors)
    with pytest.raises(QuantizationError, match="classes present"):
        require_usable(audit)


def test_fewer_samples_than_classes_only_warns():
    audit = audit_calibration(TRAIN[:1], LABELS[:1], RANGE, 10)
    assert not audit.errors
    assert any("1 of 10 classes present" in f.message and "(1 samples)" in f.message for f in audit.warnings)


def test_imbalance_warns():
    labels = np.array([0] * 16 + list(range(1, 10)) * 1)
    audit = audit_calibration(TRAIN[:25], labels, RANGE, 10)
    assert audit.imbalance == 16.0
    assert [f.severity for f in audit.findings] == [Severity.WARNING]
    assert "imbalance 16.0x" in audit.findings[0].message


def test_0_255_data_is_error():
    audit = audit_calibration(TRAIN[:50] * 255, LABELS[:50], RANGE, 10)
    assert any("0..255" in f.message for f in audit.errors)


def test_nan_is_error():
    x = TRAIN[:50].copy()
    x[3, 0, 0, 0] = np.nan
    audit = audit_calibration(x, LABELS[:50], RANGE, 10)
    assert any("NaN" in f.message and "first in sample 3" in f.message for f in audit.errors)


def test_duplicates_and_float64_warn_integer_data_is_error():
    x = np.concatenate([TRAIN[:10], TRAIN[:10]]).astype(np.float64)
    audit = audit_calibration(x, np.concatenate([LABELS[:10]] * 2), RANGE, 10)
    assert audit.duplicates == 10
    assert [f.severity for f in audit.findings] == [Severity.WARNING, Severity.WARNING]
    assert "float64" in audit.findings[0].message and "10 duplicate samples of 20" in audit.findings[1].message
    audit = audit_calibration((x * 255).astype(np.uint8), np.concatenate([LABELS[:10]] * 2), (0, 255), 10)
    assert any("is uint8" in f.message for f in audit.errors)


def test_quantize_refuses_a_one_class_set_and_keeps_warnings(dataset):
    from tinyq import data, models, quantize
    from tinyq.quantize import QuantizeConfig

    model = models.build("mnist_mlp")
    x = data.preprocess(dataset.train_x[:400], models.input_shape(model))
    y = dataset.train_y[:400]
    ones = np.flatnonzero(y == 1)
    with pytest.raises(QuantizationError, match=r"calibration samples: 1 of 10 classes present, missing \[0, 2,"):
        quantize.quantize(model, x[ones], QuantizeConfig(20), labels=y[ones])
    q = quantize.quantize(model, x, QuantizeConfig(5), labels=y)
    assert q.audit.samples == 5 and q.audit.classes_present == 5 and not q.audit.errors
    assert any("5 of 10 classes present" in f.message for f in q.audit.warnings)


def test_percentile_range_drops_outliers_and_keeps_zero():
    values = np.concatenate([RNG.uniform(0.5, 2.0, 100_000), [50.0, 80.0, 100.0]])
    lo, hi = percentile_range(values, 99.99)
    assert lo == 0.0 and 1.99 < hi < 2.0  # the three outliers are above the 99.99th percentile
    assert percentile_range(values, 100.0) == (0.0, 100.0)
    assert percentile_range(-values, 99.9)[1] == 0.0


def _activation_scales(tflite: bytes) -> dict[str, tuple[float, int]]:
    """Scale and zero point of every non-constant quantized tensor, by name."""
    return {t.name: (t.scales[0], t.zero_points[0]) for t in read_graph(tflite).tensors
            if t.data is None and t.scales}


@pytest.fixture(scope="module")
def calib(cnn_keras, dataset):
    return data.preprocess(dataset.train_x, models.input_shape(cnn_keras))


def test_percentile_100_reproduces_the_converters_min_max(cnn_keras, cnn_q, calib, dataset):
    """Calibrate-only, rewrite and requantize changes nothing when the range is kept: the path is faithful.

    Our float run (reference kernels) and the calibrator's agree on each tensor's max to float rounding.
    """
    q = quantize.quantize(cnn_keras, calib, QuantizeConfig(percentile=100.0), labels=dataset.train_y)
    ours, theirs = _activation_scales(q.tflite), _activation_scales(cnn_q.tflite)
    assert ours.keys() == theirs.keys()
    assert all(ours[k][1] == theirs[k][1] and ours[k][0] == pytest.approx(theirs[k][0], rel=1e-6) for k in ours)
    weights = {t.name: t.data.tobytes() for t in read_graph(cnn_q.tflite).tensors if t.data is not None}
    assert weights == {t.name: t.data.tobytes() for t in read_graph(q.tflite).tensors if t.data is not None}
    assert all(r.used == pytest.approx(r.minmax, rel=1e-6) for r in q.ranges)


def test_percentile_clips_the_tails_and_stays_a_full_integer_model_tflm_runs(cnn_keras, cnn_q, calib, dataset):
    q = quantize.quantize(cnn_keras, calib, QuantizeConfig(percentile=99.9), labels=dataset.train_y)
    assert q.op_names == cnn_q.op_names  # no requantize ops were needed
    ranges = {r.tensor: r for r in q.ranges}
    relu = [r for r in q.ranges if "Relu" in r.tensor or "conv" in r.tensor]
    assert relu and all(r.used[0] == 0.0 and r.used[1] < 0.95 * r.minmax[1] for r in relu)
    minmax, pct = _activation_scales(cnn_q.tflite), _activation_scales(q.tflite)
    smaller = [name for name in minmax if pct[name][0] < 0.95 * minmax[name][0]]
    assert len(smaller) >= 3, (minmax, pct, ranges)
    assert pct[cnn_q.input.name] == minmax[cnn_q.input.name]  # the input range is the caller's contract
    x = data.preprocess(dataset.test_x[:1000], models.input_shape(cnn_keras))
    labels = dataset.test_y[:1000].astype(np.int64)
    acc_pct = verify.accuracy(runtimes.run_tflm(q.tflite, verify.quantize_input(x, q.input)), labels)
    acc_mm = verify.accuracy(runtimes.run_tflm(cnn_q.tflite, verify.quantize_input(x, cnn_q.input)), labels)
    assert acc_pct > acc_mm - 0.01


def test_int16x8_model_is_checked_as_16x8_and_runs_in_tflm(cnn_keras, calib, dataset):
    config = QuantizeConfig(activations=ActivationType.INT16, io_dtype=IODtype.INT16)
    q = quantize.quantize(cnn_keras, calib, config, labels=dataset.train_y)
    graph = read_graph(q.tflite)
    assert q.input.dtype == "int16" and q.output.dtype == "int16"
    assert {graph.tensors[op.inputs[2]].dtype for op in graph.operators if op.name in ("CONV_2D", "FULLY_CONNECTED")} == {"int64"}
    assert {graph.tensors[op.inputs[1]].dtype for op in graph.operators if op.name in ("CONV_2D", "FULLY_CONNECTED")} == {"int8"}
    x = data.preprocess(dataset.test_x[:1000], models.input_shape(cnn_keras))
    xq = verify.quantize_input(x, q.input)
    assert xq.dtype == np.int16 and xq.max() > 127
    assert verify.accuracy(runtimes.run_tflm(q.tflite, xq), dataset.test_y[:1000].astype(np.int64)) > 0.95
    with pytest.raises(QuantizationError, match="not full-integer int8 .*is int16"):
        quantize.inspect_tflite(q.tflite, "16x8 model checked as int8")


@pytest.mark.parametrize("kwargs, message", [
    ({"percentile": 50.0}, r"percentile must be in \(50, 100\]"),
    ({"percentile": 100.5}, r"percentile must be in \(50, 100\]"),
    ({"activations": ActivationType.INT16}, "io_dtype int8 does not match int16 activations"),
    ({"io_dtype": IODtype.INT16}, "io_dtype int16 does not match int8 activations"),
    ({"activations": ActivationType.INT16, "io_dtype": IODtype.INT16, "percentile": 99.9}, "needs int8 activations"),
    ({"activations": "int16"}, "activations must be an ActivationType"),
])
def test_calibration_config_validation(kwargs, message):
    with pytest.raises(QuantizationError, match=message):
        QuantizeConfig(**kwargs)
