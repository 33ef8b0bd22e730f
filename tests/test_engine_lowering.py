"""Lowering and the memory plan (fast, no TensorFlow): every op family of tests/tflite_build.py becomes calls of
kernels the C runtime declares, in Optimize.SPEED and Optimize.SIZE; what the engine cannot run is refused
naming the op; the planner's arena is at least its liveness lower bound and no two live buffers overlap."""

from __future__ import annotations

from pathlib import Path

import re

import numpy as np
import pytest
import tflite_build as tb

from tinyq.errors import UnsupportedOpError
from tinyq.engine import TABLE, Optimize, lower, plan, read_graph, supported_ops
from tinyq.engine.plan import Where
from tinyq.render import Banner, environment
from tinyq.fwfolder import runtime_files

pytestmark = pytest.mark.fast

OPTIMIZES = pytest.mark.parametrize("optimize", [Optimize.SPEED, Optimize.SIZE], ids=["speed", "size"])

# op -> the generic kernel Optimize.SIZE keeps
GENERIC = {"CONV_2D": "tq_conv2d", "DEPTHWISE_CONV_2D": "tq_depthwise_conv2d", "FULLY_CONNECTED": "tq_fully_connected",
           "MAX_POOL_2D": "tq_max_pool", "AVERAGE_POOL_2D": "tq_average_pool", "ADD": ("tq_add", "tq_add_broadcast"),
           "SUB": "tq_sub", "MUL": "tq_mul", "MAXIMUM": "tq_maximum", "MINIMUM": "tq_minimum", "MEAN": "tq_mean",
           "CONCATENATION": "tq_concatenation", "PAD": "tq_pad", "RESIZE_NEAREST_NEIGHBOR": "tq_resize_nearest",
           "SOFTMAX": "tq_softmax", "TRANSPOSE_CONV": "tq_transpose_conv", "GATHER": "tq_gather",
           **{kind: "tq_strided_copy" for kind in ("TRANSPOSE", "SLICE", "STRIDED_SLICE", "SPLIT", "SPLIT_V", "TILE")},
           **{kind: "tq_lut" for kind in ("LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "QUANTIZE", "RELU",
                                          "RELU6")}}
# cases whose op Optimize.SPEED must hand to a specialised kernel
SPECIALISED = ["conv_same_s1", "conv_1x1", "depthwise_same", "depthwise_5x5_c8", "fc", "max_pool_2x2",
               "avg_pool_3x3_same_s2", "add"]


def _runtime_kernels() -> set[str]:
    files = runtime_files(environment(), Banner("test", "test", "0" * 64, "none", "none"))
    text = "".join(f.text for f in files if f.name.endswith(".h"))
    return set(re.findall(r"^void (tq_\w+)\(", text, re.M))


RUNTIME_KERNELS = _runtime_kernels()


@pytest.mark.parametrize("case", sorted(tb.CASES))
@OPTIMIZES
def test_every_op_family_lowers_to_runtime_kernels(case, optimize):
    g = read_graph(tb.case(case))
    lowered = lower(g, optimize)
    aliased = [op.index for op in g.operators if op.name == "RESHAPE"]
    per_op = [c.op_index for c in lowered.calls]  # an op of several outputs (SPLIT) makes one call per output
    assert list(dict.fromkeys(per_op)) == [op.index for op in g.operators if op.index not in aliased]
    assert all(per_op.count(op.index) == len(op.outputs) for op in g.operators if op.index not in aliased)
    assert len(lowered.aliases) == len(aliased)
    for call in lowered.calls:
        assert call.kernel in RUNTIME_KERNELS, call.kernel
        generic = GENERIC[call.op_name]
        if optimize is Optimize.SIZE:
            assert call.kernel in (generic if isinstance(generic, tuple) else (generic,))
            assert call.scratch_bytes == 0
        for field, value in call.fields:
            assert re.fullmatch(r"-?\d+", value) and -(1 << 31) <= int(value) < (1 << 31) or \
                value in {a.name for a in call.arrays}, (field, value)
        assert call.writes <= g.tensors[call.output].nbytes
        assert len(call.reads) == len(call.inputs)


@pytest.mark.parametrize("case", SPECIALISED)
def test_speed_picks_a_specialised_kernel_size_keeps_the_generic_one(case):
    g = read_graph(tb.case(case))
    speed, size = lower(g, Optimize.SPEED).calls[-1], lower(g, Optimize.SIZE).calls[-1]
    assert speed.kernel != size.kernel and speed.kernel.startswith(size.kernel.split("_")[0])
    assert (speed.op_index, speed.inputs, speed.output) == (size.op_index, size.inputs, size.output)


def test_every_supported_op_has_a_case():
    """Every op the C engine runs has a synthetic case here, or its family has its own test file
    (tests/test_ops_<family>.py) that runs it over every value its arithmetic sees."""
    built = {op.name for case in tb.CASES for op in read_graph(tb.case(case)).operators}
    own_tests = {e.name for e in TABLE.values() if e.c_engine
                 and (Path(__file__).parent / f"test_ops_{e.op.family}.py").is_file()}
    assert set(supported_ops()) - built - own_tests == {"EXPAND_DIMS", "PADV2", "SQUEEZE"}


