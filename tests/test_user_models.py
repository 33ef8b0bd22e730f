"""A user's own model through the chain: Keras 2 .h5 via tf_keras, an int8 .tflite (CLI and `tinyq firmware`
from the folder alone), regression and no-label tasks, the pre-flight report and the degrade path when only
the C engine lacks an op. Tiny stand-ins (tests/standins.py) keep it fast."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import standins
from tinyq import models, pipeline, userdata
from tinyq.data import Preprocessing, Task
from tinyq.errors import ModelError
from tinyq.preflight import CEngineMode, PreflightError

pytestmark = pytest.mark.integration

FAST = dict(cortex_m=False, analysis=False, golden_count=3)


def _cli(*args, env_extra=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "tinyq.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=900)


def _keras():
    import tensorflow as tf

    return tf.keras


def _all_text(folder: Path) -> str:
    return "\n".join(p.name + "\n" + p.read_text(errors="replace") for p in folder.rglob("*")
                     if p.is_file() and p.suffix in (".c", ".h", ".json", ".md"))


@pytest.fixture(scope="module")
def small_images():
    return standins.image_classes((12, 12, 3), 3, 60, 30, seed=5)


def test_preflight_lists_every_problem_before_any_long_step(tmp_path, small_images):
    model = standins.odd_op_classifier(_keras(), "gelu")
    ds = userdata.from_arrays(small_images.x_train, small_images.x_test, small_images.y_test)
    start = time.monotonic()
    with pytest.raises(PreflightError) as info:
        pipeline.run(model, ds, tmp_path / "out", pipeline.PipelineConfig(name="gelu", **FAST))
    assert time.monotonic() - start < 30
    msg = str(info.value)
    assert "[tflm_op] op #3 GELU" in msg and "[c_engine_op] op #3 GELU" in msg and "2 problem(s)" in msg
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.fixture(scope="module")
def degraded_run(tmp_path_factory, small_images):
    """A classifier with ABS, which TFLM runs and the C engine does not, through the default."""
    model = standins.odd_op_classifier(_keras(), "abs")
    ds = userdata.from_arrays(small_images.x_train, small_images.x_test, small_images.y_test,
                          class_names=("red", "green", "blue"))
    out = tmp_path_factory.mktemp("absval") / "out"
    return model, ds, pipeline.run(model, ds, out, pipeline.PipelineConfig(name="absval", **FAST))


def test_degrade_path_still_delivers_tflm_files_and_checks(degraded_run):
    _, _, result = degraded_run
    fw = result.out_dir / "firmware"
    names = sorted(p.name for p in fw.iterdir())
    assert "absval_model_data.c" in names and "absval_op_resolver.h" in names and "absval_model.c" not in names
    r = json.loads((result.out_dir / "report.json").read_text())
    assert r["c_engine"]["status"] == "blocked" and "ABS" in r["c_engine"]["blocked_by"][0]
    assert any("C engine not generated" in n and "ABS" in n for n in r["notes"])
    assert r["agreement"]["tflm_vs_litert_ref_bitexact"] == 1.0 and "c_int8" not in r["metric"]
    assert r["class_names"] == ["red", "green", "blue"]
    assert '#define ABSVAL_CLASS_LABELS { "red", "green", "blue" }' in (fw / "absval_model_settings.h").read_text()
    assert "mnist" not in _all_text(result.out_dir).lower()


def test_c_engine_require_makes_the_blocker_an_error(tmp_path, degraded_run):
    model, ds, _ = degraded_run
    with pytest.raises(PreflightError, match=r"\[c_engine_op\] op #3 ABS"):
        pipeline.run(model, ds, tmp_path / "o", pipeline.PipelineConfig(c_engine=CEngineMode.REQUIRE, **FAST))


@pytest.fixture(scope="module")
def kws_files(tmp_path_factory):
    """A tiny DS-CNN as someone else's int8 .tflite, float audio features as .npy (no labels) and .npz."""
    root = tmp_path_factory.mktemp("kws")
    feats = standins.audio_features(4, 80, 24)
    mean, std = float(feats.x_train.mean()), float(feats.x_train.std())
    model = standins.ds_cnn(_keras(), 0.1, classes=4)
    (root / "kws.tflite").write_bytes(standins.int8_tflite(model, (feats.x_train - mean) / std))
    np.save(root / "features.npy", feats.x_test)
    standins.save_npz(root / "features.npz", feats)
    return root, mean, std, model


