"""`tinyq diff`: planted divergences in the generated C are found at exactly their op (host and Cortex-M4),
agreeing runtimes report nothing, RESHAPE keeps op indices right, and the explanations' exact arithmetic
reproduces TFLM element for element."""

import json
import re
import shutil

import numpy as np
import pytest

from tinyq import cli, diff, difftrace, emit, runtimes, verify
from tinyq.diff import DiffConfig, Runtime
from tinyq.errors import TinyqError, VerificationError
from tinyq.engine.explain import explain
from tinyq.engine.fixedpoint import srdhm
from tinyq.engine.ops.rounding import multiply_double_rounding, multiply_single_rounding
from tinyq.engine import read_graph
from tinyq.engine import Optimize, lower

IMAGES = 20


def _folder(q, dataset, root, name, optimize=Optimize.SPEED):
    """A folder as `tinyq demo` leaves it, as far as diff reads it: model_int8.tflite and firmware/. Planted
    edits use SIZE folders: their constant arrays are the generic kernels' (op<N>_weights, _bias, _mult, _shift)."""
    out = root / name
    inputs, _ = diff.folder_inputs(q, None, tuple(range(IMAGES)))
    tflm = runtimes.run_tflm(q.tflite, inputs)
    r = verify.VerifyResult.tflm_only(q, inputs, tflm, dataset.test_y[:IMAGES])
    emit.emit(q, r, out / "firmware", name="mnist", optimize=optimize)
    (out / "model_int8.tflite").write_bytes(q.tflite)
    return out


@pytest.fixture(scope="module")
def cnn_dir(tmp_path_factory, cnn_q, dataset):
    return _folder(cnn_q, dataset, tmp_path_factory.mktemp("diff"), "cnn")


@pytest.fixture(scope="module")
def cnn_size_dir(tmp_path_factory, cnn_q, dataset):
    return _folder(cnn_q, dataset, tmp_path_factory.mktemp("diff"), "cnn", Optimize.SIZE)


@pytest.fixture(scope="module")
def mlp_dir(tmp_path_factory, mlp_q, dataset):
    return _folder(mlp_q, dataset, tmp_path_factory.mktemp("diff"), "mlp", Optimize.SIZE)


def _copy(src, tmp_path):
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def _plant(out, array, index, change):
    """Change value `index` of the constant array `array` in the generated C engine, as a user's edit would."""
    path = out / "firmware" / "mnist_model.c"
    text = path.read_text()
    found = re.search(rf"\b{array}\[\d+\] = \{{\n(.*?)\n\}};", text, re.S)
    assert found, f"{array} not in {path}"
    numbers = list(re.finditer(r"-?\d+", found.group(1)))
    old = int(numbers[index].group())
    start, end = (found.start(1) + numbers[index].start(), found.start(1) + numbers[index].end())
    path.write_text(text[:start] + str(change(old)) + text[end:])


def _diff(out, runtimes=(Runtime.TFLM,), targets=("host",), images=IMAGES, allow_modified=True):
    config = DiffConfig(images=tuple(range(images)), c_targets=targets, allow_modified=allow_modified,
                        python_runtimes=runtimes)
    return diff.run_diff(out, config)


def _row(result, op_index, pair):
    return next(o for o in result.ops if o.op_index == op_index and o.pair == pair)


@pytest.mark.integration
def test_agreeing_pair_reports_no_divergence(cnn_dir):
    result = _diff(cnn_dir, allow_modified=False)
    assert result.agree and not result.divergences and not result.modified_files
    assert result.pairs[0].pair == ("tflm", "c-host") and result.pairs[0].identical == IMAGES
    assert all(o.images == o.elements == o.max_lsb == 0 for o in result.ops)
    assert [op.name for op in result.layout.ops] == [op.name for op in read_graph(cnn_dir.joinpath(
        "model_int8.tflite").read_bytes()).operators]


# (array in the generated C, element, change, op that must be named); the CNN's ops are conv1, pool1, conv2,
# pool2, RESHAPE, logits, softmax: op 5 comes after the RESHAPE the C engine runs as an alias (no kernel call).
PLANTS = [
    ("op0_weights", 4, lambda v: -v if v else 100, 0),
    ("op5_bias", 3, lambda v: v + 200000, 5),
    ("op2_mult", 0, lambda v: v - (1 << 28), 2),
    ("op5_shift", 7, lambda v: v + 1, 5),
]


