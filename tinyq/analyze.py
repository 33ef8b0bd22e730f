"""Quantization analysis: sweeps over calibration and quantization settings, per-layer and weight error,
confusion matrices, and the calibration audit, gathered into one self-contained report.html."""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from .calibration import CalibrationAudit
from .data import NUM_CLASSES, Task, default_preprocessing, infer_task, preprocess, reference_range
from .errors import NativeCrash, QuantizationError
from .engine import Graph, op_macs, read_graph
from .models import input_shape, keras_module
from .native import Runtime, session
from .progress import counted
from .quantize import (COMPARISONS, ActivationType, IODtype, QuantizeConfig, QuantizedModel, WeightGranularity,
                       comparison_conversions, quantize)
from .runtimes import run_litert, run_tflm, tflm_arena_bytes, tflm_problem
from .verify import StageAgreement, VerifyResult, accuracy, output_error, quantize_input, stage_agreement, verify


@dataclasses.dataclass(frozen=True)
class WeightError:
    """Round-trip error of one layer's kernel through symmetric int8 quantization."""
    layer: str
    per_channel_mse: float
    per_tensor_mse: float


def weight_roundtrip(kernel: np.ndarray, per_channel: bool) -> np.ndarray:
    """Quantize a kernel symmetrically to int8 (scale = max|w|/127, last axis = channels) and dequantize it back."""
    w = np.asarray(kernel, dtype=np.float64)
    axes = tuple(range(w.ndim - 1)) if per_channel else None
    scale = np.max(np.abs(w), axis=axes, keepdims=per_channel) / 127.0
    scale = np.where(scale == 0, 1.0, scale)
    return np.clip(np.round(w / scale), -127, 127) * scale


def weight_errors(model) -> tuple[WeightError, ...]:
    """Weight round-trip MSE per layer with a kernel, per-channel and per-tensor, in model order."""
    out = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        w = np.asarray(kernel.numpy(), dtype=np.float64)
        out.append(WeightError(layer.name, float(np.mean((weight_roundtrip(w, True) - w) ** 2)),
                               float(np.mean((weight_roundtrip(w, False) - w) ** 2))))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class SweepRow:
    """One quantization setting measured on the test set: accuracy, size, TFLM arena, whether TFLM runs it.

    `runtime` says where the accuracy was measured (TFLM when it runs the model); `note` says why TFLM
    does not run it, or why the setting could not be converted (then accuracy is None).
    """

    label: str
    accuracy: float | None
    model_bytes: int | None
    tflm_arena_bytes: int | None
    tflm_runs: bool
    runtime: str
    note: str = ""


def default_sweep() -> tuple[tuple[str, object], ...]:
    """Calibration sample counts, class-balanced vs first-N, min-max vs percentile ranges, per-channel vs
    per-tensor weights, int8 vs 16x8 activations."""
    rows = [(f"int8, {n} balanced samples", QuantizeConfig(num_calibration_samples=n)) for n in (1, 10, 100, 1000)]
    rows.append(("int8, 100 first-N samples", QuantizeConfig(num_calibration_samples=100, balanced=False)))
    rows += [(f"int8, percentile {p:g} ranges", QuantizeConfig(percentile=p)) for p in (99.9, 99.99)]
    rows.append(("int8, per-tensor weights", QuantizeConfig(granularity=WeightGranularity.PER_TENSOR)))
    rows.append(("int8, per-tensor weights, percentile 99.99",
                 QuantizeConfig(granularity=WeightGranularity.PER_TENSOR, percentile=99.99)))
    rows.append(("16x8 (int16 activations)", QuantizeConfig(activations=ActivationType.INT16, io_dtype=IODtype.INT16)))
    return tuple(rows)


def weight_storage(tflite: bytes) -> str:
    """How the model stores its weights (constant tensors of 2 or more dimensions), e.g. '3 int8, 1 float32'.

    Dynamic-range conversion leaves small tensors (under 1024 elements) float, so it can quantize none at all.
    """
    graph = read_graph(tflite)
    counts: dict[str, int] = {}
    for t in graph.tensors:
        if t.data is not None and len(t.shape) >= 2:
            counts[t.dtype] = counts.get(t.dtype, 0) + 1
    return ", ".join(f"{n} {dtype}" for dtype, n in sorted(counts.items()))


