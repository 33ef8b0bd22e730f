"""Full-integer int8 post-training quantization with TFLiteConverter, and the check that it really is int8."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

from .calibration import ActivationRange, CalibrationAudit, audit_calibration, clip_recorded_ranges, require_usable
from .data import balanced_indices
from .errors import NativeCrash, QuantizationError
from .models import check_supported, input_shape
from .native import Runtime, Workers, native_quiet, session


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
    """The int8 .tflite flatbuffer and the facts firmware needs about it."""

    name: str
    tflite: bytes
    ops: tuple[OpInfo, ...]
    input: TensorQuant
    output: TensorQuant
    config: QuantizeConfig
    calibration_indices: tuple[int, ...] = field(default=(), repr=False)
    audit: CalibrationAudit | None = field(default=None, repr=False)
    ranges: tuple[ActivationRange, ...] = field(default=(), repr=False)  # set by percentile calibration

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.tflite).hexdigest()

    @property
    def op_names(self) -> tuple[str, ...]:
        """Distinct op names in first-use order."""
        return tuple(dict.fromkeys(op.name for op in self.ops))


def select_calibration(images: np.ndarray, labels: np.ndarray | None, config: QuantizeConfig) -> np.ndarray:
    """Indices of the calibration samples: class-balanced when labels are given and asked for, else the first N."""
    n = min(config.num_calibration_samples, len(images))
    if labels is not None and config.balanced:
        if len(labels) != len(images):
            raise QuantizationError(f"calibration labels: {len(labels)} labels for {len(images)} images")
        return balanced_indices(labels, n, config.seed)
    return np.arange(n)


def check_calibration(images: np.ndarray, shape: tuple[int, ...], config: QuantizeConfig) -> np.ndarray:
    """Reject empty, non-float, non-finite, wrongly shaped or wrongly scaled calibration data; returns float32."""
    arr = np.asarray(images)
    audit = audit_calibration(arr, None, config.input_range, 0)
    if arr.ndim and arr.shape[0] and tuple(arr.shape[1:]) != shape:
        raise QuantizationError(
            f"calibration data has per-sample shape {tuple(arr.shape[1:])}, model input expects {shape}")
    require_usable(audit)
    return arr.astype(np.float32)


def _batch1_converter(model, shape: tuple[int, ...]):
    """A TFLiteConverter over the model with its batch fixed at 1, so no SHAPE/STRIDED_SLICE/PACK ops appear."""
    import tensorflow as tf

    from .models import keras_module

    keras = keras_module(model)
    batch1 = keras.Input(batch_shape=(1,) + shape, name="input")
    wrapped = keras.Model(batch1, model(batch1, training=False), name=model.name)
    return tf.lite.TFLiteConverter.from_keras_model(wrapped)


def _convert(converter, what: str) -> bytes:
    try:
        with contextlib.redirect_stdout(io.StringIO()), native_quiet():  # converter chatter on stdout/stderr
            return bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001 - the converter raises a zoo of types
        raise QuantizationError(f"{what}: TFLiteConverter failed: {exc}") from exc


def _float(model) -> bytes:
    return _convert(_batch1_converter(model, input_shape(model)), f"model {model.name!r} (float)")


def convert_float(model, workers: Workers | None = None) -> bytes:
    """The float32 .tflite of the model (batch 1), the baseline for size comparisons; converted in the
    converter's worker."""
    check_supported(model)
    return _in_converter(model, f"float conversion of model {model.name!r}", _float_from_file, (), workers,
                         lambda: _float(model))


def _converter(model, shape: tuple[int, ...], samples: np.ndarray, config: QuantizeConfig):
    """A batch-1 TFLiteConverter set up for full-integer int8 calibrated on `samples`."""
    import tensorflow as tf

    converter = _batch1_converter(model, shape)

    def representative():
        for sample in samples:
            yield [sample[np.newaxis]]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if config.activations is ActivationType.INT16:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if config.io_dtype is not IODtype.FLOAT32:
        converter.inference_input_type = converter.inference_output_type = tf.as_dtype(config.io_dtype.value)
    if config.granularity is WeightGranularity.PER_TENSOR:
        converter._experimental_disable_per_channel = True
    return converter


