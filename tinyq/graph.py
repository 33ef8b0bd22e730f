"""A typed view of a .tflite flatbuffer: tensors with quantization and constant data, operators with options."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import InvalidModelError


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


class Padding(enum.Enum):
    SAME = 0
    VALID = 1


class Activation(enum.Enum):
    """Fused activations TFLite can attach to an op (the enum values of the schema)."""

    NONE = 0
    RELU = 1
    RELU_N1_TO_1 = 2
    RELU6 = 3
    TANH = 4
    SIGN_BIT = 5


_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 9: "int8", 7: "int16", 6: "bool"}
_NUMPY = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "uint8": np.uint8, "int64": np.int64,
          "int8": np.int8, "int16": np.int16, "bool": np.bool_}


@dataclass(frozen=True)
class Tensor:
    """One tensor: shape, dtype, affine quantization (per tensor or per channel) and constant data if any."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int
    data: np.ndarray | None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(_NUMPY.get(self.dtype, np.uint8)).itemsize

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class ConvOptions:
    padding: Padding
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    activation: Activation
    depth_multiplier: int = 1


@dataclass(frozen=True)
class PoolOptions:
    padding: Padding
    stride_h: int
    stride_w: int
    filter_h: int
    filter_w: int
    activation: Activation


@dataclass(frozen=True)
class FullyConnectedOptions:
    activation: Activation
    keep_num_dims: bool
    shuffled_weights: bool


@dataclass(frozen=True)
class SoftmaxOptions:
    beta: float


@dataclass(frozen=True)
class AddOptions:
    activation: Activation


@dataclass(frozen=True)
class NoOptions:
    pass


@dataclass(frozen=True)
class ActivationOptions:
    """Options that are only a fused activation (MUL, SUB)."""

    activation: Activation


@dataclass(frozen=True)
class ConcatenationOptions:
    axis: int
    activation: Activation


@dataclass(frozen=True)
class ReducerOptions:
    keep_dims: bool


@dataclass(frozen=True)
class LeakyReluOptions:
    alpha: float


@dataclass(frozen=True)
class ResizeOptions:
    align_corners: bool
    half_pixel_centers: bool


@dataclass(frozen=True)
class TransposeConvOptions:
    padding: Padding
    stride_h: int
    stride_w: int
    activation: Activation


@dataclass(frozen=True)
class Operator:
    """One operator in execution order: builtin code, name, version, tensor indices and typed options."""

    index: int
    code: int
    name: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: object


def _enum(cls: type[enum.Enum], value: int, field: str) -> enum.Enum:
    """An enum member of an options field; a value outside the schema's enum raises naming the field."""
    try:
        return cls(value)
    except ValueError:
        valid = ", ".join(f"{m.value} {m.name}" for m in cls)
        raise ValueError(f"field {field} = {value} is not a valid {cls.__name__} ({valid})") from None


def _conv(o) -> ConvOptions:
    return ConvOptions(_enum(Padding, o.padding, "padding"), o.strideH, o.strideW, o.dilationHFactor,
                       o.dilationWFactor, _enum(Activation, o.fusedActivationFunction, "fused_activation_function"))


def _depthwise(o) -> ConvOptions:
    return ConvOptions(_enum(Padding, o.padding, "padding"), o.strideH, o.strideW, o.dilationHFactor,
                       o.dilationWFactor, _enum(Activation, o.fusedActivationFunction, "fused_activation_function"),
                       o.depthMultiplier)


def _pool(o) -> PoolOptions:
    return PoolOptions(_enum(Padding, o.padding, "padding"), o.strideH, o.strideW, o.filterHeight, o.filterWidth,
                       _enum(Activation, o.fusedActivationFunction, "fused_activation_function"))


def _fc(o) -> FullyConnectedOptions:
    return FullyConnectedOptions(_enum(Activation, o.fusedActivationFunction, "fused_activation_function"),
                                 bool(o.keepNumDims), o.weightsFormat != 0)


