"""The TFLM side of emission: the op resolver table, the generated resolver header and backend_tflm.cc."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyq import emit, firmware, tflm
from tinyq.errors import UnsupportedOpError

HERE = Path(__file__).resolve().parent
STANDIN = HERE / "tflm_standin"


def test_demo_models_need_exactly_their_ops(cnn_q, mlp_q, dsres_q):
    assert tflm.resolver_methods(cnn_q.tflite) == ("AddConv2D", "AddMaxPool2D", "AddReshape", "AddFullyConnected",
                                                   "AddSoftmax")
    assert tflm.resolver_methods(mlp_q.tflite) == ("AddReshape", "AddFullyConnected", "AddSoftmax")
    assert set(tflm.resolver_methods(dsres_q.tflite)) == {
        "AddConv2D", "AddDepthwiseConv2D", "AddAdd", "AddAveragePool2D", "AddMaxPool2D", "AddReshape",
        "AddFullyConnected", "AddSoftmax"}


def test_every_method_name_follows_tflm_spelling():
    methods = set(tflm._table().values())
    assert all(m.startswith("Add") and m[3].isupper() for m in methods)
    assert {"AddConv2D", "AddDepthwiseConv2D", "AddBatchToSpaceNd", "AddUnidirectionalSequenceLSTM",
            "AddCumSum", "AddL2Pool2D", "AddRelu6"} <= methods


def test_op_without_method_is_refused(monkeypatch, cnn_q):
    table = tflm._table()
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    del table[schema.BuiltinOperator.MAX_POOL_2D]
    monkeypatch.setattr(tflm, "_table", lambda: table)
    with pytest.raises(UnsupportedOpError, match=r"op #1 MAX_POOL_2D \(layer pool1\): TFLM's .* has no Add method"):
        tflm.resolver_methods(cnn_q.tflite)


def _standin_resolver(path: Path) -> None:
    """A MicroMutableOpResolver stand-in declaring every Add method of the table, for a syntax check."""
    methods = "\n".join(f"    TfLiteStatus {m}();" for m in sorted(set(tflm._table().values())))
    path.write_text("#pragma once\n#include \"tensorflow/lite/micro/micro_interpreter.h\"\nnamespace tflite {\n"
                    "template <unsigned int N> class MicroMutableOpResolver : public MicroOpResolver {\n"
                    f"  public:\n{methods}\n}};\n}}\n")


@pytest.mark.integration
def test_resolver_header_and_tflm_backend_compile_as_cxx17(cnn_q, cnn_verify, tmp_path):
    fw = tmp_path / "fw"
    emit.emit(cnn_q, cnn_verify, fw, name="mnist", c_engine=False)
    inc = tmp_path / "inc"
    (inc / "tensorflow/lite/micro").mkdir(parents=True)
    for sub in ("tensorflow/lite/micro/micro_interpreter.h", "tensorflow/lite/schema/schema_generated.h"):
        (inc / sub).parent.mkdir(parents=True, exist_ok=True)
        (inc / sub).write_text((STANDIN / sub).read_text())
    _standin_resolver(inc / "tensorflow/lite/micro/micro_mutable_op_resolver.h")
    cmd = ["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-I", str(inc), "-I", str(fw),
           "-I", str(firmware.STUB_DIR), str(firmware.STUB_DIR / "backend_tflm.cc")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = (fw / "mnist_op_resolver.h").read_text()
    assert "tflite::MicroMutableOpResolver<5>" in text and text.count("resolver.Add") == 5


@pytest.mark.tflm
def test_stub_with_real_tflm_runs_golden_vectors(cnn_q, cnn_verify, tmp_path):
    """Needs a tflite-micro source tree in $TFLM_DIR; run with -m tflm."""
    tflm_dir = os.environ.get("TFLM_DIR")
    assert tflm_dir, "set TFLM_DIR to a tflite-micro source tree"
    fw = tmp_path / "fw"
    emit.emit(cnn_q, cnn_verify, fw, name="mnist")
    exe = firmware.build_stub(fw, tmp_path / "build", backend="tflm", extra=(f"TFLM_DIR={tflm_dir}",))
    golden = firmware.run_golden(exe)
    assert golden.passed, golden.lines
    outs = firmware.run_batch(exe, cnn_verify.int8_inputs[:500], 10)
    assert np.array_equal(outs, cnn_verify.tflm_outputs[:500].reshape(500, -1))
