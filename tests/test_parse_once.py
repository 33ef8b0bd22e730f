"""One read of the model per run: the reader parses a model's bytes once, and every later stage of `tinyq convert`
(pre-flight, verification, emission, the C engine, the op resolver, the report, the quick diff) uses the checked
Graph that travels inside QuantizedModel. The count is taken at the reader's first step, per distinct model."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter

import numpy as np
import pytest
import tflite_build as tb

from tinyq import cli
from tinyq.engine import reader


@pytest.mark.integration
def test_convert_of_a_tflite_reads_the_model_once(tmp_path, monkeypatch):
    model = tmp_path / "chain_int8.tflite"
    model.write_bytes(tb.chain())
    rng = np.random.default_rng(0)
    x = rng.random((40, 10, 10, 2), dtype=np.float32) * 6 - 3  # the input's int8 range at scale 0.03
    np.savez(tmp_path / "data.npz", x_train=x[:20], y_train=np.arange(20) % 10, x_test=x[20:],
             y_test=np.arange(20) % 10)
    reads: Counter = Counter()
    real = reader.check_unpack_budget

    def counting(data: bytes) -> None:
        reads[hashlib.sha256(bytes(data)).hexdigest()] += 1
        real(data)

    monkeypatch.setattr(reader, "check_unpack_budget", counting)
    code = cli.main(["--quiet", "convert", str(model), "--data", str(tmp_path / "data.npz"), "--out",
                     str(tmp_path / "out"), "--as-stored", "--no-cortex-m", "--no-analysis"])
    assert code == 0
    assert (tmp_path / "out" / "firmware" / "chain_int8_model.c").is_file()  # the C engine ran on the Graph
    assert reads == {hashlib.sha256(model.read_bytes()).hexdigest(): 1}, reads


@pytest.mark.fast
def test_a_quantized_model_cannot_carry_a_graph_of_other_bytes():
    from tinyq.engine import read_graph
    from tinyq.qmodel import QuantizedModel, QuantizeConfig, TensorQuant

    data = tb.chain()
    g = read_graph(data)
    io = TensorQuant("x", (1,), "int8", 1.0, 0)
    q = QuantizedModel("chain", data, (), io, io, QuantizeConfig(), g)
    with pytest.raises(ValueError, match="read from other bytes"):
        dataclasses.replace(q, tflite=tb.chain(seed=1))
