"""What the chain says first (issue 24 items 5 and 6): a float model near chance and the evidence on its causes
(label order with the permutation, input range, input layout), an int8 drop with the sensitive layers, and
--labels ordering an image folder's classes. Fast tests on the logic; CLI runs on MNIST folders and a model
made fragile by rescaling three hidden units."""

import json
import types

import numpy as np
import pytest

from tinyq import cli, findings, rewrite, userdata
from tinyq.analyze import LayerError, confusion
from tinyq.data import ClassOrder, Preprocessing, Task
from tinyq.errors import DataError
from tinyq.findings import Cause, DropMeasure, Findings, Int8Drop, NearChance
from tinyq.rewrite import LayerPair

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SORTED = tuple(sorted(DIGITS))  # eight, five, four, nine, one, seven, six, three, two, zero


@pytest.mark.fast
def test_chance_and_threshold():
    labels = np.repeat(np.arange(10), 5)
    assert findings.chance_level(labels, 10) == pytest.approx(0.1)
    assert findings.near_chance_threshold(0.1) == pytest.approx(0.15)  # 1.5x chance with many classes
    assert findings.near_chance_threshold(0.5) == pytest.approx(0.625)  # a quarter of the headroom with two
    assert findings.chance_level(np.array([0] * 9 + [1]), 2) == pytest.approx(0.9)  # always the majority


@pytest.mark.fast
def test_label_permutation_found_only_for_a_permutation():
    labels = np.repeat(np.arange(10), 20)
    truth = np.array([DIGITS.index(SORTED[c]) for c in labels])  # what a correct model says of folder c
    predicted = truth.copy()
    predicted[::10] = (predicted[::10] + 1) % 10  # 10 % errors
    m = confusion(labels, predicted, 10)
    acc = float(np.mean(predicted == labels))
    relabels, remapped = findings.label_permutation(m, acc, SORTED)
    assert remapped == pytest.approx(0.9)
    assert [(r.name, r.labelled, r.predicted) for r in relabels][:2] == [("eight", 0, 8), ("five", 1, 5)]
    assert "six" not in [r.name for r in relabels]  # folder 'six' sorts to index 6: already right
    assert findings.label_permutation(confusion(labels, labels, 10), 1.0, SORTED) == ((), None)
    collapsed = confusion(labels, np.zeros_like(labels), 10)  # one class for everything: no permutation
    assert findings.label_permutation(collapsed, 0.1, SORTED) == ((), None)


def _near(relabels=(), remapped=None, probes=(), order=ClassOrder.FOLDER_NAMES):
    return NearChance(0.09, 0.1, 10, SORTED, order, relabels, remapped, probes, (0.0, 1.0), "raw 0..255 -> 0..1",
                      (28, 28), (28, 28))


@pytest.mark.fast
def test_near_chance_lines_name_the_label_order_and_the_fix():
    labels = np.repeat(np.arange(10), 20)
    truth = np.array([DIGITS.index(SORTED[c]) for c in labels])
    relabels, remapped = findings.label_permutation(confusion(labels, truth, 10), 0.1, SORTED)
    probe = findings.Probe(Cause.INPUT_RANGE, "inputs x 255", 0.1, 200)
    near = _near(relabels, remapped, (probe,))
    lines = near.lines()
    assert lines[0].startswith("float accuracy 9.0 % is near chance (10.0 % with 10 classes")
    assert "folder 'eight' is predicted as class 8 but labelled 0" in lines[1]
    assert "label order (likely cause)" in lines[1] and "--labels FILE" in lines[1]
    assert "eight=0, five=1, four=2, nine=3" in lines[1]
    assert near.model_order() == DIGITS
    assert lines[2].startswith("  - input range: model input spans 0..1") and "none is clear of chance" in lines[2]
    assert "likely" not in lines[2] and "no other reading" in lines[3]
    assert Findings(near, Int8Drop(DropMeasure.ACCURACY, 0.09, 0.05, (), "x")).lines() == lines  # float first
    assert json.loads(json.dumps(Findings(near).as_dict()))["float_near_chance"]["model_order"] == list(DIGITS)
    plain = _near().lines()[1]
    assert plain.startswith("  - label order: the float predictions are no permutation")


