"""Int8 .tflite flatbuffers built without TensorFlow, for the fast tests of the reader, lowering, planner and C
engine.

GraphBuilder writes the TFLite schema's object API (ModelT, SubGraphT, TensorT, OperatorT, ...) and packs it with
a flatbuffers Builder, as tests/tflite_fuzz.py does. The single-op helpers below (conv, depthwise,
fully_connected, pool, add, binary, table ops, mean, concatenation, pad, resize_nearest, softmax,
transpose_conv, reshape) draw random int8 weights from a seeded generator and pick realistic scales: the output
scale of a weighted op follows from the spread of its accumulator, so outputs use most of the int8 range without
saturating everywhere.

    g = GraphBuilder(seed=1)
    x = g.input((1, 8, 8, 3), 0.03, -5)
    ...
    y = g.activation((1, 8, 8, 4), 0.05, 2, name="conv")
    g.op("CONV_2D", [x, w, b], [y], schema.Conv2DOptionsT())
    tflite = g.output(y).build()
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

_TYPES = {"float32": schema.TensorType.FLOAT32, "int8": schema.TensorType.INT8, "int32": schema.TensorType.INT32,
          "int16": schema.TensorType.INT16, "uint8": schema.TensorType.UINT8, "int64": schema.TensorType.INT64}
_NUMPY = {"float32": np.float32, "int8": np.int8, "int32": np.int32, "int16": np.int16, "uint8": np.uint8,
          "int64": np.int64}
ACTIVATIONS = {"NONE": schema.ActivationFunctionType.NONE, "RELU": schema.ActivationFunctionType.RELU,
               "RELU6": schema.ActivationFunctionType.RELU6,
               "RELU_N1_TO_1": schema.ActivationFunctionType.RELU_N1_TO_1}
PADDINGS = {"SAME": schema.Padding.SAME, "VALID": schema.Padding.VALID}


def pack(model) -> bytes:
    """A ModelT as .tflite bytes (file identifier TFL3)."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def unpack(tflite: bytes):
    """The ModelT of .tflite bytes, with plain lists for shapes and operands so that tests can edit them."""
    model = schema.ModelT.InitFromPackedBuf(bytes(tflite), 0)
    for t in model.subgraphs[0].tensors:
        t.shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    for op in model.subgraphs[0].operators:
        op.inputs = [int(x) for x in op.inputs]
        op.outputs = [int(x) for x in op.outputs]
    return model