def _measure(label: str, tflite: bytes, inputs: np.ndarray, labels, fallback: str,
             describe: bool = False, workers=None) -> SweepRow:
    """The sweep metric (accuracy against integer labels; else SQNR in dB against float outputs given as
    `labels`) in TFLM with its arena when TFLM runs the model; else in LiteRT (`fallback`), noting why.
    With `describe`, the note also says how the weights are stored."""
    notes = [f"weights: {weight_storage(tflite)}"] if describe else []
    problem = tflm_problem(tflite, inputs[0], workers)
    if problem is None:
        return SweepRow(label, _sweep_metric(tflite, run_tflm(tflite, inputs, workers), labels), len(tflite),
                        tflm_arena_bytes(tflite, inputs[0], workers), True, "TFLM", "; ".join(notes))
    return SweepRow(label, _sweep_metric(tflite, run_litert(tflite, inputs, True, workers), labels), len(tflite),
                    None, False, fallback, "; ".join(notes + [f"TFLM: {problem}"]))


def _sweep_metric(tflite: bytes, outputs: np.ndarray, reference: np.ndarray) -> float:
    """Accuracy when `reference` holds integer labels; else SQNR (dB) of the (dequantized) outputs against
    the float outputs in `reference`."""
    reference = np.asarray(reference)
    if np.issubdtype(reference.dtype, np.integer):
        return accuracy(outputs, reference)
    y = np.asarray(outputs)
    if np.issubdtype(y.dtype, np.integer):
        graph = read_graph(tflite)
        out = graph.tensors[graph.outputs[0]]
        y = (y.astype(np.float64) - out.zero_points[0]) * out.scales[0]
    return output_error(reference, y).sqnr_db


def sweep(model, train_x: np.ndarray, train_y: np.ndarray | None, test_x: np.ndarray, test_y: np.ndarray,
          configs=None, comparisons: bool = True, preprocessing=None, input_range=None, tick=None,
          workers=None) -> tuple[SweepRow, ...]:
    """Quantize under each config and measure over the test set in TFLM (LiteRT where TFLM lacks a kernel);
    optionally add dynamic-range and float16 conversions, which TFLM cannot run, for comparison. One worker
    per native runtime serves the whole sweep; a setting whose conversion crashes gets a row saying so.

    The metric is accuracy when `test_y` holds integer labels; else give the Keras float outputs as
    `test_y` (and `train_y` None) and the metric is the SQNR of the int8 outputs against them."""
    with session(workers) as w:
        return _sweep(model, train_x, train_y, test_x, test_y, configs, comparisons, preprocessing, input_range,
                      w, tick)


def _sweep(model, train_x, train_y, test_x, test_y, configs, comparisons: bool, preprocessing, input_range,
           workers, tick=None) -> tuple[SweepRow, ...]:
    shape = input_shape(model)
    calib = preprocess(train_x, shape, preprocessing)
    x = preprocess(test_x, shape, preprocessing)
    labels = np.asarray(test_y)
    if np.issubdtype(labels.dtype, np.integer):
        labels = labels.astype(np.int64)
    rows = []
    tick = tick or (lambda _done: None)
    for label, config in (configs or default_sweep()):
        if input_range is not None:
            config = dataclasses.replace(config, input_range=input_range)
        try:
            q = quantize(model, calib, config, labels=train_y, workers=workers)
        except (QuantizationError, NativeCrash) as exc:
            rows.append(SweepRow(label, None, None, None, False, "-", str(exc)))
        else:
            rows.append(_measure(label, q.tflite, quantize_input(x, q.input), labels, "LiteRT reference kernels",
                                 workers=workers))
        tick(len(rows))
    if comparisons:
        for label, tflite in comparison_conversions(model, shape, workers):
            rows.append(_measure(label, tflite, x, labels, "LiteRT (comparison only)", describe=True,
                                 workers=workers))
            tick(len(rows))
    return tuple(rows)


@dataclasses.dataclass(frozen=True)
class LayerError:
    """Float activation vs dequantized int8 activation of one layer over a batch of test images."""

    layer: str
    op: str
    rmse: float
    max_abs: float
    sqnr_db: float


