"""`--rounding` through the CLI on an FC-heavy model (a stand-in for MLPerf Tiny's anomaly-detection autoencoder,
640-128-128-8-128-128-640 dense with ReLU, small random data), where LiteRT's reference fully-connected kernel,
which rounds once, and TFLM, which rounds twice, part on many inputs: the double-rounding engine equals TFLM on
every test input, the single-rounding one LiteRT's reference kernels; on the host and on the Cortex-M4 in QEMU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

UNITS = (128, 128, 8, 128, 128)


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "tinyq.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=1200)


def _autoencoder(folder: Path) -> tuple[Path, Path]:
    """The stand-in model, trained a few epochs on low-rank data plus noise; its .keras and .npz."""
    import tensorflow as tf  # heavy: only for this module's fixture

    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    base = rng.normal(size=(400, 8)).astype(np.float32)
    x = np.tanh(base @ (rng.normal(size=(8, 640)).astype(np.float32) / 3))
    x = (x + 0.1 * rng.normal(size=x.shape)).astype(np.float32)
    inp = tf.keras.Input((640,))
    h = inp
    for units in UNITS:
        h = tf.keras.layers.Dense(units, activation="relu")(h)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(640)(h), name="ae")
    model.compile("adam", "mse")
    model.fit(x[:300], x[:300], epochs=3, batch_size=64, verbose=0)
    model_path, data_path = folder / "ae.keras", folder / "ae.npz"
    model.save(model_path)
    np.savez(data_path, x_train=x[:300], y_train=x[:300], x_test=x[300:], y_test=x[300:])
    return model_path, data_path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """`tinyq convert` of the stand-in in each mode (no Cortex-M step: the qemu test runs `tinyq firmware`)."""
    root = tmp_path_factory.mktemp("rounding_chain")
    model, data = _autoencoder(root)
    out = {}
    for mode in ("double", "single"):
        out[mode] = root / mode
        proc = _cli("--quiet", "convert", model, "--data", data, "--task", "reconstruction", "--as-stored",
                    "--no-analysis", "--no-cortex-m", "--golden", 5, "--rounding", mode, "--out", out[mode])
        assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def test_each_mode_is_bit_exact_with_the_runtimes_that_round_so(runs):
    double, single = _report(runs["double"]), _report(runs["single"])
    assert double["model"]["sha256"] == single["model"]["sha256"]  # the same int8 model in both
    assert double["rounding"] == "double" and single["rounding"] == "single"
    assert double["agreement"]["c_vs_tflm_bitexact"] == 1.0
    assert single["agreement"]["c_vs_litert_ref_bitexact"] == 1.0
    # the stand-in separates the rules, else the two lines above would prove nothing
    assert single["agreement"]["c_vs_tflm_bitexact"] < 1.0
    assert double["agreement"]["c_vs_litert_ref_bitexact"] < 1.0
    assert single["agreement"]["c_vs_tflm_bitexact"] == single["agreement"]["tflm_vs_litert_ref_bitexact"]


def test_single_folder_states_its_mode_and_its_golden_source(runs):
    fw_d, fw_s = runs["double"] / "firmware", runs["single"] / "firmware"
    assert "#define TQ_SINGLE_ROUNDING 1" in (fw_s / "tq_rounding.h").read_text()
    assert "#define TQ_SINGLE_ROUNDING 0" in (fw_d / "tq_rounding.h").read_text()
    assert '#define AE_ROUNDING "single"' in (fw_s / "ae_model_settings.h").read_text()
    assert "built with single rounding" in (fw_s / "ae_golden.h").read_text()
    assert "TFLM Python" in (fw_d / "ae_golden.h").read_text()
    assert (fw_d / "ae_model.c").read_text() != (fw_s / "ae_model.c").read_text()  # fused constants differ
    manifest = json.loads((fw_s / "manifest.json").read_text())
    assert manifest["c_engine"]["rounding"] == "single"
    assert "single rounding" in (runs["single"] / "report.md").read_text()


def test_diff_names_the_rule_each_runtime_follows(runs):
    diff = json.loads((runs["single"] / "diff.json").read_text())
    uses = {(u["runtime"], u["rule"]): u["ops"] for u in diff["rounding"]}
    assert uses[("c-host", "single")] == ["FULLY_CONNECTED"]
    assert uses[("litert-ref", "single")] == ["FULLY_CONNECTED"]
    assert uses[("tflm", "double")] == ["FULLY_CONNECTED"]


@pytest.mark.qemu
@pytest.mark.parametrize("mode", [pytest.param("double", marks=pytest.mark.slow), "single"])
def test_cortex_m4_matches_its_mode_in_qemu(runs, mode):
    """`tinyq firmware` builds the folder for the M4 and compares with TFLM (double) or with the folder's C engine
    on the host (single); the golden vectors pass in both."""
    proc = _cli("--quiet", "firmware", "--out", runs[mode], "--images", 40)
    assert proc.returncode == 0, proc.stderr[-3000:]
    section = _report(runs[mode])["cortex_m4"]
    assert section["bitexact_images"] == section["images"] == 40
    reference = "the single-rounding reference" if mode == "single" else "TFLM"
    assert f"bit-exact with {reference}" in proc.stdout