class GraphBuilder:
    """One subgraph of int8 tensors and builtin ops, built up in execution order."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.tensors: list = []
        self.buffers: list = [schema.BufferT()]  # buffer 0: the empty one every activation points at
        self.operators: list = []
        self.codes: dict[int, int] = {}
        self.op_codes: list = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []

    # ---- tensors ----

    def tensor(self, shape: Sequence[int], dtype: str = "int8", scale=None, zero_point=None, data=None,
               name: str | None = None, quantized_dimension: int = 0) -> int:
        """A tensor; `scale` and `zero_point` scalars or per-channel sequences; `data` makes it constant."""
        t = schema.TensorT()
        t.shape = [int(d) for d in shape]
        t.type = _TYPES[dtype]
        t.name = name or f"t{len(self.tensors)}"
        if scale is not None:
            q = schema.QuantizationParametersT()
            scales = [float(s) for s in np.atleast_1d(scale)]
            zps = np.atleast_1d(0 if zero_point is None else zero_point).astype(np.int64)
            q.scale = scales
            q.zeroPoint = [int(z) for z in np.broadcast_to(zps, (len(scales),))]
            q.quantizedDimension = quantized_dimension
            t.quantization = q
        t.buffer = 0
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data, dtype=_NUMPY[dtype]).reshape(t.shape))
            buf = schema.BufferT()
            buf.data = list(arr.tobytes())
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def input(self, shape: Sequence[int], scale: float, zero_point: int, name: str = "serving_input") -> int:
        """The graph input (int8 activation)."""
        t = self.tensor(shape, "int8", scale, zero_point, name=name)
        self.inputs.append(t)
        return t

    def activation(self, shape: Sequence[int], scale: float, zero_point: int, name: str = "out") -> int:
        """An int8 activation an op writes; named like the converter names them, so that Graph.layer() gives
        `name`."""
        return self.tensor(shape, "int8", scale, zero_point, name=f"model/{name}/op")

    def const_int8(self, values, scale, zero_point=0, axis: int = 0, name: str = "weights") -> int:
        values = np.asarray(values)
        return self.tensor(values.shape, "int8", scale, zero_point, data=values, name=f"model/{name}/const",
                           quantized_dimension=axis)

    def const_int32(self, values, scale=None, name: str = "const") -> int:
        values = np.asarray(values)
        zp = None if scale is None else np.zeros(np.atleast_1d(scale).shape, np.int64)
        return self.tensor(values.shape, "int32", scale, zp, data=values, name=f"model/{name}/const")

    def random_weights(self, shape: Sequence[int], axis: int | None = 0, name: str = "weights",
                       per_channel: bool = True) -> tuple[int, np.ndarray]:
        """Symmetric int8 weights (zero point 0), scales per channel on `axis` or one per tensor."""
        values = self.rng.integers(-127, 128, shape, dtype=np.int64).astype(np.int8)
        n = shape[axis] if per_channel and axis is not None else 1
        scales = self.rng.uniform(0.004, 0.02, n).astype(np.float32)
        return self.const_int8(values, scales if n > 1 else scales[0], 0, axis or 0, name), scales

    def random_bias(self, in_scale: float, w_scales: np.ndarray, channels: int, name: str = "bias") -> int:
        scales = np.broadcast_to(np.float32(in_scale) * w_scales.astype(np.float32), (channels,))
        values = self.rng.integers(-3000, 3001, channels).astype(np.int32)
        return self.const_int32(values, scales if len(set(scales.tolist())) > 1 else float(scales[0]), name)

    # ---- operators and the model ----

    def op(self, name: str, inputs: Sequence[int], outputs: Sequence[int], options=None, version: int = 1) -> int:
        """A builtin op `name` (CONV_2D, ...) with its options object (schema.Conv2DOptionsT(), ...)."""
        code = getattr(schema.BuiltinOperator, name)
        if code not in self.codes:
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = version
            self.codes[code] = len(self.op_codes)
            self.op_codes.append(oc)
        o = schema.OperatorT()
        o.opcodeIndex = self.codes[code]
        o.inputs = [int(i) for i in inputs]
        o.outputs = [int(i) for i in outputs]
        if options is not None:
            o.builtinOptionsType = getattr(schema.BuiltinOptions, type(options).__name__.removesuffix("T"))
            o.builtinOptions = options
        self.operators.append(o)
        return len(self.operators) - 1

    def output(self, tensor: int) -> GraphBuilder:
        self.outputs.append(tensor)
        return self

    def model(self):
        sg = schema.SubGraphT()
        sg.tensors, sg.operators = self.tensors, self.operators
        sg.inputs, sg.outputs = list(self.inputs), list(self.outputs)
        sg.name = "main"
        m = schema.ModelT()
        m.version = 3
        m.operatorCodes = self.op_codes
        m.subgraphs = [sg]
        m.buffers = self.buffers
        m.description = "tinyq test model"
        return m

    def build(self) -> bytes:
        return pack(self.model())


# ---- option objects ----

def conv_options(stride=(1, 1), padding="SAME", dilation=(1, 1), activation="NONE", depth_multiplier=None):
    o = schema.Conv2DOptionsT() if depth_multiplier is None else schema.DepthwiseConv2DOptionsT()
    o.padding = PADDINGS[padding]
    o.strideH, o.strideW = stride
    o.dilationHFactor, o.dilationWFactor = dilation
    o.fusedActivationFunction = ACTIVATIONS[activation]
    if depth_multiplier is not None:
        o.depthMultiplier = depth_multiplier
    return o


def _out_size(padding: str, size: int, k: int, stride: int, dilation: int = 1) -> int:
    effective = (k - 1) * dilation + 1
    return (size + stride - 1) // stride if padding == "SAME" else (size - effective + stride) // stride


def _out_scale(in_scale: float, w_scales: np.ndarray, taps: int) -> float:
    """An output scale for an accumulator of `taps` products of uniform random int8 values (a spread of about
    74 x 73 x sqrt(taps)) that maps one spread to about 40 output steps."""
    return float(np.float32(74 * 73 * math.sqrt(taps) * in_scale * float(np.mean(w_scales)) / 40.0))


# ---- single-op models, one per op family ----

def conv(in_shape=(1, 9, 9, 3), out_c=4, kernel=(3, 3), stride=(1, 1), padding="SAME", dilation=(1, 1),
         activation="NONE", per_channel=True, in_q=(0.03, -3), seed=0) -> bytes:
    g = GraphBuilder(seed)
    x = g.input(in_shape, *in_q)
    w, ws = g.random_weights((out_c, *kernel, in_shape[3]), 0, "conv", per_channel)
    b = g.random_bias(in_q[0], ws, out_c, "conv")
    out = (1, _out_size(padding, in_shape[1], kernel[0], stride[0], dilation[0]),
           _out_size(padding, in_shape[2], kernel[1], stride[1], dilation[1]), out_c)
    y = g.activation(out, _out_scale(in_q[0], ws, kernel[0] * kernel[1] * in_shape[3]), 4, "conv")
    g.op("CONV_2D", [x, w, b], [y], conv_options(stride, padding, dilation, activation))
    return g.output(y).build()


def depthwise(in_shape=(1, 9, 9, 4), multiplier=1, kernel=(3, 3), stride=(1, 1), padding="SAME",
              dilation=(1, 1), activation="NONE", in_q=(0.03, 5), seed=0) -> bytes:
    g = GraphBuilder(seed)
    x = g.input(in_shape, *in_q)
    out_c = in_shape[3] * multiplier
    w, ws = g.random_weights((1, *kernel, out_c), 3, "depthwise")
    b = g.random_bias(in_q[0], ws, out_c, "depthwise")
    out = (1, _out_size(padding, in_shape[1], kernel[0], stride[0], dilation[0]),
           _out_size(padding, in_shape[2], kernel[1], stride[1], dilation[1]), out_c)
    y = g.activation(out, _out_scale(in_q[0], ws, kernel[0] * kernel[1]), -2, "depthwise")
    g.op("DEPTHWISE_CONV_2D", [x, w, b], [y], conv_options(stride, padding, dilation, activation, multiplier))
    return g.output(y).build()


def fully_connected(in_shape=(1, 40), out_depth=10, activation="NONE", per_channel=False, bias=True,
                    in_q=(0.04, -7), seed=0) -> bytes:
    g = GraphBuilder(seed)
    x = g.input(in_shape, *in_q)
    depth = in_shape[-1]
    w, ws = g.random_weights((out_depth, depth), 0, "dense", per_channel)
    inputs = [x, w] + ([g.random_bias(in_q[0], ws, out_depth, "dense")] if bias else [])
    rows = int(np.prod(in_shape)) // depth
    y = g.activation((rows, out_depth), _out_scale(in_q[0], ws, depth), 3, "dense")
    o = schema.FullyConnectedOptionsT()
    o.fusedActivationFunction = ACTIVATIONS[activation]
    g.op("FULLY_CONNECTED", inputs, [y], o)
    return g.output(y).build()


def pool(kind="MAX_POOL_2D", in_shape=(1, 8, 8, 3), window=(2, 2), stride=(2, 2), padding="VALID",
         activation="NONE", in_q=(0.05, 10), seed=0) -> bytes:
    g = GraphBuilder(seed)
    x = g.input(in_shape, *in_q)
    out = (1, _out_size(padding, in_shape[1], window[0], stride[0]), _out_size(padding, in_shape[2], window[1],
                                                                               stride[1]), in_shape[3])
    y = g.activation(out, *in_q, name="pool")
    o = schema.Pool2DOptionsT()
    o.padding = PADDINGS[padding]
    o.strideH, o.strideW = stride
    o.filterHeight, o.filterWidth = window
    o.fusedActivationFunction = ACTIVATIONS[activation]
    g.op(kind, [x], [y], o)
    return g.output(y).build()


def binary(kind="ADD", a_shape=(1, 4, 4, 3), b_shape=(1, 4, 4, 3), activation="NONE", a_q=(0.05, 3),
           b_q=(0.02, -9), out_q=None, const_b=False, seed=0) -> bytes:
    """ADD, SUB, MUL, MAXIMUM or MINIMUM of the graph input and a second operand (broadcast if its shape says
    so): a constant when `const_b`, else the input through a RELU table op (one graph input)."""
    g = GraphBuilder(seed)
    a = g.input(a_shape, *a_q)
    if kind in ("MAXIMUM", "MINIMUM"):
        b_q = out_q = a_q  # TFLM compares raw int8 values: every operand shares one quantization
    out_shape = tuple(np.broadcast_shapes(a_shape, b_shape))
    if out_q is None:
        out_q = {"ADD": (0.07, -1), "SUB": (0.07, 2), "MUL": (a_q[0] * b_q[0] * 60, 1)}[kind]
    if const_b:
        b = g.const_int8(g.rng.integers(-128, 128, b_shape).astype(np.int8), b_q[0], b_q[1], name="operand")
    else:
        if tuple(b_shape) != tuple(a_shape):
            raise ValueError("a computed second operand has the input's shape; use const_b for broadcasting")
        b = g.activation(b_shape, *b_q, name="relu")
        g.op("RELU", [a], [b])
    y = g.activation(out_shape, *out_q, name=kind.lower())
    options = {"ADD": schema.AddOptionsT, "SUB": schema.SubOptionsT, "MUL": schema.MulOptionsT}.get(kind)
    if options is not None:
        o = options()
        o.fusedActivationFunction = ACTIVATIONS[activation]
        g.op(kind, [a, b], [y], o)
    else:
        g.op(kind, [a, b], [y])
    return g.output(y).build()


# (input quantization, output quantization) each table op accepts
TABLE_OPS = {
    "LOGISTIC": ((0.06, 2), (1 / 256, -128)),
    "TANH": ((0.03, -4), (1 / 128, 0)),
    "HARD_SWISH": ((0.05, 6), (0.03, -90)),
    "LEAKY_RELU": ((0.04, -10), (0.03, -20)),
    "QUANTIZE": ((0.05, 7), (0.08, -3)),
    "RELU": ((0.05, 7), (0.03, -128)),
    "RELU6": ((0.05, 7), (0.05, 7)),
}


def table_op(kind="LOGISTIC", shape=(1, 5, 7), seed=0, in_q=None, out_q=None) -> bytes:
    g = GraphBuilder(seed)
    default_in, default_out = TABLE_OPS[kind]
    x = g.input(shape, *(in_q or default_in))
    y = g.activation(shape, *(out_q or default_out), name=kind.lower())
    options = None
    if kind == "LEAKY_RELU":
        options = schema.LeakyReluOptionsT()
        options.alpha = 0.2
    g.op(kind, [x], [y], options)
    return g.output(y).build()


def mean(in_shape=(1, 5, 6, 4), axes=(1, 2), keep_dims=True, in_q=(0.05, 3), out_q=(0.03, -2), seed=0) -> bytes:
    g = GraphBuilder(seed)
    x = g.input(in_shape, *in_q)
    axis = g.const_int32(np.array(axes, np.int32), name="axes")
    out = [1 if k in axes else d for k, d in enumerate(in_shape)] if keep_dims else \
        [d for k, d in enumerate(in_shape) if k not in axes]
    y = g.activation(out, *out_q, name="mean")
    o = schema.ReducerOptionsT()
    o.keepDims = keep_dims
    g.op("MEAN", [x, axis], [y], o)
    return g.output(y).build()


def concatenation(in_shape=(1, 4, 4, 3), other_c=5, axis=3, q=(0.05, -4), seed=0) -> bytes:
    """The input concatenated with a constant tensor of `other_c` channels (on the last axis) or rows."""
    g = GraphBuilder(seed)
    x = g.input(in_shape, *q)
    other_shape = list(in_shape)
    other_shape[axis] = other_c
    c = g.const_int8(g.rng.integers(-128, 128, other_shape).astype(np.int8), q[0], q[1], name="other")
    out = list(in_shape)
    out[axis] += other_c
    y = g.activation(out, *q, name="concat")
    o = schema.ConcatenationOptionsT()
    o.axis = axis
    g.op("CONCATENATION", [x, c], [y], o)
    return g.output(y).build()


def pad(in_shape=(1, 4, 5, 3), paddings=((0, 0), (1, 2), (2, 1), (0, 0)), q=(0.05, -6), seed=0) -> bytes:
    g = GraphBuilder(seed)
    x = g.input(in_shape, *q)
    p = g.const_int32(np.array(paddings, np.int32), name="paddings")
    y = g.activation([d + a + b for d, (a, b) in zip(in_shape, paddings)], *q, name="pad")
    g.op("PAD", [x, p], [y], schema.PadOptionsT())
    return g.output(y).build()


def resize_nearest(in_shape=(1, 3, 4, 2), size=(7, 9), align_corners=False, half_pixel_centers=False,
                   q=(0.05, 1), seed=0) -> bytes:
    g = GraphBuilder(seed)
    x = g.input(in_shape, *q)
    s = g.const_int32(np.array(size, np.int32), name="size")
    y = g.activation((1, *size, in_shape[3]), *q, name="resize")
    o = schema.ResizeNearestNeighborOptionsT()
    o.alignCorners, o.halfPixelCenters = align_corners, half_pixel_centers
    g.op("RESIZE_NEAREST_NEIGHBOR", [x, s], [y], o)
    return g.output(y).build()


def softmax(shape=(1, 10), beta=1.0, in_q=(0.1, 5), seed=0) -> bytes:
    g = GraphBuilder(seed)
    x = g.input(shape, *in_q)
    y = g.activation(shape, 1 / 256, -128, name="softmax")
    o = schema.SoftmaxOptionsT()
    o.beta = beta
    g.op("SOFTMAX", [x], [y], o)
    return g.output(y).build()


def transpose_conv(in_shape=(1, 4, 4, 3), out_c=2, kernel=(3, 3), stride=(2, 2), padding="SAME", bias=True,
                   in_q=(0.04, -3), seed=0) -> bytes:
    g = GraphBuilder(seed)
    x = g.input(in_shape, *in_q)
    if padding == "SAME":
        out_hw = (in_shape[1] * stride[0], in_shape[2] * stride[1])
    else:
        out_hw = ((in_shape[1] - 1) * stride[0] + kernel[0], (in_shape[2] - 1) * stride[1] + kernel[1])
    out_shape = g.const_int32(np.array((1, *out_hw, out_c), np.int32), name="output_shape")
    w, ws = g.random_weights((out_c, *kernel, in_shape[3]), 0, "deconv")
    inputs = [out_shape, w, x] + ([g.random_bias(in_q[0], ws, out_c, "deconv")] if bias else [])
    y = g.activation((1, *out_hw, out_c), _out_scale(in_q[0], ws, kernel[0] * kernel[1] * in_shape[3] // 2), 0,
                     "deconv")
    o = schema.TransposeConvOptionsT()
    o.padding = PADDINGS[padding]
    o.strideH, o.strideW = stride
    g.op("TRANSPOSE_CONV", inputs, [y], o)
    return g.output(y).build()


def reshape(in_shape=(1, 4, 5, 2), out_depth=6, in_q=(0.04, 2), seed=0) -> bytes:
    """RESHAPE to (1, N) then FULLY_CONNECTED: a reshape alone computes nothing."""
    g = GraphBuilder(seed)
    x = g.input(in_shape, *in_q)
    n = int(np.prod(in_shape))
    shape = g.const_int32(np.array((1, n), np.int32), name="shape")
    flat = g.activation((1, n), *in_q, name="flatten")
    o = schema.ReshapeOptionsT()
    o.newShape = [1, n]
    g.op("RESHAPE", [x, shape], [flat], o)
    w, ws = g.random_weights((out_depth, n), 0, "dense", per_channel=False)
    b = g.random_bias(in_q[0], ws, out_depth, "dense")
    y = g.activation((1, out_depth), _out_scale(in_q[0], ws, n), -1, "dense")
    g.op("FULLY_CONNECTED", [flat, w, b], [y], schema.FullyConnectedOptionsT())
    return g.output(y).build()


def chain(seed=0) -> bytes:
    """A small CNN in one graph (conv, depthwise, pools, add, reshape, FC, softmax): tensors that live across
    several ops, for the planner."""
    g = GraphBuilder(seed)
    in_q = (0.03, -10)
    x = g.input((1, 10, 10, 2), *in_q)
    w1, s1 = g.random_weights((6, 3, 3, 2), 0, "conv1")
    b1 = g.random_bias(in_q[0], s1, 6, "conv1")
    q1 = (_out_scale(in_q[0], s1, 18), -20)
    c1 = g.activation((1, 10, 10, 6), *q1, "conv1")
    g.op("CONV_2D", [x, w1, b1], [c1], conv_options(activation="RELU"))
    w2, s2 = g.random_weights((1, 3, 3, 6), 3, "dw")
    b2 = g.random_bias(q1[0], s2, 6, "dw")
    q2 = (_out_scale(q1[0], s2, 9), 5)
    c2 = g.activation((1, 10, 10, 6), *q2, "dw")
    g.op("DEPTHWISE_CONV_2D", [c1, w2, b2], [c2], conv_options(depth_multiplier=1))
    q3 = (max(q1[0], q2[0]) * 1.5, 0)
    s = g.activation((1, 10, 10, 6), *q3, "add")
    o = schema.AddOptionsT()
    g.op("ADD", [c1, c2], [s], o)
    p = g.activation((1, 5, 5, 6), *q3, "pool")
    po = schema.Pool2DOptionsT()
    po.padding, po.strideH, po.strideW, po.filterHeight, po.filterWidth = PADDINGS["VALID"], 2, 2, 2, 2
    g.op("MAX_POOL_2D", [s], [p], po)
    shape = g.const_int32(np.array((1, 150), np.int32), name="shape")
    flat = g.activation((1, 150), *q3, "flatten")
    ro = schema.ReshapeOptionsT()
    ro.newShape = [1, 150]
    g.op("RESHAPE", [p, shape], [flat], ro)
    w3, s3 = g.random_weights((10, 150), 0, "dense", per_channel=False)
    b3 = g.random_bias(q3[0], s3, 10, "dense")
    d = g.activation((1, 10), 0.08, 0, "dense")  # logits within +-10: the softmax spreads its output
    g.op("FULLY_CONNECTED", [flat, w3, b3], [d], schema.FullyConnectedOptionsT())
    y = g.activation((1, 10), 1 / 256, -128, "softmax")
    so = schema.SoftmaxOptionsT()
    so.beta = 1.0
    g.op("SOFTMAX", [d], [y], so)
    return g.output(y).build()


def transpose(in_shape=(1, 3, 4, 5), perm=(0, 3, 1, 2), q=(0.05, -3), seed=0) -> bytes:
    g = GraphBuilder(seed)
    x = g.input(in_shape, *q)
    p = g.const_int32(np.array(perm, np.int32), name="perm")
    y = g.activation([in_shape[k] for k in perm], *q, name="transpose")
    g.op("TRANSPOSE", [x, p], [y], schema.TransposeOptionsT())
    return g.output(y).build()


def slice_(in_shape=(1, 5, 6, 4), begin=(0, 1, 2, 1), size=(1, 3, -1, 2), q=(0.05, 2), seed=0) -> bytes:
    g = GraphBuilder(seed)
    x = g.input(in_shape, *q)
    b = g.const_int32(np.array(begin, np.int32), name="begin")
    s = g.const_int32(np.array(size, np.int32), name="size")
    y = g.activation([d - a if n == -1 else n for d, a, n in zip(in_shape, begin, size)], *q, name="slice")
    g.op("SLICE", [x, b, s], [y], schema.SliceOptionsT())
    return g.output(y).build()


def strided_options(begin_mask=0, end_mask=0, shrink_axis_mask=0, ellipsis_mask=0, new_axis_mask=0):
    o = schema.StridedSliceOptionsT()
    o.beginMask, o.endMask, o.shrinkAxisMask = begin_mask, end_mask, shrink_axis_mask
    o.ellipsisMask, o.newAxisMask = ellipsis_mask, new_axis_mask
    return o


def strided_slice_shape(shape, begin, end, strides, begin_mask=0, end_mask=0, shrink_axis_mask=0) -> list[int]:
    """The output shape numpy's slicing gives (what TF means by the masks), shrunk axes dropped."""
    index = []
    for k, (b, e, s) in enumerate(zip(begin, end, strides)):
        if shrink_axis_mask >> k & 1:
            index.append(b)
        else:
            index.append(slice(None if begin_mask >> k & 1 else b, None if end_mask >> k & 1 else e, s))
    return list(np.empty(shape, np.int8)[tuple(index)].shape)