@pytest.mark.fast
def test_probes_find_a_transposed_layout_and_a_raw_range():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (300, 6, 6), dtype=np.uint8)
    key = rng.normal(size=(36, 4))

    def classify(x):  # a "model" trained on transposed images
        return np.swapaxes(x, 1, 2).reshape(len(x), -1) @ key

    labels = (raw.reshape(len(raw), -1).astype(np.float64) @ key).argmax(1)
    span, probes = findings.input_probes(lambda v: classify(v * 255.0), raw, labels,
                                         Preprocessing.input_range(0, 1), (6, 6))
    assert span == pytest.approx((0.0, 1.0), abs=0.01)
    by_change = {p.change: p for p in probes}
    assert by_change["images transposed (rows and columns swapped)"].accuracy == 1.0
    assert by_change["inputs x 255"].accuracy < 0.6
    near = NearChance(0.25, 0.25, 4, (), ClassOrder.STORED, (), None, probes, span, "raw", (6, 6), (6, 6))
    assert "input layout (likely cause)" in near.lines()[3] and "input range: " in near.lines()[2]
    _, raw_probes = findings.input_probes(lambda v: classify(v * 255.0), raw, labels, Preprocessing.as_stored(),
                                          (6, 6))
    assert any(p.change == "inputs / 255" and p.cause is Cause.INPUT_RANGE for p in raw_probes)


@pytest.mark.fast
def test_drop_line_and_measures():
    layers = (LayerError("fc2", "FULLY_CONNECTED", 0.1, 1.0, 6.3), LayerError("fc1", "FULLY_CONNECTED", 0.1, 1.0, 30.0))
    line = Int8Drop(DropMeasure.ACCURACY, 0.937, 0.805, layers, "analysis").line()
    assert line == ("int8 drop 13.2 pp: accuracy float 93.7 % -> TFLM int8 80.5 %; most sensitive layers "
                    "(analysis): fc2 (6.3 dB), fc1 (30.0 dB); --max-drop would search for a recipe that keeps it")
    unmeasured = Int8Drop(DropMeasure.SQNR, 0.0, 12.0, (), "per-layer error not measured: no layer").line()
    assert "SQNR vs float 12.0 dB (under 20 dB)" in unmeasured and "not measured: no layer): not measured" in unmeasured

    def result(task, float_out, tflm_out, keras_float=None, tflm=None, sqnr=30.0):
        return types.SimpleNamespace(task=task, float_outputs=float_out, tflm_outputs=tflm_out,
                                     test_images=len(tflm_out), keras_float=keras_float, tflm_int8=tflm,
                                     output_error=types.SimpleNamespace(sqnr_db=sqnr))

    a = np.eye(4)[[0, 1, 2, 3] * 25]
    b = a.copy()
    b[:2] = np.eye(4)[[3, 3]]  # 2 of 100 top-1 differ
    assert findings.drop_measure(result(Task.CLASSIFICATION, a, a, 0.95, 0.94)) is None  # exactly 1 pp
    assert findings.drop_measure(result(Task.CLASSIFICATION, a, a, 0.95, 0.935))[0] is DropMeasure.ACCURACY
    assert findings.drop_measure(result(Task.NONE, a, b)) == (DropMeasure.AGREEMENT, 1.0, 0.98)
    assert findings.drop_measure(result(Task.REGRESSION, a, b, sqnr=19.0)) == (DropMeasure.SQNR, 0.0, 19.0)
    assert findings.drop_measure(result(Task.REGRESSION, a, b, sqnr=25.0)) is None
    assert findings.drop_measure(result(Task.CLASSIFICATION, None, a, None, 0.5)) is None  # no float model


def _digit_folder(root, images, labels, per_class=50):
    from PIL import Image

    for c, name in enumerate(DIGITS):
        (root / name).mkdir(parents=True)
        for i, k in enumerate(np.flatnonzero(labels == c)[:per_class]):
            Image.fromarray(images[k]).save(root / name / f"{i:03d}.png")
    return root


