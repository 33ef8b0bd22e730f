"""The TFLM side of emission: the op resolver table, the generated resolver header and backend_tflm.cc."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyq import emit, tflm
from tinyq.targets import cortex_m, firmware
from tinyq.engine import TABLE, read_graph
from tinyq.engine.schema import BuiltinOperator
from tinyq.errors import UnsupportedOpError

HERE = Path(__file__).resolve().parent
STANDIN = HERE / "tflm_standin"


def test_demo_models_need_exactly_their_ops(cnn_q, mlp_q, dsres_q):
    assert tflm.resolver_methods(read_graph(cnn_q.tflite)) == ("AddConv2D", "AddMaxPool2D", "AddReshape", "AddFullyConnected",
                                                   "AddSoftmax")
    assert tflm.resolver_methods(read_graph(mlp_q.tflite)) == ("AddReshape", "AddFullyConnected", "AddSoftmax")
    assert set(tflm.resolver_methods(read_graph(dsres_q.tflite))) == {
        "AddConv2D", "AddDepthwiseConv2D", "AddAdd", "AddAveragePool2D", "AddMaxPool2D", "AddReshape",
        "AddFullyConnected", "AddSoftmax"}


def test_every_method_name_follows_tflm_spelling():
    methods = {e.tflm_method for e in TABLE.values() if e.tflm_method}
    assert all(m.startswith("Add") and m[3].isupper() for m in methods)
    assert {"AddConv2D", "AddDepthwiseConv2D", "AddBatchToSpaceNd", "AddUnidirectionalSequenceLSTM",
            "AddCumSum", "AddL2Pool2D", "AddRelu6"} <= methods


def test_op_without_method_is_refused(monkeypatch, cnn_q):
    real = tflm.tflm_method
    monkeypatch.setattr(tflm, "tflm_method", lambda code: None if code == BuiltinOperator.MAX_POOL_2D else real(code))
    with pytest.raises(UnsupportedOpError, match=r"op #1 MAX_POOL_2D \(layer pool1\): TFLM's .* has no Add method"):
        tflm.resolver_methods(read_graph(cnn_q.tflite))


def _standin_resolver(path: Path) -> None:
    """A MicroMutableOpResolver stand-in declaring every Add method of the table, for a syntax check."""
    methods = "\n".join(f"    TfLiteStatus {m}();" for m in sorted({e.tflm_method for e in TABLE.values() if e.tflm_method}))
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


@pytest.mark.tflm
@pytest.mark.qemu
def test_tflm_with_cmsis_nn_on_cortex_m4_in_qemu_is_bit_exact(cnn_q, cnn_verify, tmp_path):
    """TFLM with its CMSIS-NN kernels on the Cortex-M4 (QEMU): the golden vectors and 1000 test images equal the
    pip tflite-micro outputs byte for byte, and CMSIS-NN's code is what ran. Needs $TFLM_DIR and $CMSIS_NN_DIR
    (and $TFLM_THIRD_PARTY_INCLUDES unless Debian's headers suffice); run with -m tflm."""
    tflm_dir, cmsis_nn_dir = os.environ.get("TFLM_DIR"), os.environ.get("CMSIS_NN_DIR")
    assert tflm_dir and cmsis_nn_dir, "set TFLM_DIR and CMSIS_NN_DIR to tflite-micro and CMSIS-NN source trees"
    fw = tmp_path / "fw"
    emit.emit(cnn_q, cnn_verify, fw, name="mnist")
    kernels = "TFLM_KERNELS=conv fully_connected pooling reshape softmax"
    elf = firmware.build_stub(fw, tmp_path / "build", target="cortex-m4", backend="tflm",
                              extra=(f"TFLM_DIR={tflm_dir}", f"CMSIS_NN_DIR={cmsis_nn_dir}", kernels))
    symbols = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    assert " T arm_convolve_wrapper_s8" in symbols and " T arm_fully_connected_s8" in symbols
    golden = cortex_m.run_qemu_golden(elf, target="cortex-m4")
    assert golden.passed and golden.count == 10, golden.summary
    n = 1000
    batch = cortex_m.run_qemu_batch_measured(elf, cnn_verify.int8_inputs[:n].reshape(n, -1), 10)
    assert np.array_equal(batch.outputs, cnn_verify.tflm_outputs[:n].reshape(n, -1))
    assert 0 < batch.figures.instructions_per_inference < 8 * cnn_verify.macs