def strided_slice(in_shape=(1, 6, 7, 4), begin=(0, 1, -1, 0), end=(1, 6, 0, 4), strides=(1, 2, -2, 1), q=(0.05, 2),
                  seed=0, **masks) -> bytes:
    g = GraphBuilder(seed)
    x = g.input(in_shape, *q)
    consts = [g.const_int32(np.array(v, np.int32), name=n) for v, n in ((begin, "begin"), (end, "end"),
                                                                          (strides, "strides"))]
    y = g.activation(strided_slice_shape(in_shape, begin, end, strides, **masks), *q, name="strided_slice")
    g.op("STRIDED_SLICE", [x, *consts], [y], strided_options(**masks))
    return g.output(y).build()


def split(in_shape=(1, 4, 6, 3), axis=2, sizes=(2, 2, 2), q=(0.05, -1), seed=0, version="SPLIT") -> bytes:
    """SPLIT (even sizes) or SPLIT_V of the input, its outputs concatenated back in reverse order (one graph
    output that reads every split output)."""
    g = GraphBuilder(seed)
    x = g.input(in_shape, *q)
    a = g.const_int32(np.array([axis], np.int32), name="axis")
    outs = []
    for k, n in enumerate(sizes):
        shape = list(in_shape)
        shape[axis] = n
        outs.append(g.activation(shape, *q, name=f"split_{k}"))
    if version == "SPLIT":
        o = schema.SplitOptionsT()
        o.numSplits = len(sizes)
        g.op("SPLIT", [a, x], outs, o)
    else:
        o = schema.SplitVOptionsT()
        o.numSplits = len(sizes)
        ss = g.const_int32(np.array(sizes, np.int32), name="size_splits")
        g.op("SPLIT_V", [x, ss, a], outs, o)
    y = g.activation(in_shape, *q, name="concat")
    co = schema.ConcatenationOptionsT()
    co.axis = axis
    g.op("CONCATENATION", outs[::-1], [y], co)
    return g.output(y).build()