def _options_table() -> dict[int, object]:
    """Builtin operator code -> reader of its options; ops outside the table keep raw options."""
    op = _schema().BuiltinOperator
    return {
        op.CONV_2D: _conv,
        op.DEPTHWISE_CONV_2D: _depthwise,
        op.MAX_POOL_2D: _pool,
        op.AVERAGE_POOL_2D: _pool,
        op.FULLY_CONNECTED: _fc,
        op.SOFTMAX: lambda o: SoftmaxOptions(float(o.beta)),
        op.ADD: lambda o: AddOptions(_enum(Activation, o.fusedActivationFunction, "fused_activation_function")),
        op.RESHAPE: lambda o: NoOptions(),
        op.MUL: lambda o: ActivationOptions(Activation(o.fusedActivationFunction)),
        op.SUB: lambda o: ActivationOptions(Activation(o.fusedActivationFunction)),
        op.CONCATENATION: lambda o: ConcatenationOptions(int(o.axis), Activation(o.fusedActivationFunction)),
        op.MEAN: lambda o: ReducerOptions(bool(o.keepDims)),
        op.LEAKY_RELU: lambda o: LeakyReluOptions(float(o.alpha)),
        op.RESIZE_NEAREST_NEIGHBOR: lambda o: ResizeOptions(bool(o.alignCorners), bool(o.halfPixelCenters)),
        op.TRANSPOSE_CONV: lambda o: TransposeConvOptions(Padding(o.padding), o.strideH, o.strideW,
                                                          Activation(o.fusedActivationFunction)),
        **{code: (lambda o: NoOptions()) for code in (
            op.PAD, op.PADV2, op.SQUEEZE, op.EXPAND_DIMS, op.LOGISTIC, op.TANH, op.HARD_SWISH, op.QUANTIZE,
            op.MAXIMUM, op.MINIMUM, op.RELU, op.RELU6)},
    }


def op_name(code: int) -> str:
    """The schema's name of a builtin operator code (CONV_2D, ...)."""
    names = {v: k for k, v in vars(_schema().BuiltinOperator).items() if not k.startswith("_")}
    return names.get(code, f"BUILTIN_{code}")


@dataclass(frozen=True)
class Graph:
    """The one subgraph of a model: tensors, operators in execution order, graph inputs and outputs.

    Invariants read_graph guarantees (downstream code relies on them and re-checks nothing):
    - every tensor has a known dtype, rank <= MAX_RANK, dimensions in [1, MAX_DIM], at most MAX_TENSOR_BYTES
      bytes; constant data has exactly shape x dtype bytes; scales are finite within SCALE_RANGE, as many zero
      points as scales, each within the dtype's range, per-channel scales match their axis;
    - every op index is in range: op inputs are tensors or -1 (absent optional), outputs are tensors, at least
      one and distinct; graph inputs and outputs are non-empty, in range and distinct;
    - ops are in execution order and every tensor is written once: an op reads only graph inputs, constants,
      variables or earlier ops' outputs, so alias chains (RESHAPE) are acyclic;
    - ops in _spec_table() have their operand counts, ranks, dtypes, options class, enum values and shape
      relations checked (output sizes follow from padding, strides, dilations and filters); every options field
      named stride*, dilation*, filter* is in [1, MAX_WINDOW].
    """

    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def layer(self, tensor_index: int) -> str:
        """The Keras layer a tensor came from, as far as its name tells ('conv1'), else the tensor name."""
        name = self.tensors[tensor_index].name.split(";")[0]
        parts = [p for p in name.split("/") if p]
        if len(parts) >= 3:
            return parts[-2].removesuffix("_1")
        return name

    def where(self, op: Operator) -> str:
        """'op #3 CONV_2D (layer conv2)' for error messages."""
        out = op.outputs[0] if op.outputs else None
        layer = f" (layer {self.layer(out)})" if out is not None and out >= 0 else ""
        return f"op #{op.index} {op.name}{layer}"

    def consumers(self, tensor_index: int) -> list[int]:
        return [op.index for op in self.operators if tensor_index in op.inputs]

    def op_macs(self, op: Operator) -> int:
        """Multiply-accumulates of one op: (transposed) convolutions, depthwise convolutions and fully connected;
        else 0. A transposed convolution counts every input value times every filter tap of each output channel."""
        schema_op = _schema().BuiltinOperator
        out = self.tensors[op.outputs[0]]
        if op.code == schema_op.CONV_2D:
            return out.size * int(np.prod(self.tensors[op.inputs[1]].shape[1:]))
        if op.code == schema_op.DEPTHWISE_CONV_2D:
            w = self.tensors[op.inputs[1]]
            return out.size * w.shape[1] * w.shape[2]
        if op.code == schema_op.TRANSPOSE_CONV:
            return self.tensors[op.inputs[2]].size * int(np.prod(self.tensors[op.inputs[1]].shape[:3]))
        if op.code == schema_op.FULLY_CONNECTED:
            return out.size * self.tensors[op.inputs[1]].shape[1]
        return 0

    def macs(self) -> int:
        """Multiply-accumulates of one inference."""
        return sum(self.op_macs(op) for op in self.operators)


