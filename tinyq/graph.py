"""A typed view of a .tflite flatbuffer: tensors with quantization and constant data, operators with options."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from .errors import UnsupportedOpError


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


def _conv(o) -> ConvOptions:
    return ConvOptions(Padding(o.padding), o.strideH, o.strideW, o.dilationHFactor, o.dilationWFactor,
                       Activation(o.fusedActivationFunction))


def _depthwise(o) -> ConvOptions:
    return ConvOptions(Padding(o.padding), o.strideH, o.strideW, o.dilationHFactor, o.dilationWFactor,
                       Activation(o.fusedActivationFunction), o.depthMultiplier)


def _pool(o) -> PoolOptions:
    return PoolOptions(Padding(o.padding), o.strideH, o.strideW, o.filterHeight, o.filterWidth,
                       Activation(o.fusedActivationFunction))


def _fc(o) -> FullyConnectedOptions:
    return FullyConnectedOptions(Activation(o.fusedActivationFunction), bool(o.keepNumDims), o.weightsFormat != 0)


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
        op.ADD: lambda o: AddOptions(Activation(o.fusedActivationFunction)),
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
    """The first subgraph of a model: tensors, operators in execution order, graph inputs and outputs."""

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


def read_graph(tflite: bytes) -> Graph:
    """Parse a .tflite; a corrupt or truncated buffer raises UnsupportedOpError saying so."""
    schema = _schema()
    data = bytes(tflite)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UnsupportedOpError(f"not a .tflite flatbuffer: {len(data)} bytes, file identifier {data[4:8]!r} "
                                 f"(expected b'TFL3')")
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as exc:  # noqa: BLE001 - the flatbuffer runtime raises struct/index errors on bad data
        raise UnsupportedOpError(f"corrupt or truncated .tflite ({len(data)} bytes): {exc}") from exc
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise UnsupportedOpError(f".tflite has {len(model.subgraphs or [])} subgraphs; tinyq supports exactly one")
    sg = model.subgraphs[0]
    tensors = []
    for i, t in enumerate(sg.tensors or []):
        dtype = _DTYPES.get(t.type, f"type{t.type}")
        q = t.quantization
        scales = tuple(float(s) for s in (q.scale if q is not None and q.scale is not None else []))
        zps = tuple(int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else []))
        qdim = int(q.quantizedDimension) if q is not None else 0
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        buf = model.buffers[t.buffer] if t.buffer < len(model.buffers or []) else None
        const = None
        if buf is not None and buf.data is not None and len(buf.data) > 0:
            raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
            const = np.frombuffer(raw, dtype=_NUMPY.get(dtype, np.uint8)).reshape(shape)
        elif buf is not None and getattr(buf, "offset", 0):
            raise UnsupportedOpError(f"tensor {t.name!r}: data stored outside the flatbuffer is not supported")
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        tensors.append(Tensor(i, name, shape, dtype, scales, zps, qdim, const))
    table = _options_table()
    ops = []
    for i, o in enumerate(sg.operators or []):
        oc = model.operatorCodes[o.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        reader = table.get(code)
        options = reader(o.builtinOptions) if reader is not None and o.builtinOptions is not None else (
            NoOptions() if reader is not None else o.builtinOptions)
        ops.append(Operator(i, code, op_name(code), int(oc.version), tuple(int(x) for x in o.inputs),
                            tuple(int(x) for x in o.outputs), options))
    return Graph(tuple(tensors), tuple(ops), tuple(int(x) for x in sg.inputs), tuple(int(x) for x in sg.outputs))
