"""What a quantized model is: the recipe (QuantizeConfig and its enums), the description of a full-integer
.tflite (QuantizedModel, its input/output quantization and ops), and the check that a .tflite really is one.
Below both `models` (which checks a user's .tflite with it) and `quantize` (which produces one)."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

import numpy as np

from .calibration import ActivationRange, CalibrationAudit
from .errors import NativeCrash, NativeTimeout, QuantizationError
from .engine import Graph, read_graph
from .engine.ops.tflm import operand_dtypes
from .engine.schema import op_code
from .native import Runtime, Workers, session


class WeightGranularity(enum.Enum):
    """Weight quantization: one scale per output channel (TFLite default) or one per tensor."""

    PER_CHANNEL = "per_channel"
    PER_TENSOR = "per_tensor"


class ActivationType(enum.Enum):
    """Activation type: int8, or TFLite's 16x8 mode (int16 activations, int8 weights, int64 biases)."""

    INT8 = "int8"
    INT16 = "int16"


class IODtype(enum.Enum):
    """Type of the model's input and output tensors: the activation type, or float32 with (de)quantize ops."""

    INT8 = "int8"
    INT16 = "int16"
    FLOAT32 = "float32"


@dataclass(frozen=True)
class QuantizeConfig:
    """How to calibrate and convert; `input_range` is the value range the model was trained on."""

    num_calibration_samples: int = 300
    balanced: bool = True
    granularity: WeightGranularity = WeightGranularity.PER_CHANNEL
    io_dtype: IODtype = IODtype.INT8
    input_range: tuple[float, float] = (0.0, 1.0)
    seed: int = 0
    activations: ActivationType = ActivationType.INT8
    percentile: float | None = None  # None: min-max ranges (the converter's own); else clip to this percentile

    def __post_init__(self) -> None:
        if self.num_calibration_samples < 1:
            raise QuantizationError(
                f"num_calibration_samples must be >= 1, got {self.num_calibration_samples}")
        if not isinstance(self.granularity, WeightGranularity):
            raise QuantizationError(f"granularity must be a WeightGranularity, got {self.granularity!r}")
        if not isinstance(self.io_dtype, IODtype):
            raise QuantizationError(f"io_dtype must be an IODtype, got {self.io_dtype!r}")
        lo, hi = self.input_range
        if not lo < hi:
            raise QuantizationError(f"input_range must be (low, high) with low < high, got {self.input_range}")
        if not isinstance(self.activations, ActivationType):
            raise QuantizationError(f"activations must be an ActivationType, got {self.activations!r}")
        if self.io_dtype is not IODtype.FLOAT32 and self.io_dtype.value != self.activations.value:
            raise QuantizationError(f"io_dtype {self.io_dtype.value} does not match {self.activations.value} "
                                    f"activations; use IODtype.{self.activations.name} or IODtype.FLOAT32")
        if self.percentile is not None:
            if not 50.0 < self.percentile <= 100.0:
                raise QuantizationError(f"percentile must be in (50, 100], got {self.percentile}")
            if self.activations is not ActivationType.INT8:
                raise QuantizationError("percentile calibration needs int8 activations: the converter's 16x8 "
                                        "mode calibrates and quantizes in one step, with min-max")

    @property
    def calibration_method(self) -> str:
        """'min-max' or e.g. 'percentile 99.9'."""
        return "min-max" if self.percentile is None else f"percentile {self.percentile:g}"