@pytest.mark.integration
@pytest.mark.parametrize("array, index, change, op_index", PLANTS, ids=[p[0] for p in PLANTS])
def test_planted_divergence_named_at_its_op_on_the_host(cnn_size_dir, tmp_path, array, index, change, op_index):
    out = _copy(cnn_size_dir, tmp_path)
    _plant(out, array, index, change)
    with pytest.raises(TinyqError, match=r"mnist_model\.c.*--allow-modified"):
        _diff(out, allow_modified=False)
    result = _diff(out)
    assert result.modified_files == ("mnist_model.c",)
    pair = ("tflm", "c-host")
    for op in result.layout.ops:
        row = _row(result, op.index, pair)
        if op.index < op_index:
            assert row.images == 0, f"op #{op.index} differs before the planted op #{op_index}"
        if op.index == op_index:
            assert row.images > 0
    assert result.divergences, "the planted change never reached the final output"
    for d in result.divergences:
        assert (d.pair, d.op_index) == (pair, op_index)
        assert d.explanation.matches[0][1], "TFLM's value must match a rounding rule"
        assert "no rounding of the model's parameters gives" in d.explanation.text
    assert not result.agree


@pytest.mark.integration
@pytest.mark.qemu
def test_planted_divergence_named_at_its_op_on_cortex_m4(cnn_size_dir, tmp_path):
    out = _copy(cnn_size_dir, tmp_path)
    _plant(out, "op5_bias", 3, lambda v: v + 200000)
    result = _diff(out, targets=("host", "cortex-m4"), images=3)
    assert result.runtimes == (Runtime.TFLM, Runtime.C_HOST, Runtime.C_CORTEX_M4)
    assert result.twins() == {"c-cortex-m4": "c-host"}
    on_m4 = [d for d in result.divergences if d.pair == ("tflm", "c-cortex-m4")]
    assert len(on_m4) == 3 and {d.op_index for d in on_m4} == {5}
    assert all(d.op_name == "FULLY_CONNECTED" and "logits" in d.tensor for d in on_m4)


@pytest.mark.integration
def test_reshape_of_the_graph_input_keeps_op_indices(mlp_dir, tmp_path):
    result = _diff(mlp_dir)
    assert result.agree
    assert [op.name for op in result.layout.ops][:2] == ["RESHAPE", "FULLY_CONNECTED"]
    out = _copy(mlp_dir, tmp_path)
    _plant(out, "op2_bias", 0, lambda v: v + 50000)
    planted = _diff(out)
    assert planted.divergences and {d.op_index for d in planted.divergences} == {2}
    assert _row(planted, 1, ("tflm", "c-host")).images == 0


def test_c_trace_that_does_not_follow_the_model_is_refused(cnn_q):
    graph = read_graph(cnn_q.tflite)
    lowered = lower(graph)
    layout = diff.Layout.of(graph)
    x = np.zeros((1, 28, 28, 1), np.int8)
    record = b"".join(np.array([c.op_index, graph.tensors[c.output].nbytes], "<i4").tobytes()
                      + bytes(graph.tensors[c.output].nbytes) for c in lowered.calls)
    trace = diff.parse_c_trace(record, 1, graph, lowered, layout, x, "test")
    assert trace.shape == (1, layout.width)
    with pytest.raises(VerificationError, match="expected"):
        diff.parse_c_trace(record[:-1], 1, graph, lowered, layout, x, "test")
    swapped = record.replace(np.array([5], "<i4").tobytes() + np.array([10], "<i4").tobytes(),
                             np.array([4], "<i4").tobytes() + np.array([10], "<i4").tobytes())
    with pytest.raises(VerificationError, match=r"op #4 with 10 bytes, expected op #5 FULLY_CONNECTED"):
        diff.parse_c_trace(swapped, 1, graph, lowered, layout, x, "test")


@pytest.mark.parametrize("x, m, shift", [(19486, 1833811109, -9), (-5000, 1 << 30, 0), (123456, 2040109466, -12),
                                         (7, 1073741824, 1), (-1, 1500000000, -31)])
def test_fixed_point_matches_its_definition(x, m, shift):
    exact = x * m * 2.0 ** (shift - 31)
    assert abs(multiply_double_rounding(x, m, shift) - exact) <= 1.0
    assert multiply_single_rounding(x, m, shift) == int(np.floor(exact + 0.5))
    assert srdhm(-(1 << 31), -(1 << 31)) == (1 << 31) - 1


