"""Full-integer int8 post-training quantization with TFLiteConverter (and the float, dynamic-range and
float16 conversions tinyq compares against), every conversion in the converter's worker. The recipe and the
result types, and the check that a .tflite really is int8, live in `qmodel`; they are re-exported here."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from .calibration import ActivationRange, audit_calibration, clip_recorded_ranges, require_usable
from .data import balanced_indices
from .errors import QuantizationError
from .models import check_supported, input_shape, keras_module
from .native import Runtime, Workers, native_quiet, session
from .qmodel import (ActivationType, IODtype, OpInfo, QuantizeConfig, QuantizedModel, TensorQuant,  # noqa: F401
                     WeightGranularity, inspect_tflite)  # OpInfo, TensorQuant: re-exported with the rest


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
    import tensorflow as tf  # heavy optional dependency: loaded only when converting

    keras = keras_module(model)
    batch1 = keras.Input(batch_shape=(1,) + shape, name="input")
    wrapped = keras.Model(batch1, model(batch1, training=False), name=model.name)
    return tf.lite.TFLiteConverter.from_keras_model(wrapped)


def run_converter(converter, what: str) -> bytes:
    """The converter's flatbuffer, its chatter silenced; any failure raises QuantizationError naming `what`."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), native_quiet():  # converter chatter on stdout/stderr
            return bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001 - the converter raises a zoo of types
        raise QuantizationError(f"{what}: TFLiteConverter failed: {exc}") from exc


def convert_float(model, workers: Workers | None = None) -> bytes:
    """The float32 .tflite of the model (batch 1), the baseline for size comparisons; converted in the
    converter's worker."""
    check_supported(model)
    return _in_converter(model, input_shape(model), f"float conversion of model {model.name!r}", _float_from_file,
                         (), workers)


def int8_converter(model, shape: tuple[int, ...], samples: np.ndarray, config: QuantizeConfig):
    """A batch-1 TFLiteConverter set up for full-integer int8 calibrated on `samples` (run it only in the
    converter's worker)."""
    return _int8_settings(_batch1_converter(model, shape), samples, config)


def _int8_settings(converter, samples: np.ndarray, config: QuantizeConfig):
    """`converter` set up for full-integer int8 calibrated on `samples`."""
    import tensorflow as tf  # heavy optional dependency: loaded only when converting

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


def quick_int8(model, samples: np.ndarray, config: QuantizeConfig, step: str,
               workers: Workers | None = None) -> bytes:
    """An int8 .tflite of the model calibrated on `samples` as they are (no selection, no audit), converted in
    the converter's worker; pre-flight's quick conversion."""
    check_supported(model)
    tflite, _ranges = _isolated_int8(model, input_shape(model), np.asarray(samples, np.float32), config, workers,
                                     step)
    return tflite


def _int8(converter, samples: np.ndarray, config: QuantizeConfig, what: str
          ) -> tuple[bytes, tuple[ActivationRange, ...]]:
    """In the converter worker: calibrate and convert (min-max, or percentile-clipped ranges)."""
    converter = _int8_settings(converter, samples, config)
    if config.percentile is None:
        return run_converter(converter, what), ()
    return _percentile_quantize(converter, samples, config, what)


def _load_in_worker(path: str):
    """In the converter worker: the Keras model saved at `path`, or None if this process cannot load it."""
    import tensorflow as tf  # heavy optional dependency: loaded only in the converter's worker

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return tf.keras.models.load_model(path, compile=False)
    except Exception:  # noqa: BLE001 - e.g. custom layers: the caller exports a SavedModel instead
        return None


def _converter_at(path: str, shape: tuple[int, ...]):
    """In the converter worker: a fresh batch-1 TFLiteConverter over the model at `path` (a .keras file, or a
    SavedModel folder `_export_saved_model` wrote), and its name; None if this process cannot load it."""
    import tensorflow as tf  # heavy optional dependency: loaded only in the converter's worker

    if os.path.isdir(path):
        return tf.lite.TFLiteConverter.from_saved_model(path), Path(path).name
    model = _load_in_worker(path)
    return None if model is None else (_batch1_converter(model, shape), model.name)


def _int8_from_file(path: str, shape: tuple[int, ...], samples: np.ndarray, config: QuantizeConfig
                    ) -> tuple[bytes, tuple[ActivationRange, ...]] | None:
    """In the converter worker: _int8 on the model saved at `path`; None if this process cannot load it."""
    loaded = _converter_at(path, shape)
    return None if loaded is None else _int8(loaded[0], samples, config, f"model {loaded[1]!r}")


def _float_from_file(path: str, shape: tuple[int, ...]) -> bytes | None:
    """In the converter worker: the float .tflite of the model saved at `path`; None if it cannot load it."""
    loaded = _converter_at(path, shape)
    return None if loaded is None else run_converter(loaded[0], f"model {loaded[1]!r} (float)")


