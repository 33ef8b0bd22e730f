"""Emission and the C kernels (fast, no TensorFlow): the engine renders byte-identically twice, and compiled
on the host (gcc -O2 -std=c99 -Wall -Wextra -Werror, one executable for every case) each op family's engine, in
Optimize.SPEED and Optimize.SIZE, gives exactly what TFLite's integer arithmetic gives, recomputed in Python by
tests/int8_reference.py."""

from __future__ import annotations

import numpy as np
import pytest
import tflite_build as tb
import engine_host
import int8_reference

from tinyq.engine import Optimize, generate, read_graph

pytestmark = pytest.mark.fast

RANDOM_INPUTS = 2  # per case, besides the all -128 and all 127 inputs; the Python reference is the slow part


@pytest.mark.parametrize("case", sorted(tb.CASES))
def test_engine_renders_deterministically(case):
    tflite = tb.case(case)
    for optimize in (Optimize.SPEED, Optimize.SIZE):
        a = generate(read_graph(tflite), "net", engine_host.BANNER, optimize)
        b = generate(read_graph(bytes(tflite)), "net", engine_host.BANNER, optimize)
        assert [(f.name, f.text) for f in a.files] == [(f.name, f.text) for f in b.files]
        assert [f.name for f in a.files] == ["net_model.h", "net_model.c", "tq_rounding.h"]
        header, source = a.files[0].text, a.files[1].text
        assert f"#define NET_ARENA_BYTES {a.arena_bytes}\n" in header
        assert f"#define NET_INPUT_BYTES {a.input_bytes}\n" in header
        assert "float" not in source and "double" not in source and "malloc" not in source
        assert a.call_count == source.count("TINYQ_TRACE(")
        assert a.optimize is optimize


def test_engine_figures_of_a_chain():
    tflite = tb.case("chain")
    g = read_graph(tflite)
    e = generate(read_graph(tflite), "chain", engine_host.BANNER, Optimize.SIZE)
    weights = sum(t.nbytes for t in g.tensors if t.is_constant and t.dtype == "int8")
    assert weights < e.const_bytes < weights + 1024
    assert (e.input_bytes, e.output_bytes, e.call_count) == (200, 10, 6)
    assert e.arena_bytes == e.lower_bound_bytes == 1800
    assert [k for _, k in e.kernels] == ["tq_conv2d", "tq_depthwise_conv2d", "tq_add", "tq_max_pool",
                                         "tq_fully_connected", "tq_softmax"]


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    return engine_host.build({case: tb.case(case) for case in tb.CASES}, tmp_path_factory.mktemp("engines"))


def _inputs(case: str, n_bytes: int) -> np.ndarray:
    rng = np.random.default_rng(sorted(tb.CASES).index(case))
    count = 1 if case == "chain" else RANDOM_INPUTS
    return np.concatenate([rng.integers(-128, 128, (count, n_bytes)),
                           np.full((1, n_bytes), -128), np.full((1, n_bytes), 127)]).astype(np.int8)


@pytest.mark.parametrize("case", sorted(tb.CASES))
def test_host_engine_equals_tflite_integer_arithmetic(engines, case):
    tflite = tb.case(case)
    xs = _inputs(case, engines.sizes[f"{case}_speed"][0])
    want = np.stack([int8_reference.run(tflite, x) for x in xs])
    for optimize in ("speed", "size"):
        got = engines.run(f"{case}_{optimize}", xs)
        bad = np.argwhere(got != want)
        assert bad.size == 0, (f"{optimize}: {len(bad)} of {want.size} values differ, first (input, element) "
                               f"{bad[0].tolist()}: C {got[tuple(bad[0])]}, reference {want[tuple(bad[0])]}")
    assert len(np.unique(want)) > 2, want  # the case exercises the arithmetic, not only saturation