@pytest.mark.qemu
def test_int8_tflite_through_the_cli_and_firmware_without_mnist(kws_files, tmp_path):
    root, mean, std, _ = kws_files
    out = tmp_path / "kws_out"
    run = _cli("convert", root / "kws.tflite", "--data", root / "features.npy", "--mean", mean, "--std", std,
               "--out", out, "--no-cortex-m", "--no-analysis", env_extra={"TINYQ_MNIST": str(tmp_path / "none")})
    assert run.returncode == 0, run.stderr
    assert "full-integer .tflite" in run.stderr and "C prefix kws" in run.stderr
    r = json.loads((out / "report.json").read_text())
    assert r["task"] == "none" and r["metric"]["keras_float"] is None and r["sizes"]["float_tflite_bytes"] is None
    assert r["agreement"]["c_vs_tflm_bitexact"] == 1.0 and r["agreement"]["c_vs_tflm_images"] == 24
    assert r["preprocessing"]["kind"] == "standardize" and "accuracy" not in r
    settings = (out / "firmware" / "kws_model_settings.h").read_text()
    assert "NUM_CLASSES" not in settings and "input_from_u8" not in settings and "(raw - mean) / std" in settings
    fw = _cli("firmware", "--out", out, "--images", 4, env_extra={"TINYQ_MNIST": str(tmp_path / "none")})
    assert fw.returncode == 0, fw.stderr
    assert "4 / 4 images" in fw.stdout
    assert json.loads((out / "report.json").read_text())["cortex_m4"]["bitexact_images"] == 4


def test_float_tflite_is_refused_with_the_reason(kws_files, tmp_path):
    from tinyq.quantize import convert_float

    _, _, _, model = kws_files
    (tmp_path / "float.tflite").write_bytes(convert_float(model))
    with pytest.raises(ModelError, match="not a full-integer int8 .tflite.*TFLiteConverter calibrates"):
        models.load_model(tmp_path / "float.tflite")


def test_several_inputs_are_refused_naming_the_tensors(tmp_path):
    keras = _keras()
    a, b = keras.Input((4,), name="left"), keras.Input((4,), name="right")
    model = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Concatenate()([a, b])))
    model.save(tmp_path / "two.keras")
    with pytest.raises(ModelError, match=r"2 inputs \['left', 'right'\] and 1 outputs"):
        models.load_model(tmp_path / "two.keras")


def test_keras2_h5_loads_through_tf_keras_and_runs_bit_exact(tmp_path):
    spectra = standins.image_classes((49, 10), 2, 40, 16, seed=7)
    # trained, then written by tf_keras (untrained random weights have made LiteRT and TFLM abort the process)
    trained = standins.train(standins.ds_cnn(_keras(), 0.1, classes=2), spectra, lambda x: x / 127.5 - 1, epochs=1)
    standins.copy_weights_to_tf_keras(trained, standins.ds_cnn, 0.1, classes=2).save(tmp_path / "kws.h5")
    said = []
    loaded = models.load_model(tmp_path / "kws.h5", said.append)
    assert loaded.kind is models.ModelKind.KERAS2
    assert any("Keras 3 cannot load kws.h5" in s and "tf_keras" in s for s in said)
    standins.save_image_folder(tmp_path / "images", spectra, ("silence", "yes"))
    ds = userdata.load_data(tmp_path / "images")
    assert ds.test_x.shape == (16, 49, 10) and ds.test_x.dtype == np.uint8  # grayscale PNGs
    result = pipeline.run(loaded.model, ds, tmp_path / "out", pipeline.PipelineConfig(
        name="kws", preprocessing=Preprocessing.input_range(-1, 1), **FAST))
    r = result.report
    assert "DEPTHWISE_CONV_2D" in r["ops"] and r["agreement"]["c_vs_tflm_bitexact"] == 1.0
    assert r["preprocessing"]["input_range"] == [-1.0, 1.0] and r["class_names"] == ["silence", "yes"]
    settings = (result.out_dir / "firmware" / "kws_model_settings.h").read_text()
    assert "kws_input_from_u8(uint8_t raw, unsigned channel)" in settings and '"silence", "yes"' in settings
    # the C helper gives, for every stored value, exactly the int8 input every runtime was fed
    main = tmp_path / "table.c"
    main.write_text('#include <stdio.h>\n#include "kws_model_settings.h"\nint main(void) {\n'
                    '  for (unsigned v = 0; v < 256; ++v) printf("%d\\n", kws_input_from_u8((uint8_t)v, 0));\n'
                    '  return 0;\n}\n')
    exe = tmp_path / "table"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", str(result.out_dir / "firmware"),
                    str(main), "-o", str(exe), "-lm"], check=True)
    printed = np.array(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split(), int)
    assert np.array_equal(printed[ds.test_x.reshape(-1)], result.verify.int8_inputs.reshape(-1))