def _export_saved_model(model, shape: tuple[int, ...], path: str) -> None:
    """Trace the model at batch 1 into a SavedModel folder the converter's worker can load without the model's
    Python classes (a model whose .keras does not load elsewhere: custom layers). TensorFlow's tracing, in
    this process; the converter never runs here."""
    import tensorflow as tf  # heavy optional dependency: the Keras model's own TensorFlow, already loaded

    spec = tf.TensorSpec((1,) + tuple(shape), tf.float32, name="input")
    keras = keras_module(model)
    with contextlib.redirect_stdout(io.StringIO()), native_quiet():
        if hasattr(keras, "export") and hasattr(keras.export, "ExportArchive"):  # Keras 3: tracks its variables
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint("serving_default", lambda x: model(x, training=False), input_signature=[spec])
            archive.write_out(path)
        else:  # Keras 2 models are TensorFlow trackables themselves
            serve = tf.function(lambda x: model(x, training=False), input_signature=[spec])
            tf.saved_model.save(model, path, signatures={"serving_default": serve.get_concrete_function()})


def _in_converter(model, shape: tuple[int, ...], step: str, fn, args: tuple, workers: Workers | None):
    """fn(saved model path, shape, *args) in the converter's worker, the model passed as a .keras file; a model
    that does not survive saving and loading (custom layers) is passed as a SavedModel traced here instead.
    The converter itself never runs in this process."""
    refusals = []
    with tempfile.TemporaryDirectory(prefix="tinyq_convert_") as tmp, session(workers) as w:
        path = os.path.join(tmp, "model.keras")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                model.save(path)
        except Exception as exc:  # noqa: BLE001 - keras raises many types for a model it cannot serialise
            refusals.append(f"saving it as .keras failed: {exc}")
        else:
            done = w.call(Runtime.CONVERTER, step, fn, path, shape, *args, model_bytes=os.path.getsize(path))
            if done is not None:
                return done
            refusals.append("its .keras file does not load in a fresh process")
        path = os.path.join(tmp, model.name if re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", model.name) else "model")
        try:
            _export_saved_model(model, shape, path)
        except Exception as exc:  # noqa: BLE001 - tracing raises many types
            refusals.append(f"exporting it as a SavedModel failed: {exc}")
            raise QuantizationError(f"model {model.name!r}: cannot hand it to the TF converter's worker: "
                                    + "; ".join(refusals)) from exc
        size = sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
        done = w.call(Runtime.CONVERTER, step, fn, path, shape, *args, model_bytes=size)
        if done is None:
            raise QuantizationError(f"model {model.name!r}: the TF converter's worker cannot load it: "
                                    + "; ".join(refusals + ["nor its SavedModel"]))
        return done


def _isolated_int8(model, shape: tuple[int, ...], samples: np.ndarray, config: QuantizeConfig,
                   workers: Workers | None, step: str | None = None) -> tuple[bytes, tuple[ActivationRange, ...]]:
    """_int8 in the converter's worker."""
    return _in_converter(model, shape, step or f"calibration and int8 conversion of model {model.name!r}",
                         _int8_from_file, (samples, config), workers)


def _percentile_quantize(converter, samples: np.ndarray, config: QuantizeConfig, what: str
                         ) -> tuple[bytes, tuple[ActivationRange, ...]]:
    """Calibrate only, clip the recorded ranges to the percentile, then let the converter's own quantizer
    (the one a plain convert() runs after calibrating) quantize with those ranges."""
    import tensorflow as tf  # heavy optional dependency: loaded only when converting
    from tensorflow.lite.python import convert as tf_convert  # the same

    converter._experimental_calibrate_only = True
    calibrated = run_converter(converter, f"{what} (calibration)")
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


COMPARISONS = ("dynamic-range (int8 weights, float activations)", "float16 weights")


def comparison_conversions(model, shape: tuple[int, ...], workers: Workers | None = None
                           ) -> list[tuple[str, bytes]]:
    """Dynamic-range (hybrid) and float16 conversions, labelled as in COMPARISONS, for size and accuracy
    comparison; in the converter's worker."""
    return _in_converter(model, shape, f"comparison conversions of model {model.name!r}", _comparisons_from_file,
                         (), workers)


def _comparisons_from_file(path: str, shape: tuple[int, ...]) -> list[tuple[str, bytes]] | None:
    """In the converter worker: the comparison conversions of the model saved at `path` (None: cannot load)."""
    import tensorflow as tf  # heavy optional dependency: loaded only when converting

    dynamic, fp16 = _converter_at(path, shape), _converter_at(path, shape)
    if dynamic is None or fp16 is None:
        return None
    name = dynamic[1]
    dynamic, fp16 = dynamic[0], fp16[0]
    dynamic.optimizations = [tf.lite.Optimize.DEFAULT]
    fp16.optimizations = [tf.lite.Optimize.DEFAULT]
    fp16.target_spec.supported_types = [tf.float16]
    return list(zip(COMPARISONS, (run_converter(dynamic, f"{name} dynamic-range"),
                                  run_converter(fp16, f"{name} float16"))))
