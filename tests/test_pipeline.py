"""The whole chain through the CLI: `tinyq demo` and `tinyq convert`, report keys, figures, determinism."""

import json
import re
import shutil
import subprocess

import markupsafe
import numpy as np
import pytest

from tinyq import cli

REQUIRED_KEYS = [
    "tinyq_version", "model.name", "model.sha256", "model.params", "model.macs", "test_images",
    "accuracy.keras_float", "accuracy.litert_ref_int8", "accuracy.litert_int8", "accuracy.tflm_int8",
    "agreement.tflm_vs_litert_ref_bitexact", "agreement.tflm_vs_litert_ref_max_lsb",
    "agreement.tflm_vs_litert_ref_argmax", "sizes.float_tflite_bytes", "sizes.int8_tflite_bytes",
    "arena_bytes.tflm", "ops", "emit.files",
    "accuracy.c_int8", "agreement.c_vs_tflm_bitexact", "arena_bytes.c", "arena_bytes.lower_bound",
    "flash_bytes.c_weights", "flash_bytes.c_code", "quantization.calibration_method",
    "analysis.html", "analysis.sweep", "analysis.most_sensitive_layers",
]
CORTEX_KEYS = ["cortex_m4.flash_bytes", "cortex_m4.ram_bytes", "cortex_m4.instructions_per_inference",
               "cortex_m4.bitexact_images"]


def _get(report, dotted):
    node = report
    for part in dotted.split("."):
        assert part in node, f"report.json lacks {dotted}"
        node = node[part]
    return node


@pytest.fixture(scope="module")
def demo(tmp_path_factory, cnn_q):
    out = tmp_path_factory.mktemp("demo") / "out"
    code = cli.main(["--quiet", "demo", "--out", str(out)])
    assert code == 0
    return out, json.loads((out / "report.json").read_text())


@pytest.mark.integration
def test_demo_report_has_every_key(demo):
    _, report = demo
    for key in REQUIRED_KEYS + CORTEX_KEYS:
        _get(report, key)


@pytest.mark.integration
def test_demo_acceptance_figures(demo, cnn_q):
    out, r = demo
    assert r["test_images"] == 10000
    assert r["accuracy"]["keras_float"] >= 0.970
    assert abs(r["accuracy"]["litert_ref_int8"] - r["accuracy"]["keras_float"]) <= 0.003
    assert r["agreement"]["tflm_vs_litert_ref_argmax"] >= 0.999
    assert set(r["ops"]) <= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D",
                             "RESHAPE", "SOFTMAX"}
    assert r["agreement"]["c_vs_tflm_bitexact"] == 1.0
    assert r["accuracy"]["c_int8"] == r["accuracy"]["tflm_int8"]
    assert r["cortex_m4"]["bitexact_images"] == r["cortex_m4"]["images"] >= 1000
    assert r["model"]["sha256"] == cnn_q.sha256
    assert (out / "model_int8.tflite").read_bytes() == cnn_q.tflite
    assert all((out / f).is_file() for f in r["emit"]["files"])
    md = (out / "report.md").read_text()
    assert f"{100 * r['accuracy']['tflm_int8']:.2f} %" in md


@pytest.mark.integration
def test_demo_names_the_first_divergent_op(demo):
    """The cheap diff of `tinyq demo`: LiteRT-ref and TFLM disagree on a few images; each is traced and explained."""
    out, r = demo
    disagree = round((1 - r["agreement"]["tflm_vs_litert_ref_bitexact"]) * r["test_images"])
    assert disagree >= 1
    d = json.loads((out / "diff.json").read_text())
    pairs = {tuple(p["pair"]): p for p in d["test_set_pairs"]}
    assert pairs[("litert-ref", "tflm")]["identical"] == r["test_images"] - disagree
    assert pairs[("tflm", "c-host")]["identical"] == r["test_images"]
    ref_tflm = [x for x in d["divergences"] if x["pair"] == ["litert-ref", "tflm"]]
    assert len(ref_tflm) == min(5, disagree)
    assert all("exact value" in x["explanation"]["text"] for x in ref_tflm)
    assert any(n.startswith("diff: ") for n in r["notes"])
    html = (out / "report.html").read_text()
    assert "<h2>Fidelity</h2>" in html and str(markupsafe.escape(ref_tflm[0]["explanation"]["text"])) in html