MAX_WINDOW = 1 << 16  # largest stride, dilation or filter size the reader accepts
MAX_DIM = 1 << 30  # largest dimension; with MAX_WINDOW, kernel index math stays inside int32
MAX_TENSOR_BYTES = (1 << 31) - 1
MAX_RANK = 8
SCALE_RANGE = (1e-30, 1e30)  # a quantization scale outside this cannot come from real data
_INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int32": (-(1 << 31), (1 << 31) - 1),
               "int64": (-(1 << 63), (1 << 63) - 1)}
_WINDOW_FIELD_PREFIXES = ("stride", "dilation", "filter")


def is_tflite(data: bytes) -> bool:
    """True when the bytes carry the TFLite flatbuffer file identifier ('TFL3' at offset 4), whatever the file name."""
    return len(data) >= 8 and bytes(data[4:8]) == b"TFL3"


def _file_kind(data: bytes) -> str:
    """What the leading bytes say a non-.tflite file is, for the error message."""
    head = bytes(data[:8])
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (a .keras model?)"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "an HDF5 file (a .h5 Keras model?)"
    if not head:
        return "empty"
    return f"file identifier {head[4:8]!r}, expected b'TFL3'"


@dataclass(frozen=True)
class OpSpec:
    """Preconditions the reader checks of one builtin op before anything else sees it.

    `options` is the schema's options class the op must carry (None: any or none); `input_ranks` the allowed
    ranks of inputs by position (None: any); `check` returns what is wrong with the op's shapes and options, or
    None. A new op adds one entry to _spec_table().
    """

    inputs: tuple[int, int]
    outputs: int = 1
    options: str | None = None
    options_required: bool = False
    input_ranks: tuple[tuple[int, ...] | None, ...] = ()
    output_ranks: tuple[int, ...] | None = None
    same_dtype: tuple[int, ...] = ()  # input positions whose dtype must equal output 0's
    check: Callable[[Graph, Operator], str | None] | None = None


def _window_check(g: Graph, op: Operator, k_h: int, k_w: int, dilation: tuple[int, int]) -> str | None:
    """Output height/width follow from padding, stride, dilation and filter; the window fits kernel index math."""
    src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    o = op.options
    for axis, (k, s, d) in enumerate(((k_h, o.stride_h, dilation[0]), (k_w, o.stride_w, dilation[1])), start=1):
        effective = (k - 1) * d + 1
        if effective > MAX_DIM:
            return f"effective filter size {effective} on axis {axis} exceeds {MAX_DIM}"
        want = _out_size(o.padding, s, effective, src.shape[axis])
        if dst.shape[axis] != want:
            return (f"output {dst.name!r} has {dst.shape[axis]} on axis {axis}; {o.padding.name} padding, stride {s}, "
                    f"filter {k}, dilation {d} on input {src.shape[axis]} give {want}")
    if dst.shape[0] != src.shape[0]:
        return f"batch changes from {src.shape[0]} to {dst.shape[0]}"
    return None