def test_multipliers_follow_the_scales():
    g = read_graph(tb.case("conv_same_s1"))
    (call,) = lower(g, Optimize.SIZE).calls
    x, w, y = (g.tensors[i] for i in (g.operators[0].inputs[0], g.operators[0].inputs[1], g.operators[0].outputs[0]))
    mult = next(a.values for a in call.arrays if a.name.endswith("_mult")).astype(np.float64)
    shift = next(a.values for a in call.arrays if a.name.endswith("_shift")).astype(np.float64)
    real = np.float32(x.scales[0]) * np.array(w.scales, np.float32) / np.float32(y.scales[0])
    assert np.allclose(mult * 2.0 ** (shift - 31), real, rtol=1e-8)


# ---- what the engine refuses, naming the op ----

def _with_output_quant(case, scale, zp):
    model = tb.unpack(tb.case(case))
    q = model.subgraphs[0].tensors[model.subgraphs[0].operators[-1].outputs[0]].quantization
    q.scale, q.zeroPoint = [scale], [zp]
    return tb.pack(model)


def _unsupported_op():
    g = tb.GraphBuilder()
    x = g.input((1, 4, 4, 2), 0.05, 0)
    y = g.activation((1, 4, 4, 2), 0.05, 0, name="floor")
    g.op("FLOOR", [x], [y])
    return g.output(y).build()


def _float_conv():
    model = tb.unpack(tb.case("conv_same_s1"))
    sg = model.subgraphs[0]
    for t in (sg.tensors[sg.inputs[0]], sg.tensors[sg.outputs[0]]):
        t.type, t.quantization = tb.schema.TensorType.FLOAT32, None
    return tb.pack(model)


def _batch_two():
    model = tb.unpack(tb.case("max_pool_2x2"))
    for t in model.subgraphs[0].tensors:
        t.shape[0] = 2
    return tb.pack(model)


def _asymmetric_weights():
    model = tb.unpack(tb.case("fc"))
    model.subgraphs[0].tensors[1].quantization.zeroPoint = [3]
    return tb.pack(model)


REFUSED = [
    (_unsupported_op, r"op #0 FLOOR \(layer floor\): op not supported by the C engine \(supported: .*CONV_2D"),
    (_float_conv, r"op #0 CONV_2D \(layer conv\): input tensor 'serving_input' is float32; the C engine runs int8"),
    (_batch_two, r"op #0 MAX_POOL_2D \(layer pool\): tensor 'serving_input' has shape \(2, 8, 8, 3\); the batch "
                 r"must be fixed at 1"),
    (_asymmetric_weights, r"op #0 FULLY_CONNECTED \(layer dense\): weights 'model/dense/const' have non-zero zero "
                          r"points"),
    (lambda: _with_output_quant("logistic", 1 / 256, 0), r"op #0 LOGISTIC \(layer logistic\): int8 logistic output "
                                                          r"must have zero point -128"),
    (lambda: _with_output_quant("softmax", 1 / 128, -128), r"op #0 SOFTMAX \(layer softmax\): int8 softmax output "
                                                            r"must have scale 1/256"),
    (lambda: _with_output_quant("max_pool_2x2", 0.01, 0), r"op #0 MAX_POOL_2D \(layer pool\): input and output "
                                                          r"quantization differ"),
]


@pytest.mark.parametrize("build, words", REFUSED, ids=["unsupported_op", "float", "batch2", "asymmetric_weights",
                                                       "logistic_zero_point", "softmax_scale", "pool_requantizes"])
@OPTIMIZES
def test_what_the_engine_cannot_run_is_refused_naming_the_op(build, words, optimize):
    with pytest.raises(UnsupportedOpError, match=words):
        lower(read_graph(build()), optimize)


# ---- the memory plan ----

def _check_plan(g, lowered, p):
    assert p.arena_bytes >= p.lower_bound_bytes >= 0
    for a in p.placements:
        assert 0 <= a.offset and a.offset + a.size <= p.arena_bytes
        if a.tensor < 0:
            assert a.offset % 4 == 0 and a.first == a.last
        for b in p.placements:
            if a is not b and a.first <= b.last and b.first <= a.last:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)
    # the lower bound: the most bytes live across any one call
    live = [sum(a.size for a in p.placements if a.first <= k <= a.last) for k in range(len(lowered.calls))]
    assert p.lower_bound_bytes == max(live, default=0)
    assert p.location(g.inputs[0]).where is Where.INPUT and p.location(g.outputs[0]).where is Where.OUTPUT
    assert len(p.scratch) == len(lowered.calls)


@pytest.mark.parametrize("case", sorted(tb.CASES))
@OPTIMIZES
def test_plan_arena_covers_the_lower_bound_and_live_buffers_never_overlap(case, optimize):
    g = read_graph(tb.case(case))
    lowered = lower(g, optimize)
    _check_plan(g, lowered, plan(g, lowered))


def test_plan_of_a_chain_keeps_the_skip_connection_alive():
    g = read_graph(tb.case("chain"))
    lowered = lower(g, Optimize.SIZE)
    p = plan(g, lowered)
    conv1 = g.operators[0].outputs[0]
    (c1,) = [a for a in p.placements if a.tensor == conv1]
    assert (c1.first, c1.last) == (0, 2)  # read again by the ADD after the depthwise conv
    # conv1 and the depthwise output (600 bytes each) are live together; the flatten is an alias of the pool
    assert p.lower_bound_bytes == p.arena_bytes == 1800
    reshape = g.operators[4]
    assert p.location(reshape.outputs[0]) == p.location(reshape.inputs[0])