def quantize(model, calibration_images: np.ndarray, config: QuantizeConfig = QuantizeConfig(),
             labels: np.ndarray | None = None, name: str | None = None, workers: Workers | None = None
             ) -> QuantizedModel:
    """Convert a Keras model to a full-integer .tflite calibrated on preprocessed float samples.

    The chosen samples are audited (with `labels`: class coverage and balance); an audit error raises.
    Calibration and conversion run in the converter's worker process (a converter crash raises NativeCrash).
    """
    check_supported(model)
    shape = input_shape(model)
    samples = check_calibration(calibration_images, shape, config)
    idx = select_calibration(samples, labels, config)
    classes = int(np.prod(model.outputs[0].shape[1:]))
    audit = require_usable(audit_calibration(samples[idx], None if labels is None else np.asarray(labels)[idx],
                                             config.input_range, classes, "calibration samples"))
    tflite, ranges = _isolated_int8(model, shape, samples[idx], config, workers)
    q = inspect_tflite(tflite, name or model.name, config, tuple(int(i) for i in idx), workers)
    return dataclasses.replace(q, audit=audit, ranges=ranges)


def _int8(model, shape: tuple[int, ...], samples: np.ndarray, config: QuantizeConfig
          ) -> tuple[bytes, tuple[ActivationRange, ...]]:
    """Calibrate and convert (min-max, or percentile-clipped ranges) in this process."""
    converter = _converter(model, shape, samples, config)
    if config.percentile is None:
        return _convert(converter, f"model {model.name!r}"), ()
    return _percentile_quantize(converter, samples, config, f"model {model.name!r}")


def _load_in_worker(path: str):
    """In the converter worker: the Keras model saved at `path`, or None if this process cannot load it."""
    import tensorflow as tf

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return tf.keras.models.load_model(path, compile=False)
    except Exception:  # noqa: BLE001 - e.g. custom layers: the caller converts in its own process
        return None


def _int8_from_file(path: str, shape: tuple[int, ...], samples: np.ndarray, config: QuantizeConfig
                    ) -> tuple[bytes, tuple[ActivationRange, ...]] | None:
    """In the converter worker: _int8 on the model saved at `path`; None if this process cannot load it."""
    model = _load_in_worker(path)
    return None if model is None else _int8(model, shape, samples, config)


def _float_from_file(path: str) -> bytes | None:
    """In the converter worker: the float .tflite of the model saved at `path`; None if it cannot load it."""
    model = _load_in_worker(path)
    return None if model is None else _float(model)


def _in_converter(model, step: str, fn, args: tuple, workers: Workers | None, here):
    """fn(saved model path, *args) in the converter's worker; a model that does not survive saving and
    loading (custom layers) runs `here()` in this process instead."""
    with tempfile.TemporaryDirectory(prefix="tinyq_convert_") as tmp:
        path = os.path.join(tmp, "model.keras")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                model.save(path)
        except Exception:  # noqa: BLE001 - keras raises many types for a model it cannot serialise
            path = None
        if path is not None:
            with session(workers) as w:
                done = w.call(Runtime.CONVERTER, step, fn, path, *args)
            if done is not None:
                return done
    return here()


def _isolated_int8(model, shape: tuple[int, ...], samples: np.ndarray, config: QuantizeConfig,
                   workers: Workers | None) -> tuple[bytes, tuple[ActivationRange, ...]]:
    """_int8 in the converter's worker, the model passed as a saved .keras file."""
    return _in_converter(model, f"calibration and int8 conversion of model {model.name!r}", _int8_from_file,
                         (shape, samples, config), workers, lambda: _int8(model, shape, samples, config))