def _out_size(padding: Padding, stride: int, effective: int, in_size: int) -> int:
    if padding is Padding.SAME:
        return (in_size + stride - 1) // stride
    return max(0, (in_size - effective + stride) // stride)


def _bias_check(g: Graph, op: Operator, channels: int) -> str | None:
    if len(op.inputs) > 2 and op.inputs[2] >= 0 and g.tensors[op.inputs[2]].size != channels:
        b = g.tensors[op.inputs[2]]
        return f"bias {b.name!r} has {b.size} values for {channels} output channels"
    return None


def _conv_check(g: Graph, op: Operator) -> str | None:
    src, w, dst = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    if w.shape[0] != dst.shape[3] or src.shape[3] % w.shape[3] != 0:
        return f"filter {w.name!r} {w.shape} does not fit input {src.shape} -> output {dst.shape}"
    return _bias_check(g, op, dst.shape[3]) or _window_check(g, op, w.shape[1], w.shape[2],
                                                              (op.options.dilation_h, op.options.dilation_w))


def _depthwise_check(g: Graph, op: Operator) -> str | None:
    src, w, dst = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    mult = op.options.depth_multiplier
    if not 0 <= mult <= MAX_WINDOW:
        return f"field depth_multiplier = {mult} is outside [0, {MAX_WINDOW}]"
    if (w.shape[0] != 1 or w.shape[3] != dst.shape[3] or dst.shape[3] % src.shape[3] != 0
            or (mult and src.shape[3] * mult != dst.shape[3])):
        return (f"filter {w.name!r} {w.shape} with depth multiplier {mult} does not fit input {src.shape} -> "
                f"output {dst.shape}")
    return _bias_check(g, op, dst.shape[3]) or _window_check(g, op, w.shape[1], w.shape[2],
                                                              (op.options.dilation_h, op.options.dilation_w))


def _pool_check(g: Graph, op: Operator) -> str | None:
    src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if src.shape[3] != dst.shape[3]:
        return f"channels change from {src.shape[3]} to {dst.shape[3]}"
    return _window_check(g, op, op.options.filter_h, op.options.filter_w, (1, 1))


def _fc_check(g: Graph, op: Operator) -> str | None:
    src, w, dst = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    if src.size % w.shape[1] != 0 or dst.size != src.size // w.shape[1] * w.shape[0]:
        return f"input {src.shape} and output {dst.shape} do not fit weights {w.name!r} {w.shape}"
    return _bias_check(g, op, w.shape[0])


def _broadcast_check(g: Graph, op: Operator) -> str | None:
    a, b, dst = (g.tensors[i] for i in (*op.inputs[:2], op.outputs[0]))
    rank = max(len(a.shape), len(b.shape))
    pa, pb = (1,) * (rank - len(a.shape)) + a.shape, (1,) * (rank - len(b.shape)) + b.shape
    if any(x != y and 1 not in (x, y) for x, y in zip(pa, pb)):
        return f"shapes {a.shape} and {b.shape} do not broadcast"
    if tuple(max(x, y) for x, y in zip(pa, pb)) != dst.shape:
        return f"output {dst.name!r} {dst.shape} is not the broadcast of {a.shape} and {b.shape}"
    return None


def _same_shape_check(g: Graph, op: Operator) -> str | None:
    src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    return None if src.shape == dst.shape else f"output {dst.name!r} {dst.shape} differs from input {src.shape}"


def _softmax_check(g: Graph, op: Operator) -> str | None:
    beta = op.options.beta
    if not (math.isfinite(beta) and beta > 0):
        return f"field beta = {beta} must be finite and > 0"
    return _same_shape_check(g, op)


def _same_size_check(g: Graph, op: Operator) -> str | None:
    src, dst = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    return None if src.size == dst.size else f"output {dst.name!r} {dst.shape} holds {dst.size} values, input " \
                                             f"{src.shape} {src.size}"


def _spec_table() -> dict[int, OpSpec]:
    """Builtin operator code -> its preconditions; ops outside the table get the generic checks only."""
    op = _schema().BuiltinOperator
    conv = dict(outputs=1, options_required=True, output_ranks=(4,), same_dtype=(0,))
    return {
        op.CONV_2D: OpSpec((2, 3), options="Conv2DOptionsT", input_ranks=((4,), (4,), (1,)), check=_conv_check,
                           **conv),
        op.DEPTHWISE_CONV_2D: OpSpec((2, 3), options="DepthwiseConv2DOptionsT", input_ranks=((4,), (4,), (1,)),
                                     check=_depthwise_check, **conv),
        op.MAX_POOL_2D: OpSpec((1, 1), options="Pool2DOptionsT", input_ranks=((4,),), check=_pool_check, **conv),
        op.AVERAGE_POOL_2D: OpSpec((1, 1), options="Pool2DOptionsT", input_ranks=((4,),), check=_pool_check,
                                   **conv),
        op.FULLY_CONNECTED: OpSpec((2, 3), options="FullyConnectedOptionsT", input_ranks=(None, (2,), (1,)),
                                   same_dtype=(0,), check=_fc_check),
        op.ADD: OpSpec((2, 2), options="AddOptionsT", same_dtype=(0, 1), check=_broadcast_check),
        op.SOFTMAX: OpSpec((1, 1), options="SoftmaxOptionsT", options_required=True,
                           input_ranks=((1, 2, 3, 4, 5, 6, 7, 8),), check=_softmax_check),
        op.RESHAPE: OpSpec((1, 2), options="ReshapeOptionsT", same_dtype=(0,), check=_same_size_check),
        op.QUANTIZE: OpSpec((1, 1), check=_same_shape_check),
        op.DEQUANTIZE: OpSpec((1, 1), check=_same_shape_check),
    }


class _Gate:
    """The reader's checks, in the order a Graph is built: buffers and tensors, then operators, then the graph."""

    def __init__(self, model) -> None:
        self.model = model
        self.buffers = model.buffers or []
        self.schema = _schema()

    @staticmethod
    def fail(what: str) -> InvalidModelError:
        return InvalidModelError(f"invalid .tflite: {what}")

    def tensor(self, i: int, t) -> tuple[Tensor, bool]:
        """Tensor i and whether it is a variable; raises naming the tensor and field at fault."""
        try:
            name = (t.name or b"").decode("utf-8") if isinstance(t.name, (bytes, bytearray)) else str(t.name or "")
        except UnicodeDecodeError as exc:
            raise self.fail(f"tensor #{i}: field name is not UTF-8 ({exc.reason} at byte {exc.start})") from None
        where = f"tensor #{i} {name!r}"
        if t.type not in _DTYPES:
            names = {v: k for k, v in vars(self.schema.TensorType).items() if not k.startswith("_")}
            raise self.fail(f"{where}: field type = {t.type} ({names.get(t.type, 'not a TensorType')}) is not "
                            f"supported (supported: {', '.join(_DTYPES.values())})")
        dtype = _DTYPES[t.type]
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        if len(shape) > MAX_RANK or any(not 1 <= d <= MAX_DIM for d in shape):
            raise self.fail(f"{where}: field shape = {list(shape)}: rank must be <= {MAX_RANK} and every "
                            f"dimension in [1, {MAX_DIM}]")
        itemsize = np.dtype(_NUMPY[dtype]).itemsize
        size = math.prod(shape)
        if size * itemsize > MAX_TENSOR_BYTES:
            raise self.fail(f"{where}: shape {list(shape)} of {dtype} is {size * itemsize} bytes, more than "
                            f"{MAX_TENSOR_BYTES}")
        if t.sparsity is not None:
            raise self.fail(f"{where}: sparse tensors are not supported")
        scales, zps, qdim = self.quantization(where, t.quantization, dtype, shape)
        if not 0 <= t.buffer < len(self.buffers):
            raise self.fail(f"{where}: field buffer = {t.buffer} is outside the model's {len(self.buffers)} buffers")
        buf = self.buffers[t.buffer]
        const = None
        if buf is not None and (getattr(buf, "offset", 0) or getattr(buf, "size", 0)):
            raise self.fail(f"{where}: data stored outside the flatbuffer (buffer {t.buffer} offset "
                            f"{buf.offset}) is not supported")
        if buf is not None and buf.data is not None and len(buf.data) > 0:
            if len(buf.data) != size * itemsize:
                raise self.fail(f"{where}: buffer {t.buffer} holds {len(buf.data)} bytes; shape {list(shape)} of "
                                f"{dtype} needs {size * itemsize}")
            raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
            const = np.frombuffer(raw, dtype=_NUMPY[dtype]).reshape(shape)
        return Tensor(i, name, shape, dtype, scales, zps, qdim, const), bool(t.isVariable)

    def quantization(self, where: str, q, dtype: str, shape: tuple[int, ...]):
        if q is None:
            return (), (), 0
        scales = tuple(float(s) for s in (q.scale if q.scale is not None else []))
        zps = tuple(int(z) for z in (q.zeroPoint if q.zeroPoint is not None else []))
        qdim = int(q.quantizedDimension)
        if not scales and not zps:
            return (), (), qdim
        if len(zps) != len(scales):
            raise self.fail(f"{where}: field quantization has {len(scales)} scales and {len(zps)} zero points")
        bad = [s for s in scales if not (math.isfinite(s) and SCALE_RANGE[0] <= s <= SCALE_RANGE[1])]
        if bad:
            raise self.fail(f"{where}: field quantization.scale = {bad[0]!r}: scales must be finite and in "
                            f"[{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}]")
        lo, hi = _INT_RANGES.get(dtype, (-(1 << 63), (1 << 63) - 1))
        bad_zp = [z for z in zps if not lo <= z <= hi]
        if bad_zp:
            raise self.fail(f"{where}: field quantization.zero_point = {bad_zp[0]} is outside {dtype}'s "
                            f"range [{lo}, {hi}]")
        if len(scales) > 1 and not (0 <= qdim < len(shape) and shape[qdim] == len(scales)):
            raise self.fail(f"{where}: field quantization.quantized_dimension = {qdim}: {len(scales)} scales do "
                            f"not match that axis of shape {list(shape)}")
        if not 0 <= qdim < max(1, len(shape)):
            raise self.fail(f"{where}: field quantization.quantized_dimension = {qdim} is outside rank "
                            f"{len(shape)}")
        return scales, zps, qdim

    def operator(self, i: int, o, tensors: list[Tensor], options_table: dict, specs: dict) -> Operator:
        codes = self.model.operatorCodes or []
        if not 0 <= o.opcodeIndex < len(codes):
            raise self.fail(f"op #{i}: field opcode_index = {o.opcodeIndex} is outside the model's {len(codes)} "
                            f"operator codes")
        oc = codes[o.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        name = op_name(code)
        if name.startswith("BUILTIN_"):
            raise self.fail(f"op #{i}: operator code {code} is not a BuiltinOperator of the TFLite schema")
        where = f"op #{i} {name}"
        if int(oc.version) < 1:
            raise self.fail(f"{where}: field version = {oc.version} must be >= 1")
        inputs = tuple(int(x) for x in (o.inputs if o.inputs is not None else []))
        outputs = tuple(int(x) for x in (o.outputs if o.outputs is not None else []))
        n = len(tensors)
        for role, ids, lowest in (("inputs", inputs, -1), ("outputs", outputs, 0)):
            for pos, t in enumerate(ids):
                if not lowest <= t < n:
                    raise self.fail(f"{where}: field {role}[{pos}] = {t} is outside [{lowest}, {n}) "
                                    f"({n} tensors{', -1 for an absent optional input' if lowest < 0 else ''})")
        if not outputs:
            raise self.fail(f"{where}: field outputs is empty")
        if len(set(outputs)) != len(outputs):
            raise self.fail(f"{where}: field outputs = {list(outputs)} names a tensor twice")
        where = f"op #{i} {name} (output {tensors[outputs[0]].name!r})"
        spec = specs.get(code)
        raw = o.builtinOptions
        expected = getattr(self.schema, spec.options) if spec is not None and spec.options else None
        if raw is not None and expected is not None and not isinstance(raw, expected):
            raise self.fail(f"{where}: field builtin_options is {type(raw).__name__.removesuffix('T')}, expected "
                            f"{expected.__name__.removesuffix('T')}")
        if raw is None and spec is not None and spec.options_required:
            raise self.fail(f"{where}: field builtin_options is missing (expected "
                            f"{expected.__name__.removesuffix('T')})")
        reader = options_table.get(code)
        if raw is None and expected is not None:
            raw = expected()
        try:
            options = reader(raw) if reader is not None and raw is not None else (
                NoOptions() if reader is not None else raw)
        except (AttributeError, TypeError, ValueError) as exc:
            raise self.fail(f"{where}: options {type(raw).__name__.removesuffix('T')}: "
                            f"{exc}") from None
        if dataclasses.is_dataclass(options):
            for f in dataclasses.fields(options):
                value = getattr(options, f.name)
                if f.name.startswith(_WINDOW_FIELD_PREFIXES) and not 1 <= value <= MAX_WINDOW:
                    raise self.fail(f"{where}: field {f.name} = {value} is outside [1, {MAX_WINDOW}]")
        return Operator(i, code, name, int(oc.version), inputs, outputs, options)

    def op_preconditions(self, g: Graph, op: Operator, spec: OpSpec) -> None:
        where = g.where(op)
        lo, hi = spec.inputs
        if not lo <= len(op.inputs) <= hi or len(op.outputs) != spec.outputs:
            raise self.fail(f"{where}: has {len(op.inputs)} inputs and {len(op.outputs)} outputs, expected "
                            f"{lo}{'' if lo == hi else f'..{hi}'} and {spec.outputs}")
        if any(t < 0 for t in op.inputs[:lo]):
            raise self.fail(f"{where}: a required input is absent (-1): {list(op.inputs)}")
        for pos, ranks in enumerate(spec.input_ranks):
            if pos < len(op.inputs) and op.inputs[pos] >= 0 and ranks is not None:
                t = g.tensors[op.inputs[pos]]
                if len(t.shape) not in ranks:
                    raise self.fail(f"{where}: input {pos} tensor {t.name!r} has shape {list(t.shape)}, expected "
                                    f"rank {' or '.join(map(str, ranks))}")
        out = g.tensors[op.outputs[0]]
        if spec.output_ranks is not None and len(out.shape) not in spec.output_ranks:
            raise self.fail(f"{where}: output tensor {out.name!r} has shape {list(out.shape)}, expected rank "
                            f"{' or '.join(map(str, spec.output_ranks))}")
        for pos in spec.same_dtype:
            t = g.tensors[op.inputs[pos]]
            if t.dtype != out.dtype:
                raise self.fail(f"{where}: input {pos} tensor {t.name!r} is {t.dtype}, output {out.name!r} is "
                                f"{out.dtype}")
        problem = spec.check(g, op) if spec.check is not None else None
        if problem:
            raise self.fail(f"{where}: {problem}")

    def dataflow(self, g: Graph, variables: set[int]) -> None:
        """Ops in execution order: every activation an op reads exists by then, every tensor is written once."""
        written: dict[int, str] = {t: "a graph input" for t in g.inputs}
        for op in g.operators:
            for pos, t in enumerate(op.inputs):
                if t >= 0 and t not in written and not g.tensors[t].is_constant and t not in variables:
                    raise self.fail(f"{g.where(op)}: input {pos} tensor {g.tensors[t].name!r} (#{t}) is read before "
                                    f"any op writes it (ops must be in execution order)")
            for t in op.outputs:
                if t in written or g.tensors[t].is_constant:
                    by = written.get(t, "constant data")
                    raise self.fail(f"{g.where(op)}: output tensor {g.tensors[t].name!r} (#{t}) is already "
                                    f"{by if by.startswith(('a ', 'constant')) else 'written by ' + by}")
                written[t] = f"op #{op.index} {op.name}"
        for pos, t in enumerate(g.outputs):
            if t not in written:
                raise self.fail(f"graph output {pos} tensor {g.tensors[t].name!r} (#{t}) is never written by an op")

    def io(self, field: str, ids, n: int) -> tuple[int, ...]:
        ids = tuple(int(x) for x in (ids if ids is not None else []))
        if not ids:
            raise self.fail(f"subgraph field {field} is empty")
        for pos, t in enumerate(ids):
            if not 0 <= t < n:
                raise self.fail(f"subgraph field {field}[{pos}] = {t} is outside [0, {n}) ({n} tensors)")
        if len(set(ids)) != len(ids):
            raise self.fail(f"subgraph field {field} = {list(ids)} names a tensor twice")
        return ids


def _string_bytes(obj, slot: int) -> int:
    """Length of a string field read from its flatbuffer header, without copying the string."""
    import flatbuffers

    o = obj._tab.Offset(slot)  # noqa: SLF001 - the generated accessors would copy the whole string
    if o == 0:
        return 0
    start = obj._tab.Indirect(o + obj._tab.Pos)  # noqa: SLF001
    return int(flatbuffers.encode.Get(flatbuffers.packer.uoffset, obj._tab.Bytes, start))  # noqa: SLF001


def _check_unpack_budget(schema, data: bytes) -> None:
    """Bound what unpacking will build before it builds it: tables and strings the object API copies. Flatbuffers
    may share one table or string among many references, so a small file could otherwise unpack into gigabytes.
    Numeric vectors are numpy views and cost nothing."""
    budget = 16 * len(data) + (1 << 20)
    spent = 0

    def spend(n: int, what: str) -> int:
        nonlocal spent
        spent += n
        if spent > budget:
            raise InvalidModelError(f"invalid .tflite: {what} would unpack into more than {budget} bytes from a "
                                    f"{len(data)}-byte file (shared or overlapping tables)")
        return n

    m = schema.Model.GetRootAs(data, 0)
    spend(_string_bytes(m, 10), "field description")
    for i in range(spend(m.OperatorCodesLength(), "operator_codes")):
        spend(_string_bytes(m.OperatorCodes(i), 6), f"operator_codes[{i}].custom_code")
    spend(m.BuffersLength(), "buffers")
    for i in range(spend(m.MetadataLength(), "metadata")):
        spend(_string_bytes(m.Metadata(i), 4), f"metadata[{i}].name")
    for i in range(spend(m.SignatureDefsLength(), "signature_defs")):
        sig = m.SignatureDefs(i)
        spend(_string_bytes(sig, 8), f"signature_defs[{i}].signature_key")
        for field, n, get in (("inputs", sig.InputsLength(), sig.Inputs),
                              ("outputs", sig.OutputsLength(), sig.Outputs)):
            for j in range(spend(n, f"signature_defs[{i}].{field}")):
                spend(_string_bytes(get(j), 4), f"signature_defs[{i}].{field}[{j}].name")
    for g in range(spend(m.SubgraphsLength(), "subgraphs")):
        sg = m.Subgraphs(g)
        spend(_string_bytes(sg, 12), f"subgraphs[{g}].name")
        spend(sg.OperatorsLength(), f"subgraphs[{g}].operators")
        for i in range(spend(sg.TensorsLength(), f"subgraphs[{g}].tensors")):
            t = sg.Tensors(i)
            spend(_string_bytes(t, 10), f"tensor #{i} name")
            if t.Sparsity() is not None or t.VariantTensorsLength():
                raise InvalidModelError(f"invalid .tflite: tensor #{i}: sparse and variant tensors are not supported")


def read_graph(tflite: bytes) -> Graph:
    """Parse and validate a .tflite (the one gate for model bytes); anything malformed raises InvalidModelError
    naming the op, tensor and field at fault. The Graph returned holds the invariants its docstring lists."""
    schema = _schema()
    data = bytes(tflite)
    if not is_tflite(data):
        raise InvalidModelError(f"not a .tflite flatbuffer ({len(data)} bytes): {_file_kind(data)}")
    try:
        _check_unpack_budget(schema, data)
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except InvalidModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - the flatbuffer runtime raises struct/index errors on bad data
        raise InvalidModelError(f"corrupt or truncated .tflite ({len(data)} bytes): {type(exc).__name__}: "
                                f"{exc}") from None
    gate = _Gate(model)
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise InvalidModelError(f".tflite has {len(model.subgraphs or [])} subgraphs; tinyq supports exactly one")
    sg = model.subgraphs[0]
    read = [gate.tensor(i, t) for i, t in enumerate(sg.tensors or [])]
    tensors = [t for t, _ in read]
    variables = {t.index for t, var in read if var}
    inputs = gate.io("inputs", sg.inputs, len(tensors))
    outputs = gate.io("outputs", sg.outputs, len(tensors))
    table, specs = _options_table(), _spec_table()
    ops = tuple(gate.operator(i, o, tensors, table, specs) for i, o in enumerate(sg.operators or []))
    graph = Graph(tuple(tensors), ops, inputs, outputs)
    for op in ops:
        spec = specs.get(op.code)
        if spec is not None:
            gate.op_preconditions(graph, op, spec)
    gate.dataflow(graph, variables)
    return graph
