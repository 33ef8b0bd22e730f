"""--rounding single: the C engine built with TQ_SINGLE_ROUNDING against the exact integer model under
TFLITE_SINGLE_ROUNDING's rule (tests/int8_reference.py), every synthetic case, both kernel choices; the
requantization forms against that rule over whole value ranges; and the generated files of each mode."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import engine_host
import int8_reference
import tflite_build as tb
from tinyq.engine import Optimize, Rounding, generate, lut, read_graph
from tinyq.engine.explain import Explanation, rounding_followed
from tinyq.engine.fixedpoint import mul_by_quantized_multiplier, mul_by_quantized_multiplier_single
from tinyq.engine.ops import elementwise
from tinyq.engine.ops.requant import fused_constant
from tinyq.engine.ops.rounding import DOUBLE, NEAREST, SINGLE
from tinyq.resources import runtime_dir

pytestmark = pytest.mark.fast

RANDOM_INPUTS = 3
# The cases whose ops requantize (MultiplyByQuantizedMultiplier or a table built with it); pools, MAXIMUM/MINIMUM,
# data movement, RELU6 and HARD_SWISH have no step the rule changes.
UNCHANGED = ("max_pool", "avg_pool", "maximum", "minimum", "concatenation", "pad", "resize", "relu6", "hard_swish")
CASES = sorted(c for c in tb.CASES if not c.startswith(UNCHANGED))


@pytest.fixture(scope="module")
def single_engines(tmp_path_factory):
    return engine_host.build({case: tb.case(case) for case in CASES}, tmp_path_factory.mktemp("single"),
                             rounding=Rounding.SINGLE)


def _inputs(case: str, n_bytes: int) -> np.ndarray:
    rng = np.random.default_rng(100 + CASES.index(case))
    return np.concatenate([rng.integers(-128, 128, (RANDOM_INPUTS, n_bytes)),
                           np.full((1, n_bytes), -128), np.full((1, n_bytes), 127)]).astype(np.int8)


@pytest.mark.parametrize("case", CASES)
def test_single_rounding_engine_equals_exact_model(single_engines, case):
    tflite = tb.case(case)
    xs = _inputs(case, single_engines.sizes[f"{case}_speed"][0])
    want = np.stack([int8_reference.run(tflite, x, Rounding.SINGLE) for x in xs])
    for optimize in ("speed", "size"):
        got = single_engines.run(f"{case}_{optimize}", xs)
        bad = np.argwhere(got != want)
        assert bad.size == 0, (f"{optimize}: {len(bad)} of {want.size} values differ, first (input, element) "
                               f"{bad[0].tolist()}: C {got[tuple(bad[0])]}, single-rounding model "
                               f"{want[tuple(bad[0])]}")


def test_the_modes_differ_where_the_rules_do(single_engines):
    """The single-rounding outputs are not the double ones on the requantizing cases (the test above would pass
    on a runtime that ignored the mode only if the two rules agreed there)."""
    differing = []
    for case in ("fc", "conv_same_s1", "add", "softmax", "mean_hw", "logistic", "mul"):
        tflite = tb.case(case)
        xs = np.random.default_rng(7).integers(-128, 128, (20, single_engines.sizes[f"{case}_speed"][0]))
        xs = xs.astype(np.int8)
        single = single_engines.run(f"{case}_speed", xs)
        double = np.stack([int8_reference.run(tflite, x, Rounding.DOUBLE) for x in xs])
        differing.append(int((single != double).sum()))
    assert sum(differing) > 0, differing


def test_python_rules_on_ties():
    """The two rules part on negative ties (single rounds them up, double away from zero) and where the doubling
    high multiply's first rounding carries into the second."""
    m = 1 << 30  # 0.5 in Q0.31, with shift -1: x / 4
    assert mul_by_quantized_multiplier(-6, m, -1) == -2  # -1.5 away from zero
    assert mul_by_quantized_multiplier_single(-6, m, -1) == -1  # -1.5 upward
    assert mul_by_quantized_multiplier(6, m, -1) == mul_by_quantized_multiplier_single(6, m, -1) == 2
    rng = np.random.default_rng(0)
    parts = 0
    for _ in range(2000):
        x, mult, shift = int(rng.integers(-(1 << 20), 1 << 20)), int(rng.integers(1 << 30, 1 << 31)), \
            int(rng.integers(-12, 1))
        exact = x * mult / 2 ** (31 - shift)
        for v in (mul_by_quantized_multiplier(x, mult, shift), mul_by_quantized_multiplier_single(x, mult, shift)):
            assert abs(v - exact) <= 1
        parts += mul_by_quantized_multiplier(x, mult, shift) != mul_by_quantized_multiplier_single(x, mult, shift)
    assert parts > 0


REQUANT_HARNESS = r"""
#include <stdio.h>
#include "tq_requant.h"
#include "tq_simd.h"
int main(void)
{
    long long x, m, s, c;
    int zp;
    while (scanf("%lld %lld %lld %d %lld", &x, &m, &s, &zp, &c) == 5) {
        const int32_t lr = tq_requantize((int32_t)x, (int32_t)m, (int32_t)s);
        const int32_t fused = (s <= -1 && c != 0)
                                  ? tq_requantize_fused((int32_t)x, (int32_t)m, (int64_t)c, (int32_t)(-s - 1))
                                  : lr + zp;
        printf("%d %d\n", (int)lr, (int)fused);
    }
    return 0;
}
"""