def _percentile_quantize(converter, samples: np.ndarray, config: QuantizeConfig, what: str
                         ) -> tuple[bytes, tuple[ActivationRange, ...]]:
    """Calibrate only, clip the recorded ranges to the percentile, then let the converter's own quantizer
    (the one a plain convert() runs after calibrating) quantize with those ranges."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tf_convert

    converter._experimental_calibrate_only = True
    calibrated = _convert(converter, f"{what} (calibration)")
    clipped, ranges = clip_recorded_ranges(calibrated, samples, config.percentile)
    io_type = tf.as_dtype(config.io_dtype.value)
    try:
        with contextlib.redirect_stdout(io.StringIO()), native_quiet():
            tflite = tf_convert.mlir_quantize(
                clipped, disable_per_channel=config.granularity is WeightGranularity.PER_TENSOR,
                input_data_type=io_type, output_data_type=io_type)
    except Exception as exc:  # noqa: BLE001 - the quantizer raises a zoo of types
        raise QuantizationError(f"{what}: quantizing with percentile ranges failed: {exc}") from exc
    return bytes(tflite), ranges


def _litert_details(tflite: bytes) -> tuple[list[dict], list[dict], dict, dict]:
    """In the LiteRT worker: tensor details, op details, input and output details of a .tflite."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite)
    ops = interp._get_ops_details()  # noqa: SLF001 - the only public-enough view of the op list
    return interp.get_tensor_details(), ops, interp.get_input_details()[0], interp.get_output_details()[0]


def inspect_tflite(tflite: bytes, name: str, config: QuantizeConfig = QuantizeConfig(),
                   calibration_indices: tuple[int, ...] = (), workers: Workers | None = None) -> QuantizedModel:
    """Check a .tflite is full-integer and describe it; raises naming every float or hybrid op and tensor.
    The reader's gate runs first: a malformed file raises InvalidModelError before any runtime loads it."""
    from .engine import read_graph

    graph = read_graph(tflite)
    with session(workers) as w:
        try:
            details, ops, input_detail, output_detail = w.call(Runtime.LITERT, f"loading model {name!r}",
                                                               _litert_details, tflite)
        except NativeCrash:
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
                if dtype not in _allowed_dtypes(op["op_name"], role, pos, config):
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
    return QuantizedModel(name, tflite, op_infos, inp, out, config, calibration_indices)


_IO_OPS = {"QUANTIZE", "DEQUANTIZE"}


_BIAS_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
_INT32_OPERAND_OPS = {"RESHAPE", "MEAN", "PAD", "TRANSPOSE", "SUM", "REDUCE_MAX", "STRIDED_SLICE", "CONCATENATION",
                      "PADV2", "EXPAND_DIMS", "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "TILE"}


def _allowed_dtypes(op_name: str, role: str, position: int, config: QuantizeConfig) -> set[str]:
    """dtypes a full-integer graph may have at this operand: activation-typed data (int8, or int16 in 16x8
    mode), int8 weights, int32 biases (int64 in 16x8 mode) and int32 shape operands."""
    act = config.activations.value
    if op_name in _IO_OPS and config.io_dtype is IODtype.FLOAT32:
        return {act, "float32"}
    if role == "input" and op_name in _BIAS_OPS and position == 2:
        return {"int32"} if config.activations is ActivationType.INT8 else {"int32", "int64"}
    if role == "input" and op_name in _BIAS_OPS and position == 1:
        return {"int8"}
    if role == "input" and op_name == "TRANSPOSE_CONV":  # output shape, weights, input, bias
        return ({"int32"}, {"int8"}, {act}, {"int32"} if act == "int8" else {"int32", "int64"})[min(position, 3)]
    if role == "input" and op_name in _INT32_OPERAND_OPS and position >= 1:
        return {act, "int32"}
    return {act}


def _tensor_quant(detail: dict) -> TensorQuant:
    scale, zero_point = detail["quantization"]
    return TensorQuant(detail["name"], tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name,
                       float(scale), int(zero_point))
