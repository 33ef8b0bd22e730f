"""The .tflite reader (fast, no TensorFlow): every op family's int8 model built by tests/tflite_build.py is read
with its tensors, quantization and options, and each malformation is refused naming the op, tensor and field."""

from __future__ import annotations

import numpy as np
import pytest
import tflite_build as tb
from tflite_build import schema

from tinyq.errors import InvalidModelError
from tinyq.engine import macs, read_graph
from tinyq.engine.graph import Activation, Padding

pytestmark = pytest.mark.fast

# case -> the ops read_graph must list, in order
OPS = {
    "conv": ["CONV_2D"], "depthwise": ["DEPTHWISE_CONV_2D"], "fc": ["FULLY_CONNECTED"], "max_pool": ["MAX_POOL_2D"],
    "avg_pool": ["AVERAGE_POOL_2D"], "add_broadcast": ["ADD"], "add": ["RELU", "ADD"], "sub": ["SUB"],
    "mul_broadcast": ["MUL"], "mul": ["RELU", "MUL"], "maximum": ["MAXIMUM"], "minimum": ["RELU", "MINIMUM"],
    "mean": ["MEAN"], "concatenation": ["CONCATENATION"], "pad": ["PAD"], "resize_nearest": ["RESIZE_NEAREST_NEIGHBOR"],
    "softmax": ["SOFTMAX"], "transpose_conv": ["TRANSPOSE_CONV"], "reshape_fc": ["RESHAPE", "FULLY_CONNECTED"],
    "chain": ["CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"],
    **{kind.lower(): [kind] for kind in tb.TABLE_OPS},
    "transpose_": ["TRANSPOSE"], "slice": ["SLICE"], "strided_slice": ["STRIDED_SLICE"], "tile": ["TILE"],
    "split": ["SPLIT", "CONCATENATION"], "split_v": ["SPLIT_V", "CONCATENATION"], "gather": ["GATHER"],
}


def _expected_ops(case: str) -> list[str]:
    return next(ops for prefix, ops in sorted(OPS.items(), key=lambda kv: -len(kv[0])) if case.startswith(prefix))


@pytest.mark.parametrize("case", sorted(tb.CASES))
def test_every_built_model_is_read(case):
    g = read_graph(tb.case(case))
    assert [op.name for op in g.operators] == _expected_ops(case)
    assert len(g.inputs) == len(g.outputs) == 1
    x = g.tensors[g.inputs[0]]
    assert x.dtype == "int8" and len(x.scales) == 1 and not x.is_constant
    for op in g.operators:
        for t in op.outputs:
            assert g.tensors[t].dtype == "int8" and not g.tensors[t].is_constant


def test_conv_options_weights_and_per_channel_scales():
    g = read_graph(tb.case("conv_same_s2_3x2"))
    (op,) = g.operators
    assert op.options.padding is Padding.SAME and (op.options.stride_h, op.options.stride_w) == (2, 1)
    assert op.options.activation is Activation.NONE
    w = g.tensors[op.inputs[1]]
    assert w.shape == (8, 3, 2, 4) and w.data.dtype == np.int8 and len(w.scales) == 8
    assert w.quantized_dimension == 0 and set(w.zero_points) == {0}
    assert g.tensors[op.inputs[2]].dtype == "int32" and g.layer(op.outputs[0]) == "conv"
    assert macs(g) == 6 * 8 * 8 * 3 * 2 * 4


def test_depthwise_multiplier_and_axis():
    g = read_graph(tb.case("depthwise_valid_s2_mult2"))
    (op,) = g.operators
    assert op.options.depth_multiplier == 2 and op.options.activation is Activation.RELU
    w = g.tensors[op.inputs[1]]
    assert w.shape == (1, 3, 3, 6) and w.quantized_dimension == 3 and len(w.scales) == 6


def test_the_same_arguments_build_the_same_bytes():
    assert tb.case("chain") == tb.case("chain") and tb.conv(seed=1) != tb.conv(seed=2)


# ---- malformations: (mutation of the unpacked ModelT of a case, the error's words) ----

def _op(m, k=0):
    return m.subgraphs[0].operators[k]


def _tensor(m, k):
    return m.subgraphs[0].tensors[k]


def _set_stride(m):
    _op(m).builtinOptions.strideH = 0


def _bad_padding(m):
    _op(m).builtinOptions.padding = 7


def _pool_options_on_conv(m):
    _op(m).builtinOptionsType = schema.BuiltinOptions.Pool2DOptions
    _op(m).builtinOptions = schema.Pool2DOptionsT()


def _no_options(m):
    _op(m).builtinOptionsType = 0
    _op(m).builtinOptions = None


def _input_out_of_range(m):
    _op(m).inputs[0] = 99


def _opcode_out_of_range(m):
    _op(m).opcodeIndex = 5


def _zero_scale(m):
    _tensor(m, 0).quantization.scale = [0.0]


def _zero_point_out_of_range(m):
    _tensor(m, 0).quantization.zeroPoint = [200]


def _short_weights(m):
    buf = m.buffers[_tensor(m, _op(m).inputs[1]).buffer]
    buf.data = buf.data[:-3]


def _wrong_output_height(m):
    _tensor(m, _op(m).outputs[0]).shape[1] += 1


def _zero_beta(m):
    _op(m).builtinOptions.beta = 0.0


def _dim_zero(m):
    _tensor(m, 0).shape[1] = 0