@dataclass(frozen=True)
class TensorQuant:
    """Shape, dtype and affine quantization of a model input or output (scale/zero point of index 0)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int


@dataclass(frozen=True)
class OpInfo:
    """A builtin op of the converted graph, with its version."""

    name: str
    version: int


@dataclass(frozen=True)
class QuantizedModel:
    """The int8 .tflite flatbuffer, the checked Graph the reader made of it (read once: every later stage uses it
    instead of the bytes), and the facts firmware needs about it."""

    name: str
    tflite: bytes
    ops: tuple[OpInfo, ...]
    input: TensorQuant
    output: TensorQuant
    config: QuantizeConfig
    graph: Graph = field(compare=False, repr=False)
    calibration_indices: tuple[int, ...] = field(default=(), repr=False)
    audit: CalibrationAudit | None = field(default=None, repr=False)
    ranges: tuple[ActivationRange, ...] = field(default=(), repr=False)  # set by percentile calibration

    def __post_init__(self) -> None:
        if self.graph.source_sha256 != self.sha256:
            raise ValueError(f"model {self.name!r}: its Graph was read from other bytes than its .tflite (replace "
                             f"the bytes through inspect_tflite, which reads them)")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.tflite).hexdigest()

    @property
    def op_names(self) -> tuple[str, ...]:
        """Distinct op names in first-use order."""
        return tuple(dict.fromkeys(op.name for op in self.ops))


def _litert_details(tflite: bytes) -> tuple[list[dict], list[dict], dict, dict]:
    """In the LiteRT worker: tensor details, op details, input and output details of a .tflite."""
    from ai_edge_litert.interpreter import Interpreter  # heavy native runtime: only in LiteRT's worker

    interp = Interpreter(model_content=tflite)
    ops = interp._get_ops_details()  # noqa: SLF001 - the only public-enough view of the op list
    return interp.get_tensor_details(), ops, interp.get_input_details()[0], interp.get_output_details()[0]


def inspect_tflite(tflite: bytes, name: str, config: QuantizeConfig = QuantizeConfig(),
                   calibration_indices: tuple[int, ...] = (), workers: Workers | None = None,
                   graph: Graph | None = None) -> QuantizedModel:
    """Check a .tflite is full-integer and describe it; raises naming every float or hybrid op and tensor.
    The reader's gate runs first (unless the caller passes the Graph it already read from these bytes): a
    malformed file raises InvalidModelError before any runtime loads it."""
    graph = read_graph(tflite) if graph is None else graph
    with session(workers) as w:
        try:
            details, ops, input_detail, output_detail = w.call(Runtime.LITERT, f"loading model {name!r}",
                                                               _litert_details, tflite)
        except (NativeCrash, NativeTimeout):
            raise
        except Exception as exc:  # noqa: BLE001
            raise QuantizationError(f"model {name!r}: LiteRT cannot load the .tflite: {exc}") from exc
    tensors = {t["index"]: t for t in details}
    problems = []
    for op in ops:
        bad = []
        for role, ids in (("input", op["inputs"]), ("output", op["outputs"])):
            for pos, tid in enumerate(ids):
                if tid < 0:
                    continue
                t = tensors[tid]
                dtype = np.dtype(t["dtype"]).name
                if dtype not in operand_dtypes(op_code(op["op_name"]), role, pos, config.activations.value,
                                               config.io_dtype is IODtype.FLOAT32):
                    bad.append(f"{role} {t['name']!r} is {dtype}")
        if bad:
            problems.append(f"op #{op['index']} {op['op_name']}: " + ", ".join(bad))
    if problems:
        kind = ("int8 (allowed: int8 activations and weights, int32 biases and shape operands)"
                if config.activations is ActivationType.INT8 else
                "16x8 (allowed: int16 activations, int8 weights, int32/int64 biases, int32 shape operands)")
        raise QuantizationError(f"model {name!r} is not full-integer {kind}: " + "; ".join(problems))
    inp = _tensor_quant(input_detail)
    out = _tensor_quant(output_detail)
    op_infos = tuple(OpInfo(op.name, op.version) for op in graph.operators)
    return QuantizedModel(name, tflite, op_infos, inp, out, config, graph, calibration_indices)


def _tensor_quant(detail: dict) -> TensorQuant:
    scale, zero_point = detail["quantization"]
    return TensorQuant(detail["name"], tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name,
                       float(scale), int(zero_point))
