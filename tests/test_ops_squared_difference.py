"""SQUARED_DIFFERENCE in the C engine, over every pair of int8 values its arithmetic sees: the graph input (all 256
values) broadcast against a constant holding all 256 values gives all 65,536 pairs in one output. The fast lane
compares the generated C with an exact model of TFLM's integer arithmetic (and the family's recomputation);
the integration tests compare it with TFLM itself, on the host (also under ASan+UBSan) and on a Cortex-M4."""

from __future__ import annotations

import numpy as np
import pytest
import tflite_build as tb

import engine_host
from tinyq.engine import lower, read_graph
from tinyq.engine.fixedpoint import f32, mul_by_quantized_multiplier, quantize_multiplier
from tinyq.engine.ops.context import fields_of
from tinyq.errors import UnsupportedOpError

# (input quantization, constant quantization, output quantization, constant first)
CASES = {
    "equal_scales": ((0.05, 3), (0.05, -7), (0.2, -128), False),
    "wide_input": ((0.31, -20), (0.02, 11), (1.9, -100), False),
    "narrow_output": ((0.01, 0), (0.013, 127), (0.0004, -3), True),
    "extreme_zero_points": ((0.07, -128), (0.07, 127), (0.9, 127), True),
}
ALL_VALUES = np.arange(-128, 128, dtype=np.int8).reshape(1, 256, 1)


def model(in_q, const_q, out_q, const_first: bool) -> bytes:
    g = tb.GraphBuilder(0)
    x = g.input((1, 256, 1), *in_q)
    c = g.const_int8(np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 256), *const_q, name="operand")
    y = g.activation((1, 256, 256), *out_q, name="sqdiff")
    g.op("SQUARED_DIFFERENCE", [c, x] if const_first else [x, c], [y])
    return g.output(y).build()


def tflm_arithmetic(a_q, b_q, out_q, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLM's int8 SquaredDifference written out (7 bits of headroom, double rounding), elementwise."""
    twice_max = 2.0 * max(f32(a_q[0]), f32(b_q[0]))
    m1, m2 = quantize_multiplier(f32(a_q[0]) / twice_max), quantize_multiplier(f32(b_q[0]) / twice_max)
    mo = quantize_multiplier(twice_max * twice_max / (float(1 << 14) * f32(out_q[0])))

    def one(x: int, y: int) -> int:
        d = (mul_by_quantized_multiplier((x - a_q[1]) << 7, *m1) - mul_by_quantized_multiplier((y - b_q[1]) << 7, *m2))
        return max(-128, min(127, mul_by_quantized_multiplier(d * d, *mo) + out_q[1]))
    return np.vectorize(one, otypes=[np.int8])(a, b)


def expected(case: str) -> np.ndarray:
    in_q, const_q, out_q, const_first = CASES[case]
    x, c = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")  # [input value][const value]
    if const_first:
        return tflm_arithmetic(const_q, in_q, out_q, c, x).reshape(-1)
    return tflm_arithmetic(in_q, const_q, out_q, x, c).reshape(-1)


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    return {name: model(*args) for name, args in CASES.items()}


@pytest.fixture(scope="module")
def host(models, tmp_path_factory):
    return engine_host.build(models, tmp_path_factory.mktemp("sqdiff"))


@pytest.mark.fast
@pytest.mark.parametrize("case", CASES)
def test_every_pair_matches_tflm_arithmetic(case, host):
    want = expected(case)
    for optimize in ("speed", "size"):
        got = host.run(f"{case}_{optimize}", ALL_VALUES)[0]
        assert np.array_equal(got, want), f"{int((got != want).sum())} of 65536 pairs differ"


@pytest.mark.fast
@pytest.mark.parametrize("case", CASES)
def test_recomputation_names_double_rounding(case, models):
    g = read_graph(models[case])
    (call,) = lower(g).calls
    assert call.kernel == "tq_squared_difference" and fields_of(call)["left_shift"] == 7
    values = {t.index: t.data for t in g.tensors if t.is_constant}
    values[g.inputs[0]] = ALL_VALUES
    want = expected(case)
    for flat in np.random.default_rng(0).choice(65536, 200, replace=False):
        element = call.rule.recompute(g, g.operators[0], call, values, int(flat))
        assert element.rules[0].value == want[flat]


@pytest.mark.fast
def test_an_overflowing_output_scale_is_refused():
    tiny = model((0.5, 0), (0.5, 0), (1e-7, 0), False)
    with pytest.raises(UnsupportedOpError, match=r"op #0 SQUARED_DIFFERENCE .*overflow"):
        lower(read_graph(tiny))


@pytest.mark.integration
@pytest.mark.parametrize("sanitize", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["O2", "asan-ubsan"])
def test_every_pair_bitexact_with_tflm(models, tmp_path, sanitize):
    from tinyq import emit, verify
    from tinyq import runtimes
    from tinyq.targets import firmware
    from tinyq.quantize import inspect_tflite

    for case, tflite in models.items():
        q = inspect_tflite(tflite, case)
        tflm = runtimes.run_tflm(tflite, ALL_VALUES).reshape(1, -1)
        assert np.array_equal(tflm[0], expected(case))
        r = verify.VerifyResult.tflm_only(q, ALL_VALUES, tflm, np.zeros(1, int))
        emit.emit(q, r, tmp_path / case, name="sqd", golden_count=1)
        exe = firmware.build_stub(tmp_path / case, tmp_path / f"build-{case}", sanitize=sanitize)
        assert firmware.run_golden(exe).passed
        assert np.array_equal(firmware.run_batch(exe, ALL_VALUES, 65536), tflm)


@pytest.mark.integration
@pytest.mark.qemu
def test_every_pair_bitexact_on_cortex_m4(models, tmp_path):
    from tinyq import emit, verify
    from tinyq import runtimes
    from tinyq.quantize import inspect_tflite
    from tinyq.targets import cortex_m

    case = "wide_input"
    q = inspect_tflite(models[case], case)
    tflm = runtimes.run_tflm(models[case], ALL_VALUES).reshape(1, -1)
    emit.emit(q, verify.VerifyResult.tflm_only(q, ALL_VALUES, tflm, np.zeros(1, int)), tmp_path / "fw",
              name="sqd", golden_count=1)
    elf = cortex_m.build_cortex_m(tmp_path / "fw", tmp_path / "build")
    assert np.array_equal(cortex_m.run_qemu_batch(elf, ALL_VALUES, 65536), tflm)