@pytest.mark.parametrize("which", ["cnn", "dsres"])
def test_exact_recomputation_reproduces_tflm(which, request):
    """Every op of the CNN and the depthwise/residual model (conv, depthwise, pools, add, fully connected,
    softmax): the rule TFLM follows, recomputed from the model, gives TFLM's value at sampled elements."""
    q = request.getfixturevalue(f"{which}_q")
    graph = read_graph(q.tflite)
    calls = {c.op_index: c for c in lower(graph, Optimize.SIZE).calls}
    layout = diff.Layout.of(graph)
    inputs, _ = diff.folder_inputs(q, None, (0, 1))
    trace = difftrace.trace_tflm(q.tflite, inputs, layout)
    rng = np.random.default_rng(0)
    checked = set()
    for row in range(len(inputs)):
        values = {layout.input_tensor: inputs[row].reshape(-1)}
        values.update({op.tensor_index: trace[row, op.columns] for op in layout.ops})
        for op in layout.ops:
            if op.index not in calls:
                continue
            out = trace[row, op.columns]
            for flat in rng.choice(op.size, size=min(op.size, 25), replace=False):
                why = explain(graph, graph.operators[op.index], calls[op.index], values, int(flat),
                              (("tflm", int(out[flat])),))
                assert why.matches[0][1], f"{why.text}"
                assert any("TFLM" in rule or "window maximum" in rule for rule in why.matches[0][1]), why.text
            checked.add(op.name)
    assert checked >= ({"CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"} if which == "cnn" else
                       {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"})


@pytest.mark.integration
def test_cli_exit_status_and_diff_json(cnn_dir, cnn_size_dir, tmp_path, capsys):
    assert cli.main(["--quiet", "diff", str(cnn_dir), "--images", "5"]) == 0
    text = capsys.readouterr().out
    assert "final outputs agree in every pair" in text and "inputs with identical final outputs (of 5)" in text
    assert "c-host is identical to " in text
    out = _copy(cnn_size_dir, tmp_path)
    _plant(out, "op5_bias", 3, lambda v: v + 200000)
    assert cli.main(["--quiet", "diff", str(out), "--image", "0"]) == 2
    assert "--allow-modified" in capsys.readouterr().err
    assert cli.main(["--quiet", "diff", str(out), "--image", "0", "--allow-modified"]) == 1
    text = capsys.readouterr().out
    assert "op #5 FULLY_CONNECTED (logits)" in text and "runtimes disagree" in text
    report = json.loads((out / "diff.json").read_text())
    assert report["runtimes"] == ["litert-ref", "litert", "tflm", "c-host"]
    assert {d["pair"][1] for d in report["divergences"]} == {"c-host"}
    for d in report["divergences"]:
        assert set(d) >= {"image", "pair", "op_index", "op_name", "tensor", "elements", "max_lsb", "explanation"}
        assert d["image"] == 0
    assert [d["op_index"] for d in report["divergences"] if d["pair"] == ["tflm", "c-host"]] == [5]
    assert [o["op_index"] for o in report["ops"]] == list(range(7))
    assert all(len(o["pairs"]) == 6 for o in report["ops"])


def test_op_without_exact_model_is_still_located(cnn_q):
    graph = read_graph(cnn_q.tflite)
    reshape = next(op for op in graph.operators if op.name == "RESHAPE")
    why = explain(graph, reshape, None, {}, 7, (("tflm", 3), ("c-host", 4)))
    assert why.element == (0, 7) and why.accumulator is None and why.exact is None
    assert why.text.startswith("op #4 RESHAPE, output element [0, 7]: tflm 3, c-host 4. Not explained")


@pytest.mark.integration
def test_quick_diff_recomputes_the_c_engine_over_the_whole_test_set(mlp_q, mlp_verify, tmp_path):
    """When the C engine is not known to match TFLM, quick_diff runs it (the host library) on every input."""
    fw = tmp_path / "fw"
    emit.emit(mlp_q, mlp_verify, fw, name="mlp")
    tflm = mlp_verify.tflm_outputs.reshape(len(mlp_verify.tflm_outputs), -1)
    finals = {Runtime.TFLM: tflm}
    quick = diff.quick_diff(mlp_q.tflite, mlp_verify.int8_inputs, finals, fw, False, tmp_path / "build")
    assert [(p.pair, p.images, p.identical) for p in quick.pairs] == [(("tflm", "c-host"), 10000, 10000)]
    assert quick.disagreeing == 0 and quick.diff is None