def _regressor(keras):
    """A conv autoencoder on 12x12x3. (Tiny fully-connected ones make TFLM's arena search crash the process,
    issue 10 item 8, handled elsewhere.)"""
    L = keras.layers
    inp = keras.Input((12, 12, 3), name="features")
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="enc")(inp)
    out = L.Conv2D(3, 3, padding="same", name="dec")(x)
    return keras.Model(inp, out, name="tiny_ae")


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    rng = np.random.default_rng(4)
    frames = standins.Synthetic(rng.uniform(0, 1, (80, 12, 12, 3)).astype(np.float32), None,
                                rng.uniform(0, 1, (30, 12, 12, 3)).astype(np.float32), None)
    model = standins.train(_regressor(_keras()), frames, lambda x: x, epochs=2, reconstruction=True)
    targets = frames.x_test * 0.5
    ds = userdata.from_arrays(frames.x_train, frames.x_test, targets)
    out = tmp_path_factory.mktemp("reg") / "out"
    return model, ds, pipeline.run(model, ds, out, pipeline.PipelineConfig(name="tiny_ae", **FAST))


def test_regression_scores_mse_against_targets_and_sqnr_against_float(regression_run):
    model, ds, result = regression_run
    v = result.verify
    assert v.task is Task.REGRESSION and v.metric_name == "MSE vs targets"
    float_mse = float(np.mean((model.predict(ds.test_x, verbose=0) - ds.test_y) ** 2))
    assert v.keras_float == pytest.approx(float_mse, rel=1e-5) and v.tflm_int8 > 0
    assert v.output_error.sqnr_db > 15 and v.output_error.mse < 0.01
    r = result.report
    assert r["task"] == "regression" and "per_class_accuracy" not in r and "accuracy" not in r
    assert r["metric"]["c_int8"] == pytest.approx(r["metric"]["tflm_int8"])
    assert r["output_error"]["tflm_int8_vs_keras_float_sqnr_db"] > 15
    settings = (result.out_dir / "firmware" / "tiny_ae_model_settings.h").read_text()
    assert "NUM_CLASSES" not in settings and "as stored" in settings
    assert "MSE vs targets" in (result.out_dir / "report.md").read_text()


def test_analysis_of_a_regression_model_has_no_confusion_matrix(regression_run, tmp_path):
    from tinyq.analyze import analyze
    from tinyq.quantize import QuantizeConfig
    from tinyq.report import ChainReport
    from tinyq.report_html import write_html

    model, ds, result = regression_run
    a = analyze(model, ds, result.quantized, result.verify, configs=[("int8", QuantizeConfig())])
    assert a.confusion_float is None and a.task == "regression" and a.sweep_metric_name.startswith("SQNR")
    assert a.sweep[0].accuracy > 15  # dB
    html = write_html(tmp_path / "report.html", ChainReport(a.quantized, a.verified, analysis=a)).read_text()
    assert "Confusion matrices" not in html and "SQNR vs float (dB)" in html


def test_reconstruction_task_from_the_cli(tmp_path, regression_run):
    model, ds, _ = regression_run
    model.save(tmp_path / "tiny_ae.keras")
    np.savez(tmp_path / "frames.npz", x=ds.test_x)
    run = _cli("convert", tmp_path / "tiny_ae.keras", "--data", tmp_path / "frames.npz", "--task", "reconstruction",
               "--out", tmp_path / "out", "--no-cortex-m", "--no-analysis")
    assert run.returncode == 0, run.stderr
    assert "task / metric" in run.stdout and "reconstruction / MSE vs input" in run.stdout
    assert "TFLM int8 vs float output" in run.stdout
    r = json.loads((tmp_path / "out" / "report.json").read_text())
    assert r["metric"]["tflm_int8"] > 0 and r["c_engine"]["status"] == "generated"
    assert sorted(p.name for p in (tmp_path / "out" / "firmware").glob("tiny_ae_*.c"))[0] == "tiny_ae_golden.c"


def test_saved_model_folders_load_and_quantize(tmp_path):
    import tf_keras

    from tinyq.quantize import QuantizeConfig, quantize

    keras = _keras()
    x = np.random.default_rng(0).uniform(0, 1, (20, 6, 6, 2)).astype(np.float32)
    k3 = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, activation="relu"),
                           keras.layers.Flatten(), keras.layers.Dense(4, activation="softmax")])
    k3.export(tmp_path / "exported", verbose=False)
    k2 = tf_keras.Sequential([tf_keras.Input((6, 6, 2)), tf_keras.layers.Conv2D(3, 3), tf_keras.layers.Flatten(),
                              tf_keras.layers.Dense(4)])
    k2.save(tmp_path / "keras2_saved", save_format="tf")
    for folder, how, ops in (("exported", "wrapped as one layer", ("CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX")),
                             ("keras2_saved", "loaded with tf_keras", ("CONV_2D", "RESHAPE", "FULLY_CONNECTED"))):
        said = []
        loaded = models.load_model(tmp_path / folder, said.append)
        assert loaded.kind is models.ModelKind.SAVED_MODEL and how in said[0]
        q = quantize(loaded.keras, x, QuantizeConfig(num_calibration_samples=10, balanced=False))
        assert q.op_names == ops
    assert np.abs(models.load_model(tmp_path / "exported").keras.predict(x, verbose=0)
                  - k3.predict(x, verbose=0)).max() == 0.0