@pytest.mark.integration
def test_demo_links_the_analysis_report(demo, cnn_q):
    out, r = demo
    assert "[report.html](report.html)" in (out / "report.md").read_text()
    sweep = r["analysis"]["sweep"]
    assert len(sweep) == 12 and sum(row["tflm_runs"] for row in sweep) == 10
    assert {row["setting"] for row in sweep if not row["tflm_runs"]} == {
        "dynamic-range (int8 weights, float activations)", "float16 weights"}
    assert all(row["accuracy"] > 0.95 for row in sweep if row["setting"] != "int8, 1 balanced samples")
    assert [e["layer"] for e in r["analysis"]["most_sensitive_layers"]] and r["quantization"]["calibration_method"] == "min-max"
    html = (out / "report.html").read_text()
    assert cnn_q.sha256 in html and f"{100 * r['accuracy']['tflm_int8']:.2f} %" in html


@pytest.mark.integration
def test_demo_reports_per_op_cost_and_deployment_figures_on_the_cortex_m4(demo):
    out, r = demo
    m = r["cortex_m4"]
    ops = m["ops"]
    assert [o["op"] for o in ops] == [op for op in ("CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D",
                                                    "FULLY_CONNECTED", "SOFTMAX")]  # RESHAPE has no kernel call
    assert all(o["instructions"] > 0 for o in ops) and sum(o["macs"] for o in ops) == r["model"]["macs"]
    assert all((o["instructions_per_mac"] is None) == (o["macs"] == 0) for o in ops)
    assert m["ops_profile"]["bitexact_images"] == m["ops_profile"]["images"] == 100
    assert abs(m["ops_profile"]["sum_vs_instructions_per_inference"] - 1) < 0.001
    assert m["deployment"]["flash_bytes"] == m["flash_split"]["model constants"] + m["flash_split"]["engine code"]
    assert r["arena_bytes"]["c"] < m["deployment"]["ram_bytes"] < m["ram_bytes"]
    html = (out / "report.html").read_text()
    conv = ops[0]
    assert "<th>instructions per MAC</th>" in html
    assert f"<td>{conv['instructions']:.0f}</td><td>{conv['instructions_per_mac']:.2f}</td>" in html
    assert f"| `{conv['kernel']}` | {conv['macs']} | {conv['instructions']:.0f} |" in (out / "report.md").read_text()
    # Modelled cycles beside the instructions (tinyq/targets/cycles): every op, and the whole inference.
    assert m["instructions_per_inference"] < m["cycles_per_inference"] < 2 * m["instructions_per_inference"]
    assert all(o["instructions"] <= o["cycles"] < 2 * o["instructions"] for o in ops)
    assert abs(sum(o["cycles"] for o in ops) / m["cycles_per_inference"] - 1) < 0.001
    assert f"<td>{conv['cycles']:.0f}</td><td>{conv['cycles'] / conv['macs']:.2f}</td>" in html
    assert f"{m['cycles_per_inference']} modelled cycles per inference" in (out / "report.md").read_text()


SECTIONS = ("summary", "stages", "memory", "flash", "ops", "sweep", "layers", "weights", "confusion", "audit")


def _chromium(*args, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "headless Chromium is needed for the report check (Debian package chromium)"
    return subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", *args], capture_output=True, text=True,
                          timeout=120, check=True)


@pytest.mark.integration
def test_demo_report_html_covers_the_whole_chain(demo, cnn_q):
    out, r = demo
    html = (out / "report.html").read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    for stage in ("Keras float", "LiteRT int8, reference kernels", "LiteRT int8, default kernels", "TFLM int8",
                  "tinyq C engine, host", "tinyq C engine, cortex-m4 (QEMU"):
        assert stage in html, stage
    assert f"{r['arena_bytes']['c']} B" in html and f"{r['arena_bytes']['lower_bound']} B" in html
    assert f"{r['cortex_m4']['flash_bytes']} B" in html and "model constants" in html
    assert 'alt="tensor lifetimes in the C engine arena"' in html
    # No network: nothing external is referenced, and the page's policy forbids loading anything but inline data.
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html) and "<script" not in html
    assert "default-src 'none'" in html