def tile(in_shape=(1, 2, 3, 2), multiples=(1, 2, 3, 1), q=(0.05, 4), seed=0) -> bytes:
    g = GraphBuilder(seed)
    x = g.input(in_shape, *q)
    m = g.const_int32(np.array(multiples, np.int32), name="multiples")
    y = g.activation([d * k for d, k in zip(in_shape, multiples)], *q, name="tile")
    g.op("TILE", [x, m], [y], schema.TileOptionsT())
    return g.output(y).build()


def gather(in_shape=(1, 5, 6), indices=((4, 0, 2, 2),), axis=1, batch_dims=0, q=(0.05, -2), seed=0) -> bytes:
    g = GraphBuilder(seed)
    x = g.input(in_shape, *q)
    idx_values = np.array(indices, np.int32)
    i = g.const_int32(idx_values, name="indices")
    a = axis + len(in_shape) if axis < 0 else axis
    out = list(in_shape[:a]) + list(idx_values.shape[batch_dims:]) + list(in_shape[a + 1:])
    y = g.activation(out, *q, name="gather")
    o = schema.GatherOptionsT()
    o.axis, o.batchDims = axis, batch_dims
    g.op("GATHER", [x, i], [y], o)
    return g.output(y).build()


# ---- the op-family cases the fast tests run: name -> (builder, kwargs) ----

