"""Analysis: weight round-trip error, sweeps, per-layer error and the report."""
import numpy as np
import pytest

RNG = np.random.default_rng(0)


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
    assert [r.label for r in comparison] == ["dynamic-range (int8 weights, float activations)", "float16 weights"]
    assert not any(r.tflm_runs for r in comparison)  # measured: TFLM refuses hybrid ops and float16 weights
    assert comparison[0].note.startswith("weights: 1 float32, 2 int8;")  # conv1 (144 weights) stays float and "Hybrid models are not supported" in comparison[0].note
    assert comparison[1].note.startswith("weights: 3 float16;") and "DEQUANTIZE" in comparison[1].note
    assert all(r.runtime == "LiteRT (comparison only)" and r.tflm_arena_bytes is None for r in comparison)


def test_sweep_names_the_op_tflm_lacks_a_16x8_kernel_for(dataset):
    """TFLM's REDUCE_MAX takes float32 and int8 only: the 16x8 row is measured in LiteRT and says why."""
    import tensorflow as tf

    from tinyq.analyze import sweep
    from tinyq.quantize import ActivationType, IODtype, QuantizeConfig

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((28, 28, 1))
    hidden = tf.keras.layers.GlobalMaxPooling2D()(tf.keras.layers.Conv2D(16, 3, activation="relu")(inp))
    model = tf.keras.Model(inp, tf.keras.layers.Dense(10, activation="softmax")(hidden), name="gmax")
    configs = (("int8", QuantizeConfig(50)),
               ("16x8", QuantizeConfig(50, activations=ActivationType.INT16, io_dtype=IODtype.INT16)))
    int8, w16 = sweep(model, dataset.train_x[:500], dataset.train_y[:500], dataset.test_x[:200],
                      dataset.test_y[:200], configs, comparisons=False)
    assert int8.tflm_runs and int8.runtime == "TFLM" and int8.note == ""
    assert not w16.tflm_runs and w16.tflm_arena_bytes is None and w16.runtime == "LiteRT reference kernels"
    assert "REDUCE_MAX" in w16.note and "Only float32 and int8" in w16.note
    assert 0.0 <= w16.accuracy <= 1.0 and w16.model_bytes > 0


def test_sweep_keeps_going_when_a_setting_cannot_be_converted(dataset):
    """hard_swish has no 16x8 quantization in the converter: that row says so, the others are measured."""
    import tensorflow as tf

    from tinyq.analyze import sweep
    from tinyq.quantize import ActivationType, IODtype, QuantizeConfig

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((28, 28, 1))
    flat = tf.keras.layers.Flatten()(tf.keras.layers.Conv2D(4, 3, strides=3, activation="hard_swish")(inp))
    model = tf.keras.Model(inp, tf.keras.layers.Dense(10, activation="softmax")(flat), name="hswish")
    configs = (("16x8", QuantizeConfig(20, activations=ActivationType.INT16, io_dtype=IODtype.INT16)),
               ("int8", QuantizeConfig(20)))
    w16, int8 = sweep(model, dataset.train_x[:200], dataset.train_y[:200], dataset.test_x[:100],
                      dataset.test_y[:100], configs, comparisons=False)
    assert w16.accuracy is None and w16.model_bytes is None and "HARD_SWISH" in w16.note
    assert int8.tflm_runs and int8.accuracy is not None


def test_dynamic_range_of_a_model_with_only_small_weights_is_plain_float_and_tflm_runs_it(dsres_keras, dataset):
    """The converter leaves tensors under 1024 elements float: nothing hybrid remains, and the row says so."""
    from tinyq.analyze import sweep
    from tinyq.quantize import QuantizeConfig

    dynamic = sweep(dsres_keras, dataset.train_x, dataset.train_y, dataset.test_x[:300], dataset.test_y[:300],
                    configs=(("int8", QuantizeConfig(20)),))[1]
    assert dynamic.label.startswith("dynamic-range") and dynamic.tflm_runs and dynamic.runtime == "TFLM"
    assert dynamic.note.startswith("weights: ") and "int8" not in dynamic.note and "float32" in dynamic.note


@pytest.mark.slow
def test_report_html_is_byte_identical_for_the_same_model_and_data(mlp_keras, dataset, tmp_path):
    from tinyq import data
    from tinyq.analyze import analyze
    from tinyq.quantize import QuantizeConfig
    from tinyq.report_html import write_html

    small = data.Dataset(dataset.train_x[:1000], dataset.train_y[:1000], dataset.test_x[:300], dataset.test_y[:300],
                         "subset")
    configs = (("int8, percentile 99.9", QuantizeConfig(100, percentile=99.9)),)
    from tinyq.report import ChainReport

    analyses = [analyze(mlp_keras, small, layer_images=50, configs=configs) for _ in range(2)]
    pages = [write_html(tmp_path / f"r{i}.html", ChainReport(a.quantized, a.verified, analysis=a))
             for i, a in enumerate(analyses)]
    assert pages[0].read_bytes() == pages[1].read_bytes()


def test_op_summary_adds_up_to_the_graph(cnn_q, cnn_verify):
    from tinyq.analyze import op_summary
    from tinyq.engine import read_graph

    rows = op_summary(cnn_q.graph)
    assert [r.op for r in rows] == [op.name for op in read_graph(cnn_q.tflite).operators]
    assert sum(r.macs for r in rows) == cnn_verify.macs
    conv1 = rows[0]
    assert conv1.op == "CONV_2D" and conv1.output_shape == (1, 26, 26, 16) and conv1.output_bytes == 26 * 26 * 16
    assert conv1.constant_bytes == 3 * 3 * 16 + 16 * 4  # int8 kernel + int32 bias


def test_layer_errors_match_an_independent_output_check(cnn_keras, cnn_q, dataset):
    from tinyq import data as tq_data
    from tinyq.analyze import layer_errors, most_sensitive
    from tinyq.runtimes import run_litert
    from tinyq.verify import dequantize, quantize_input

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
def test_analyze_command_writes_a_self_contained_report(mlp_keras, tmp_path, capsys):
    import base64
    import io
    import re

    from PIL import Image

    from tinyq import cli

    out = tmp_path / "an"
    assert cli.main(["--quiet", "analyze", "--demo", "mnist_mlp", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "most sensitive layers:" in printed and "TFLM runs: no" in printed and "sweep: 12 settings in" in printed
    assert [p.name for p in out.iterdir()] == ["report.html"]
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html  # self-contained
    for section in ("Summary", "Stage agreement", "Memory", "Flash", "Ops", "Quantization settings",
                    "Per-layer error", "Confusion matrices", "Calibration audit"):
        assert f"<h2>{section}</h2>" in html
    for label in ("int8, percentile 99.9 ranges", "16x8 (int16 activations)", "int8, 100 first-N samples"):
        assert label in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 3
    for data in images:
        assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 200


def test_analyze_refuses_a_non_empty_folder_before_working(tmp_path, capsys):
    from tinyq import cli

    (tmp_path / "keep.txt").write_text("x")
    assert cli.main(["--quiet", "analyze", "--demo", "mnist_mlp", "--out", str(tmp_path)]) == cli.EXIT_ERROR
    assert "exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_analyze_needs_a_model_or_a_demo(tmp_path, capsys):
    from tinyq import cli

    assert cli.main(["--quiet", "analyze", "--out", str(tmp_path / "x")]) == cli.EXIT_ERROR
    assert "give either a MODEL.keras or --demo NAME" in capsys.readouterr().err