@pytest.mark.parametrize("mode", [Rounding.DOUBLE, Rounding.SINGLE])
def test_requant_forms_follow_the_rule(tmp_path, mode):
    """tq_requantize and tq_requantize_fused (with requant.fused_constant's c) under each TQ_SINGLE_ROUNDING,
    against the Python rule, over accumulators across int32's range, every shift and random multipliers."""
    runtime = runtime_dir()
    src = tmp_path / "requant.c"
    src.write_text(REQUANT_HARNESS)
    exe = tmp_path / "requant"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", f"-I{runtime}",
                    f"-DTQ_SINGLE_ROUNDING={int(mode is Rounding.SINGLE)}", str(src), "-o", str(exe)], check=True)
    rng = np.random.default_rng(3)
    rows, want = [], []
    for shift in range(-31, 1):
        for _ in range(60):
            mult = int(rng.integers(1 << 30, 1 << 31))
            bits = int(rng.integers(1, 32))
            x = int(rng.integers(-(1 << bits), 1 << bits))
            x = max(-(1 << 31), min((1 << 31) - 1, x))
            zp = int(rng.integers(-128, 128))
            c = fused_constant(mult, shift, zp, mode)
            rows.append(f"{x} {mult} {shift} {zp} {0 if c is None else c}")  # c is never 0
            v = mode.multiply(x, mult, shift)
            want.append((v, v + zp))
    out = subprocess.run([str(exe)], input="\n".join(rows) + "\n", capture_output=True, text=True, check=True)
    got = [tuple(int(v) for v in line.split()) for line in out.stdout.splitlines()]
    bad = [(r, g, w) for r, g, w in zip(rows, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(rows)} differ, first (x m shift zp c; C; rule): {bad[0]}"


def test_add_table_variant_single(single_engines):
    """tq_add_lut under single rounding: chosen with the same accumulator, its tables hold the single-rounding
    rescaled inputs (so the engine test above covers the SMMLA form)."""
    fields = dict(size=48, left_shift=20, in1_offset=3, in1_mult=1 << 30, in1_shift=-1, in2_offset=-5,
                  in2_mult=1518500250, in2_shift=-1, out_mult=1431655765, out_shift=-19, out_offset=-7,
                  act_min=-128, act_max=127)
    double = elementwise.choose(fields, {}, "op0", Rounding.DOUBLE)
    single = elementwise.choose(fields, {}, "op0", Rounding.SINGLE)
    assert double is not None and single is not None
    assert dict(double.fields)["acc"] == dict(single.fields)["acc"]
    assert not np.array_equal(double.arrays[1].values, single.arrays[1].values)


def test_generated_header_states_the_mode():
    tflite = tb.case("fc")
    for mode in Rounding:
        engine = generate(read_graph(tflite), "net", engine_host.BANNER, Optimize.SPEED, mode)
        header = next(f.text for f in engine.files if f.name == "tq_rounding.h")
        assert f"#define TQ_SINGLE_ROUNDING {int(mode is Rounding.SINGLE)}\n" in header
        assert engine.rounding is mode
    assert "#define TQ_SINGLE_ROUNDING 0" in (Path(runtime_dir()) / "tq_rounding.h").read_text()


def test_tables_follow_the_rule():
    """The 256-entry tables of the ops that requantize through MultiplyByQuantizedMultiplier with a right shift
    (QUANTIZE, RELU, LEAKY_RELU; output scales that make one) differ between the modes on some entries, by one
    step at most. LOGISTIC and TANH rescale their input with a left shift only, where both rules round once with
    ties upward: their tables are the same in both modes."""
    rng = np.random.default_rng(11)
    builders = {
        "quantize": lambda r, s, z: lut.requantize(s, z, s * 3.1, z // 2, r),
        "relu": lambda r, s, z: lut.relu(s, z, s * 2.6, -100, r),
        "leaky_relu": lambda r, s, z: lut.leaky_relu(s, z, s * 0.9, z, 0.1, r),
        "logistic": lambda r, s, z: lut.logistic(s, z, r),
        "tanh": lambda r, s, z: lut.tanh(s, z, r),
    }
    for name, build in builders.items():
        changed = 0
        for _ in range(40):
            scale, zp = float(rng.uniform(0.01, 0.2)), int(rng.integers(-60, 60))
            double, single = build(Rounding.DOUBLE, scale, zp), build(Rounding.SINGLE, scale, zp)
            gap = np.abs(double.astype(np.int16) - single.astype(np.int16))
            assert gap.max() <= 1, name
            changed += int(gap.any())
        if name in ("logistic", "tanh"):
            assert changed == 0, name
        else:
            assert changed > 0, f"{name}: the single-rounding table never differs"


def test_rounding_followed_counts_only_elements_that_tell_the_rules_apart():
    def ex(matches):
        return Explanation("", (0,), 0, 0.0, (), matches)
    items = [("FULLY_CONNECTED", ex((("tflm", (DOUBLE,)), ("litert-ref", (SINGLE, NEAREST))))),
             ("CONV_2D", ex((("tflm", (DOUBLE, SINGLE)), ("litert-ref", (NEAREST,))))),
             ("SOFTMAX", ex((("c-host", (f"{SINGLE}: fixed point, the input rescale rounded once",)),)))]
    uses = rounding_followed(items)
    assert [(u.runtime, u.rule, u.ops) for u in uses] == [
        ("c-host", "single", ("SOFTMAX",)), ("litert-ref", "single", ("FULLY_CONNECTED",)),
        ("tflm", "double", ("FULLY_CONNECTED",))]
    assert uses[1].text() == "litert-ref follows single rounding in FULLY_CONNECTED"