@pytest.mark.fast
def test_labels_file_orders_the_class_folders(tmp_path):
    rng = np.random.default_rng(1)
    folder = _digit_folder(tmp_path / "d", rng.integers(0, 256, (30, 4, 4), dtype=np.uint8), np.arange(30) % 10, 1)
    ds = userdata.load_data(folder)
    assert ds.class_names == SORTED and ds.class_order is ClassOrder.FOLDER_NAMES
    assert ds.test_y.tolist() == list(range(10))  # folders in sorted order: eight=0, five=1, ...
    (tmp_path / "labels.txt").write_text("\n".join(DIGITS) + "\n")
    ds = userdata.load_data(folder, labels_file=tmp_path / "labels.txt")
    assert ds.class_names == DIGITS and ds.class_order is ClassOrder.LABELS_FILE
    assert ds.test_y.tolist() == [DIGITS.index(n) for n in SORTED]  # eight=8, five=5, ...
    assert np.array_equal(ds.test_x[ds.test_y == 8], userdata.load_data(folder).test_x[:1])
    (tmp_path / "short.txt").write_text("zero\none\n")
    with pytest.raises(DataError, match=r"short.txt: no line for class folder\(s\) 'eight', 'five'"):
        userdata.load_data(folder, labels_file=tmp_path / "short.txt")
    (tmp_path / "twice.txt").write_text("\n".join(DIGITS + ("one",)) + "\n")
    with pytest.raises(DataError, match="twice.txt: class name\\(s\\) 'one' on more than one line"):
        userdata.load_data(folder, labels_file=tmp_path / "twice.txt")


def _convert(capsys, model_path, out, *extra):
    code = cli.main(["--quiet", "convert", str(model_path), "--out", str(out), "--no-cortex-m", "--c-engine", "off",
                     "--no-analysis", *map(str, extra)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    return printed.splitlines(), json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


@pytest.mark.integration
def test_mnist_folder_named_by_words_says_label_order_and_labels_fixes_it(tmp_path, capsys, mlp_keras, dataset):
    model_path = tmp_path / "mlp.keras"
    mlp_keras.save(model_path)
    folder = _digit_folder(tmp_path / "digits", dataset.test_x, dataset.test_y)
    lines, report, md = _convert(capsys, model_path, tmp_path / "o1", "--data", folder)
    assert lines[0].startswith("finding: float accuracy ") and "is near chance (10.0 % with 10 classes" in lines[0]
    assert lines[1].startswith("  - label order (likely cause): the float confusion matrix is a permutation: "
                               "folder 'eight' is predicted as class 8 but labelled 0")
    assert "class folders are numbered in sorted name order (eight=0, five=1, four=2, nine=3" in lines[1]
    assert ("for this model the file's lines are zero, one, two, three, four, five, six, seven, eight, nine"
            in lines[1])
    assert lines[2].startswith("  - input range: ") and lines[3].startswith("  - input layout: ")
    assert not any(line.startswith("finding: int8 drop") for line in lines)
    near = report["findings"]["float_near_chance"]
    assert near["float_accuracy"] < 0.15 and near["remapped_accuracy"] > 0.85
    assert near["permutation"][0] == {"class": "eight", "labelled": 0, "predicted": 8,
                                      "share": near["permutation"][0]["share"]}
    assert "## Findings" in md and "folder 'eight' is predicted as class 8 but labelled 0" in md
    (tmp_path / "labels.txt").write_text("\n".join(DIGITS) + "\n")
    lines, report, md = _convert(capsys, model_path, tmp_path / "o2", "--data", folder, "--labels",
                                 tmp_path / "labels.txt")
    assert report["accuracy"]["keras_float"] > 0.85 and report["class_names"] == list(DIGITS)
    assert report["findings"] == {"float_near_chance": None, "int8_drop": None, "lines": []}
    assert not any(line.startswith("finding:") for line in lines) and "## Findings" not in md


@pytest.mark.integration
def test_int8_drop_prints_one_line_with_the_sensitive_layers(tmp_path, capsys, mlp_keras):
    fragile = rewrite.copy_model(mlp_keras)  # three fc1 units 300x larger, fc2 reading them 300x smaller
    scales = np.ones(100)
    scales[:3] = 1.0 / 300.0
    rewrite.rescale_channels(fragile, LayerPair("fc1", "fc2", 0), scales)
    fragile.save(tmp_path / "fragile.keras")
    lines, report, md = _convert(capsys, tmp_path / "fragile.keras", tmp_path / "o")
    drop = report["findings"]["int8_drop"]
    assert drop["measure"] == "accuracy" and drop["float"] - drop["int8"] > 0.01
    assert lines[0] == "finding: " + drop["line"] and not lines[1].startswith("finding:")
    assert lines[0].startswith(f"finding: int8 drop {100 * (drop['float'] - drop['int8']):.1f} pp: accuracy float ")
    assert "most sensitive layers (per-layer error on 200 test samples, analysis off): fc" in lines[0]
    assert lines[0].endswith("--max-drop would search for a recipe that keeps it")
    assert len(drop["most_sensitive_layers"]) == 3 and "- " + drop["line"] in md