CASES = {
    "conv_same_s1": (conv, dict()),
    "conv_valid_s2_per_tensor": (conv, dict(in_shape=(1, 10, 9, 5), out_c=6, stride=(2, 2), padding="VALID",
                                            per_channel=False, activation="RELU", seed=1)),
    "conv_same_s2_3x2": (conv, dict(in_shape=(1, 11, 8, 4), out_c=8, kernel=(3, 2), stride=(2, 1), seed=2)),
    "conv_dilated_relu6": (conv, dict(in_shape=(1, 12, 12, 2), out_c=5, dilation=(2, 2), padding="VALID",
                                      activation="RELU6", seed=3)),
    "conv_1x1": (conv, dict(in_shape=(1, 6, 6, 16), out_c=8, kernel=(1, 1), seed=4)),
    "depthwise_same": (depthwise, dict()),
    "depthwise_valid_s2_mult2": (depthwise, dict(in_shape=(1, 9, 10, 3), multiplier=2, stride=(2, 2),
                                                 padding="VALID", activation="RELU", seed=1)),
    "depthwise_5x5_c8": (depthwise, dict(in_shape=(1, 8, 8, 8), kernel=(5, 5), seed=2)),
    "fc": (fully_connected, dict()),
    "fc_per_channel_relu": (fully_connected, dict(in_shape=(1, 64), out_depth=12, per_channel=True,
                                                  activation="RELU", seed=1)),
    "fc_no_bias": (fully_connected, dict(in_shape=(1, 17), out_depth=5, bias=False, seed=2)),
    "max_pool_2x2": (pool, dict()),
    "max_pool_3x3_same_s1": (pool, dict(in_shape=(1, 7, 6, 5), window=(3, 3), stride=(1, 1), padding="SAME",
                                        seed=1)),
    "avg_pool_3x3_same_s2": (pool, dict(kind="AVERAGE_POOL_2D", in_shape=(1, 9, 9, 4), window=(3, 3),
                                        padding="SAME", seed=2)),
    "avg_pool_global": (pool, dict(kind="AVERAGE_POOL_2D", in_shape=(1, 6, 5, 3), window=(6, 5), stride=(1, 1),
                                   seed=3)),
    "add": (binary, dict(kind="ADD")),
    "add_relu": (binary, dict(kind="ADD", activation="RELU", seed=1)),
    "add_broadcast": (binary, dict(kind="ADD", b_shape=(1, 1, 1, 3), const_b=True, seed=2)),
    "sub_broadcast": (binary, dict(kind="SUB", b_shape=(1, 1, 4, 1), const_b=True, seed=3)),
    "mul_broadcast": (binary, dict(kind="MUL", b_shape=(3,), const_b=True, seed=4)),
    "mul": (binary, dict(kind="MUL", seed=5)),
    "maximum_broadcast": (binary, dict(kind="MAXIMUM", b_shape=(1, 4, 1, 3), const_b=True, seed=6)),
    "minimum": (binary, dict(kind="MINIMUM", seed=7)),
    **{kind.lower(): (table_op, dict(kind=kind)) for kind in TABLE_OPS},
    "mean_hw": (mean, dict()),
    "mean_w_no_keep": (mean, dict(in_shape=(1, 4, 6, 3), axes=(2,), keep_dims=False, seed=1)),
    "concatenation_channels": (concatenation, dict()),
    "concatenation_rows": (concatenation, dict(in_shape=(1, 3, 4, 2), other_c=2, axis=1, seed=1)),
    "pad": (pad, dict()),
    "resize_nearest": (resize_nearest, dict()),
    "softmax": (softmax, dict()),
    "softmax_rows_beta": (softmax, dict(shape=(1, 3, 7), beta=0.5, in_q=(0.2, -3), seed=1)),
    "transpose_conv_same": (transpose_conv, dict()),
    "transpose_conv_valid": (transpose_conv, dict(in_shape=(1, 3, 3, 2), out_c=3, stride=(1, 1),
                                                  padding="VALID", bias=False, seed=1)),
    "reshape_fc": (reshape, dict()),
    "chain": (chain, dict()),
    "transpose_nhwc_nchw": (transpose, dict()),
    "transpose_3d": (transpose, dict(in_shape=(2, 3, 5), perm=(2, 0, 1), seed=1)),
    "transpose_5d": (transpose, dict(in_shape=(1, 2, 3, 2, 4), perm=(0, 4, 2, 1, 3), seed=2)),
    "slice": (slice_, dict()),
    "strided_slice_backwards": (strided_slice, dict()),
    "strided_slice_masks": (strided_slice, dict(in_shape=(1, 5, 8), begin=(0, 1, 7), end=(1, -1, 0),
                                                strides=(1, 1, -3), begin_mask=2, end_mask=4, shrink_axis_mask=1,
                                                seed=1)),
    "split": (split, dict()),
    "split_v": (split, dict(in_shape=(1, 7, 3), axis=1, sizes=(1, 4, 2), version="SPLIT_V", seed=1)),
    "tile": (tile, dict()),
    "gather_axis1": (gather, dict()),
    "gather_batch_dims": (gather, dict(in_shape=(2, 4, 3), indices=((3, 3, 0), (1, 2, 0)), axis=1, batch_dims=1,
                                       seed=1)),
}


@functools.lru_cache(maxsize=None)
def case(name: str) -> bytes:
    """The .tflite of case `name` (built once per process)."""
    builder, kwargs = CASES[name]
    return builder(**kwargs)