def _two_subgraphs(m):
    m.subgraphs.append(m.subgraphs[0])


def _complex_type(m):
    _tensor(m, 0).type = schema.TensorType.COMPLEX64


def _ops_out_of_order(m):
    ops = m.subgraphs[0].operators
    ops[0], ops[1] = ops[1], ops[0]


def _scales_off_axis(m):
    w = _tensor(m, _op(m).inputs[1])
    w.quantization.scale = list(w.quantization.scale)[:3]
    w.quantization.zeroPoint = [0, 0, 0]


def _output_never_written(m):
    m.subgraphs[0].outputs = [_op(m).inputs[1]]


def _output_twice(m):
    _op(m, 1).outputs = [_op(m, 0).outputs[0]]


def _bias_count(m):
    b = _tensor(m, _op(m).inputs[2])
    b.shape = [3]
    m.buffers[b.buffer].data = m.buffers[b.buffer].data[:12]
    b.quantization.scale = list(b.quantization.scale)[:3]
    b.quantization.zeroPoint = [0, 0, 0]


def _fc_weights_misfit(m):
    w = _tensor(m, _op(m).inputs[1])
    w.shape = [w.shape[1], w.shape[0]]


MALFORMED = [
    ("conv_same_s1", _set_stride, r"op #0 CONV_2D \(output 'model/conv/op'\): field stride_h = 0 is outside \[1, "),
    ("conv_same_s1", _bad_padding, r"op #0 CONV_2D .*field padding = 7 is not a valid Padding"),
    ("conv_same_s1", _pool_options_on_conv, r"op #0 CONV_2D .*field builtin_options is Pool2DOptions, expected "
                                            r"Conv2DOptions"),
    ("conv_same_s1", _no_options, r"op #0 CONV_2D .*field builtin_options is missing \(expected Conv2DOptions\)"),
    ("conv_same_s1", _input_out_of_range, r"op #0 CONV_2D: field inputs\[0\] = 99 is outside \[-1, 4\)"),
    ("conv_same_s1", _opcode_out_of_range, r"op #0: field opcode_index = 5 is outside the model's 1 operator codes"),
    ("conv_same_s1", _zero_scale, r"tensor #0 'serving_input': field quantization.scale = 0.0"),
    ("conv_same_s1", _zero_point_out_of_range, r"tensor #0 'serving_input': field quantization.zero_point = 200 "
                                               r"is outside int8's range"),
    ("conv_same_s1", _short_weights, r"tensor #1 'model/conv/const': buffer 1 holds 105 bytes; shape \[4, 3, 3, 3\] "
                                     r"of int8 needs 108"),
    ("conv_same_s1", _wrong_output_height, r"op #0 CONV_2D \(layer conv\): output 'model/conv/op' has 10 on axis 1; "
                                           r"SAME padding, stride 1"),
    ("conv_same_s1", _scales_off_axis, r"tensor #1 'model/conv/const': field quantization.quantized_dimension = 0: "
                                       r"3 scales do not match"),
    ("conv_same_s1", _bias_count, r"op #0 CONV_2D \(layer conv\): bias 'model/conv/const' has 3 values for 4 output "
                                  r"channels"),
    ("conv_same_s1", _dim_zero, r"tensor #0 'serving_input': field shape = \[1, 0, 9, 3\]"),
    ("conv_same_s1", _complex_type, r"tensor #0 'serving_input': field type = 8 \(COMPLEX64\) is not supported"),
    ("conv_same_s1", _two_subgraphs, r"\.tflite has 2 subgraphs; tinyq supports exactly one"),
    ("conv_same_s1", _output_never_written, r"graph output 0 tensor 'model/conv/const' \(#1\) is never written"),
    ("softmax", _zero_beta, r"op #0 SOFTMAX \(layer softmax\): field beta = 0.0 must be finite and > 0"),
    ("fc", _fc_weights_misfit, r"op #0 FULLY_CONNECTED \(layer dense\): input \(1, 40\) and output \(1, 10\) do not "
                               r"fit weights"),
    ("add", _ops_out_of_order, r"op #0 ADD \(layer add\): input 1 tensor 'model/relu/op' \(#\d+\) is read before any "
                               r"op writes it"),
    ("add", _output_twice, r"op #1 ADD \(layer relu\): output tensor 'model/relu/op' \(#\d+\) is already written by "
                           r"op #0 RELU"),
]


@pytest.mark.parametrize("case, mutate, words", MALFORMED, ids=[m.__name__.strip("_") for _, m, _ in MALFORMED])
def test_malformed_models_are_refused_naming_what(case, mutate, words):
    model = tb.unpack(tb.case(case))
    mutate(model)
    with pytest.raises(InvalidModelError, match=words):
        read_graph(tb.pack(model))


@pytest.mark.parametrize("data, words", [(b"PK\x03\x04" + bytes(60), "a zip archive"), (b"", "empty"),
                                         (b"\0" * 64, r"file identifier b'\\x00\\x00\\x00\\x00', expected b'TFL3'")])
def test_files_that_are_not_tflite(data, words):
    with pytest.raises(InvalidModelError, match=words):
        read_graph(data)


def test_truncated_model():
    with pytest.raises(InvalidModelError, match=r"invalid \.tflite: Model: Model table at offset 12: its vtable at "
                                                r"offset \d+ lies outside the 600-byte buffer"):
        read_graph(tb.case("chain")[:600])