@pytest.mark.integration
def test_demo_report_html_renders_in_headless_chromium(demo, tmp_path):
    """Rendered at 1280 px: every section laid out, no horizontal overflow, the plots drawn."""
    from PIL import Image

    out, _ = demo
    # A copy with a probe that writes the laid-out page's measurements into the DOM (the report has no script;
    # its content-security policy is dropped from the copy so the probe may run).
    page = (out / "report.html").read_text()
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    probe = ("<script>window.addEventListener('load', () => { const r = document.createElement('pre'); "
             "r.id = 'probe'; r.textContent = JSON.stringify({scroll: document.documentElement.scrollWidth, "
             "client: document.documentElement.clientWidth, sections: [...document.querySelectorAll('section')]"
             ".filter(s => s.offsetHeight > 0).map(s => s.id)}); document.body.appendChild(r); });</script>")
    copy = tmp_path / "probe.html"
    copy.write_text(page.replace("</body>", probe + "</body>"))
    dom = _chromium("--window-size=1280,1000", "--dump-dom", copy.as_uri(), tmp_path=tmp_path).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom)
    assert found, dom[-500:]
    probe_values = json.loads(found.group(1).replace("&quot;", '"'))
    assert probe_values["scroll"] <= probe_values["client"] <= 1280, probe_values
    assert set(SECTIONS) <= set(probe_values["sections"])
    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1280,6000", (out / "report.html").as_uri(), tmp_path=tmp_path)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (6000, 1280) and pixels.std() > 10  # a rendered page, not a blank one
    dark_rows = np.flatnonzero((pixels < 100).sum(axis=1) > 5)
    assert dark_rows.max() > 4000  # content (ten sections, five plots) reaches far down the page
    # The confusion matrices are drawn (Blues colormap): many saturated blue pixels, which no text makes.
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    blue = (rgb[..., 2] > 120) & (rgb[..., 2] - rgb[..., 0] > 60)
    assert blue.sum() > 20000


@pytest.mark.integration
@pytest.mark.slow
def test_demo_retrained_from_scratch_is_byte_identical(tmp_path, cnn_q):
    out = tmp_path / "again"
    assert cli.main(["--quiet", "demo", "--no-cache", "--no-c-engine", "--no-cortex-m", "--no-analysis",
                     "--out", str(out)]) == 0
    assert (out / "model_int8.tflite").read_bytes() == cnn_q.tflite


def _convert(model, tmp_path, *flags):
    """`tinyq convert` on a saved copy of `model` without the Cortex-M step or the analysis: (out, report)."""
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    out = tmp_path / "converted"
    assert cli.main(["--quiet", "convert", str(path), *flags, "--no-cortex-m", "--no-analysis", "--out", str(out)]) == 0
    return out, json.loads((out / "report.json").read_text())


@pytest.mark.integration
def test_convert_user_model(tmp_path, dsres_keras, capsys):
    out, r = _convert(dsres_keras, tmp_path, "--name", "my_net")
    html = (out / "report.html").read_text()
    assert "analysis" not in r and 'id="stages"' in html and 'id="sweep"' not in html
    assert r["agreement"]["c_vs_tflm_bitexact"] == 1.0
    assert (out / "firmware" / "my_net_model.c").is_file()
    assert "C engine vs TFLM bit-exact" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.slow
def test_convert_with_percentile_ranges_stays_bit_exact(tmp_path, mlp_keras, mlp_q):
    out, r = _convert(mlp_keras, tmp_path, "--percentile", "99.9")
    assert r["quantization"]["calibration_method"] == "percentile 99.9"
    assert r["model"]["sha256"] != mlp_q.sha256 and r["agreement"]["c_vs_tflm_bitexact"] == 1.0
    assert abs(r["accuracy"]["tflm_int8"] - r["accuracy"]["keras_float"]) < 0.01
    assert "Calibration: 300 samples, percentile 99.9" in (out / "report.md").read_text()


def test_bad_percentile_is_one_clear_line(tmp_path, capsys):
    assert cli.main(["--quiet", "convert", str(tmp_path / "m.keras"), "--percentile", "40",
                     "--out", str(tmp_path / "o")]) == cli.EXIT_ERROR
    assert "percentile must be in (50, 100], got 40.0" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.qemu
def test_firmware_command_updates_report(demo, capsys):
    out, _ = demo
    assert cli.main(["--quiet", "firmware", "--target", "cortex-m4", "--out", str(out), "--images", "100",
                     "--opt", "Os"]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["cortex_m4"]["opt"] == "-Os" and r["cortex_m4"]["bitexact_images"] == r["cortex_m4"]["images"] == 100
    assert r["cortex_m4"]["ops_profile"]["bitexact_images"] == 100 and r["cortex_m4"]["ops"]
    assert "bit-exact with TFLM" in capsys.readouterr().out


def test_firmware_command_needs_an_emitted_folder(tmp_path, capsys):
    assert cli.main(["--quiet", "firmware", "--out", str(tmp_path)]) == cli.EXIT_ERROR
    assert "model_int8.tflite: missing" in capsys.readouterr().err