def _dequantized_outputs(tflite: bytes, xq: np.ndarray, tensors: list[tuple[int, float, int]]) -> list[np.ndarray]:
    """In the LiteRT worker: each listed tensor (index, scale, zero point) dequantized, per input, with the
    reference kernels keeping every tensor."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType  # heavy native runtime: LiteRT's worker only

    interp = Interpreter(model_content=tflite, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                         experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    index = interp.get_input_details()[0]["index"]
    out = [np.empty((len(xq), int(np.prod(interp.get_tensor(t).shape))), np.float64) for t, _, _ in tensors]
    for i, sample in enumerate(xq):
        interp.set_tensor(index, sample[np.newaxis])
        interp.invoke()
        for k, (t, scale, zero) in enumerate(tensors):
            out[k][i] = (interp.get_tensor(t).astype(np.float64).reshape(-1) - zero) * scale
    return out


def layer_errors(model, quantized, images: np.ndarray, preprocessing=None, workers=None) -> tuple[LayerError, ...]:
    """Per-layer error of the int8 model (LiteRT reference kernels, every tensor kept, in LiteRT's worker)
    against Keras float.

    An op is matched to the Keras layer its output tensor is named after; ops with no such layer are skipped.
    """
    graph = quantized.graph
    # A layer whose activation TFLite runs as a separate op (softmax) has no fused tensor to compare with.
    layer_names = {layer.name for layer in model.layers
                   if getattr(getattr(layer, "activation", None), "__name__", "linear") in ("linear", "relu", "relu6")}
    pairs = [(op, graph.layer(op.outputs[0])) for op in graph.operators
             if graph.layer(op.outputs[0]) in layer_names]
    out_op = next(op for op in graph.operators if graph.outputs[0] in op.outputs)
    if all(op is not out_op for op, _ in pairs):
        pairs.append((out_op, None))
    if not pairs:
        raise QuantizationError(f"model {model.name!r}: no op output could be matched to a Keras layer")
    x = preprocess(images, input_shape(model), preprocessing)
    probe = keras_module(model).Model(model.inputs, [model.get_layer(name).output if name else model.outputs[0]
                                          for _, name in pairs])
    floats = probe.predict(x, batch_size=len(x), verbose=0)
    floats = floats if isinstance(floats, list) else [floats]
    xq = quantize_input(x, quantized.input)
    tensors = [(op.outputs[0], graph.tensors[op.outputs[0]].scales[0], graph.tensors[op.outputs[0]].zero_points[0])
               for op, _ in pairs]
    with session(workers) as w:
        ints = w.call(Runtime.LITERT, f"LiteRT per-layer outputs of {len(xq)} inputs", _dequantized_outputs,
                      quantized.tflite, xq, tensors)
    rows = []
    for (op, name), f, dq in zip(pairs, floats, ints):
        f = np.asarray(f, np.float64).reshape(len(x), -1)
        err = f - dq
        noise = float(np.sum(err ** 2))
        sqnr = float("inf") if noise == 0 else float(10.0 * np.log10(float(np.sum(f ** 2)) / noise))
        rows.append(LayerError(name or f"model output ({model.layers[-1].name})", op.name, float(np.sqrt(np.mean(err ** 2))), float(np.max(np.abs(err))), sqnr))
    return tuple(rows)


def most_sensitive(errors: tuple[LayerError, ...], count: int = 3) -> tuple[LayerError, ...]:
    """The layers with the lowest SQNR: where int8 loses the most signal."""
    return tuple(sorted(errors, key=lambda e: e.sqnr_db)[:count])


@dataclasses.dataclass(frozen=True)
class OpRow:
    """One op of the int8 graph for the memory and op summary."""

    index: int
    op: str
    layer: str
    output_shape: tuple[int, ...]
    output_bytes: int
    constant_bytes: int
    macs: int


def op_summary(graph: Graph) -> tuple[OpRow, ...]:
    """Each op in execution order with its output size, constant (flash) bytes and multiply-accumulates."""
    rows = []
    for op in graph.operators:
        out = graph.tensors[op.outputs[0]]
        consts = sum(graph.tensors[i].nbytes for i in op.inputs if i >= 0 and graph.tensors[i].data is not None)
        rows.append(OpRow(op.index, op.name, graph.layer(op.outputs[0]), out.shape, out.nbytes, consts,
                          op_macs(graph, op)))
    return tuple(rows)


@dataclasses.dataclass(frozen=True)
class Analysis:
    """Everything `tinyq analyze` (and `tinyq demo`) measured for report.html."""

    quantized: QuantizedModel
    verified: VerifyResult
    stages: tuple[StageAgreement, ...]
    ops: tuple[OpRow, ...]
    sweep: tuple[SweepRow, ...]
    sweep_seconds: float
    layers: tuple[LayerError, ...]
    weights: tuple[WeightError, ...]
    audit: CalibrationAudit
    confusion_float: np.ndarray | None  # None unless the task is classification
    confusion_int8: np.ndarray | None
    task: str = "classification"
    metric_name: str = "accuracy"  # of the verified stages; the sweep's is `sweep_metric_name`
    sweep_metric_name: str = "accuracy"

    @property
    def float_accuracy(self) -> float:
        return self.verified.keras_float

    @property
    def int8_accuracy(self) -> float:
        return self.verified.tflm_int8

    @property
    def layers_sorted(self) -> tuple[LayerError, ...]:
        """Layers from the most to the least sensitive (lowest SQNR first)."""
        return most_sensitive(self.layers, len(self.layers))


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs."""
    m = np.zeros((classes, classes), np.int64)
    np.add.at(m, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return m


def analyze(model, dataset, quantized=None, verified=None, layer_images: int = 200, configs=None,
            progress=None, preprocessing=None, task=None, workers=None) -> Analysis:
    """Sweep, per-layer error, weight error, calibration audit, stage agreement, op summary and (for a
    classifier) confusion matrices over the test set. Pass the pipeline's own quantized model and
    verification to reuse them. A model that is not a classifier is swept by int8-vs-float SQNR."""
    with session(workers) as w:  # one worker per native runtime for the whole analysis
        return _analyze(model, dataset, quantized, verified, layer_images, configs, progress, preprocessing, task,
                        w)


def _analyze(model, dataset, quantized, verified, layer_images, configs, progress, preprocessing, task,
             workers) -> Analysis:
    say = progress or (lambda _msg: None)
    pre = preprocessing or default_preprocessing(dataset.train_x)
    shape = input_shape(model)
    calib = preprocess(dataset.train_x, shape, pre)
    task = verified.task if verified is not None else task or infer_task(dataset.test_y, int(np.prod(model.outputs[0].shape[1:])))
    classify = task is Task.CLASSIFICATION
    rng = reference_range(pre, calib, dataset.train_x)
    if quantized is None:
        quantized = quantize(model, calib, dataclasses.replace(QuantizeConfig(), input_range=rng),
                             labels=dataset.train_y if classify else None, workers=workers)
    if verified is None:
        verified = verify(model, quantized, dataset.test_x, dataset.test_y, progress=say, preprocessing=pre,
                          task=task, workers=workers)
    settings = len(configs or default_sweep()) + len(COMPARISONS)
    tick = counted(say, f"sweeping {settings} quantization settings ({len(COMPARISONS)} for comparison) over "
                        f"{verified.test_images} test samples", settings)
    start = time.monotonic()
    reference = dataset.test_y if classify else verified.float_outputs.astype(np.float64)
    rows = sweep(model, dataset.train_x, dataset.train_y if classify else None, dataset.test_x, reference, configs,
                 preprocessing=pre, input_range=rng, tick=tick, workers=workers)
    seconds = time.monotonic() - start
    say(f"per-layer error on {layer_images} test samples")
    layers = layer_errors(model, quantized, dataset.test_x[:layer_images], pre, workers)
    n = verified.test_images
    confusion_float = confusion_int8 = None
    if classify:
        classes = max(int(np.prod(quantized.output.shape[1:])), int(verified.labels.max()) + 1)
        if classes <= 2 * NUM_CLASSES * 5:  # a readable matrix; larger ones stay out of the report
            confusion_float = confusion(verified.labels, verified.float_outputs.reshape(n, -1).argmax(1), classes)
            confusion_int8 = confusion(verified.labels, verified.tflm_outputs.reshape(n, -1).argmax(1), classes)
    return Analysis(quantized, verified, stage_agreement(verified), op_summary(quantized.graph), rows, seconds,
                    layers, weight_errors(model), quantized.audit, confusion_float, confusion_int8,
                    task.value, verified.metric_name, "accuracy" if classify else "SQNR vs float (dB)")
