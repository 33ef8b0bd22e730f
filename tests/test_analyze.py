"""Calibration audit: warnings and errors on sets that would give a poor or useless int8 model."""
import numpy as np
import pytest

from tinyq.analyze import Severity, audit_calibration, require_usable
from tinyq.errors import QuantizationError

RNG = np.random.default_rng(0)
TRAIN = RNG.random((200, 28, 28, 1)).astype(np.float32)
LABELS = np.arange(200) % 10


def test_clean_set_has_no_findings():
    audit = audit_calibration(TRAIN[:100], LABELS[:100], TRAIN, 10)
    assert audit.findings == () and audit.classes_present == 10
    require_usable(audit)


def test_one_class_is_error():
    audit = audit_calibration(TRAIN[:20], np.zeros(20, int), TRAIN, 10)
    assert any("1 of 10 classes" in f.message for f in audit.errors)
    with pytest.raises(QuantizationError, match="classes present"):
        require_usable(audit)


def test_0_255_data_is_error():
    audit = audit_calibration(TRAIN[:50] * 255, LABELS[:50], TRAIN, 10)
    assert any("0..255" in f.message for f in audit.errors)


def test_nan_is_error():
    x = TRAIN[:50].copy()
    x[3, 0, 0, 0] = np.nan
    audit = audit_calibration(x, LABELS[:50], TRAIN, 10)
    assert any("NaN" in f.message for f in audit.errors)


def test_duplicates_and_dtype_warn():
    x = np.concatenate([TRAIN[:10], TRAIN[:10]]).astype(np.float64)
    audit = audit_calibration((x * 255).astype(np.uint8), np.concatenate([LABELS[:10]] * 2), TRAIN * 255, 10)
    assert audit.duplicates == 10
    assert all(f.severity is Severity.WARNING for f in audit.findings)
    assert any("uint8" in f.message for f in audit.warnings)


def test_weight_roundtrip_per_channel_beats_per_tensor_on_uneven_channels():
    from tinyq.analyze import weight_roundtrip
    w = RNG.standard_normal((3, 3, 1, 4)) * np.array([0.01, 0.1, 1.0, 10.0])
    pc = np.mean((weight_roundtrip(w, True) - w) ** 2)
    pt = np.mean((weight_roundtrip(w, False) - w) ** 2)
    assert 0 < pc < pt
    assert np.max(np.abs(weight_roundtrip(w, False) - w)) <= np.max(np.abs(w)) / 127 / 2 + 1e-12


def test_sweep_measures_each_setting_and_marks_hybrid_models(cnn_keras, dataset):
    from tinyq.analyze import sweep
    from tinyq.quantize import QuantizeConfig, WeightGranularity

    configs = (("per-channel", QuantizeConfig(num_calibration_samples=50)),
               ("per-tensor", QuantizeConfig(num_calibration_samples=50, granularity=WeightGranularity.PER_TENSOR)))
    rows = sweep(cnn_keras, dataset.train_x, dataset.train_y, dataset.test_x[:500], dataset.test_y[:500], configs)
    assert [r.label for r in rows][:2] == ["per-channel", "per-tensor"]
    assert all(r.accuracy > 0.9 for r in rows)
    assert rows[1].model_bytes < rows[0].model_bytes  # one scale per tensor instead of one per channel
    assert all(r.tflm_runs and r.tflm_arena_bytes for r in rows[:2])
    comparison = rows[2:]
    assert [r.label for r in comparison] == ["dynamic-range (hybrid int8 weights)", "float16 weights"]
    assert not any(r.tflm_runs for r in comparison)  # measured: TFLM refuses float-activation models


def test_layer_errors_match_an_independent_output_check(cnn_keras, cnn_q, dataset):
    from tinyq import data as tq_data
    from tinyq.analyze import layer_errors, most_sensitive
    from tinyq.verify import dequantize, quantize_input, run_litert

    images = dataset.test_x[:50]
    rows = layer_errors(cnn_keras, cnn_q, images)
    assert [r.layer for r in rows][:3] == ["conv1", "pool1", "conv2"]
    assert all(20.0 < r.sqnr_db < 80.0 for r in rows if r.op != "RESHAPE")
    out = rows[-1]
    assert out.layer == "model output (logits)" and out.op == "SOFTMAX"
    x = tq_data.preprocess(images, (28, 28, 1))
    float_out = cnn_keras.predict(x, verbose=0).astype(np.float64)
    int8_out = dequantize(run_litert(cnn_q.tflite, quantize_input(x, cnn_q.input), reference=True), cnn_q.output)
    assert out.rmse == pytest.approx(float(np.sqrt(np.mean((float_out - int8_out) ** 2))), rel=1e-4)
    worst = most_sensitive(rows)
    assert len(worst) == 3 and worst[0].sqnr_db == min(r.sqnr_db for r in rows)


@pytest.mark.integration
def test_analyze_command_writes_a_report_chromium_renders(cnn_keras, tmp_path, capsys):
    import base64
    import io
    import re
    import shutil
    import subprocess

    from PIL import Image

    from tinyq import cli

    out = tmp_path / "an"
    assert cli.main(["--quiet", "analyze", "--demo", "mnist_cnn", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "most sensitive layers:" in printed and "TFLM runs: no" in printed
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html  # self-contained
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 3
    for data in images:
        assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 200
    chromium = shutil.which("chromium")
    assert chromium, "headless Chromium is needed for the report check (Debian package chromium)"
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1000,2400",
                    (out / "report.html").as_uri()], capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2400, 1000) and pixels.std() > 10  # a rendered page, not a blank one
    dark_rows = np.flatnonzero((pixels < 100).sum(axis=1) > 5)
    assert dark_rows.max() > 1200  # content (tables, plots) reaches far down the page


def test_analyze_needs_a_model_or_a_demo(tmp_path, capsys):
    from tinyq import cli

    assert cli.main(["--quiet", "analyze", "--out", str(tmp_path / "x")]) == cli.EXIT_ERROR
    assert "give either a MODEL.keras or --demo NAME" in capsys.readouterr().err
