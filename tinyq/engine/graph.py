"""The typed view of a .tflite model the engine works on: tensors with quantization and constant data, operators
with typed options, the graph with the invariants the reader (engine/reader.py) guarantees."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

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



DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 9: "int8", 7: "int16", 6: "bool"}
NUMPY_TYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "uint8": np.uint8, "int64": np.int64,
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
        return self.size * np.dtype(NUMPY_TYPES.get(self.dtype, np.uint8)).itemsize

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


MAX_WINDOW = 1 << 16  # largest stride, dilation or filter size the reader accepts
MAX_DIM = 1 << 30  # largest dimension; with MAX_WINDOW, kernel index math stays inside int32
MAX_TENSOR_BYTES = (1 << 31) - 1
MAX_RANK = 8
SCALE_RANGE = (1e-30, 1e30)  # a quantization scale outside this cannot come from real data
INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int32": (-(1 << 31), (1 << 31) - 1),
               "int64": (-(1 << 63), (1 << 63) - 1)}
WINDOW_FIELD_PREFIXES = ("stride", "dilation", "filter")


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
    - ops with an OpSpec in the op table (engine/ops) have their operand counts, ranks, dtypes, options class, enum values and shape
      relations checked (output sizes follow from padding, strides, dilations and filters); every options field
      named stride*, dilation*, filter* is in [1, MAX_WINDOW].
    """

    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    source_sha256: str = ""  # of the bytes the reader read this graph from

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

