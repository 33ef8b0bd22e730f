"""Quantization analysis (issue 6): calibration audit first; sweeps, percentile calibration and per-layer error to follow."""
from __future__ import annotations

import dataclasses
import enum

import numpy as np

from tinyq.errors import QuantizationError


class Severity(enum.Enum):
    """How bad an audit finding is: a warning goes in the report, an error stops quantization."""
    WARNING = "warning"
    ERROR = "error"


@dataclasses.dataclass(frozen=True)
class AuditFinding:
    """One problem found in a calibration set, with what is allowed."""
    severity: Severity
    message: str


@dataclasses.dataclass(frozen=True)
class CalibrationAudit:
    """Coverage, balance, duplicates and value range of a calibration set against the training data."""
    samples: int
    dtype: str
    classes_present: int
    classes_expected: int
    imbalance: float  # largest class count / smallest present class count
    duplicates: int
    calib_range: tuple[float, float]
    train_range: tuple[float, float]
    findings: tuple[AuditFinding, ...]

    @property
    def errors(self) -> tuple[AuditFinding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[AuditFinding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)


def audit_calibration(images: np.ndarray, labels: np.ndarray | None, train_images: np.ndarray,
                      num_classes: int, name: str = "calibration set") -> CalibrationAudit:
    """Check a calibration set against the training data; findings are listed, never raised (see require_usable)."""
    findings: list[AuditFinding] = []
    x = np.asarray(images)
    n = int(x.shape[0]) if x.ndim else 0
    if n == 0:
        findings.append(AuditFinding(Severity.ERROR, f"{name}: no samples; at least 1 is required"))
    if not np.issubdtype(x.dtype, np.floating):
        findings.append(AuditFinding(Severity.WARNING, f"{name}: dtype {x.dtype}, the model takes float32"))
    xf = x.astype(np.float64) if n else np.zeros(1)
    finite = np.isfinite(xf)
    if not finite.all():
        findings.append(AuditFinding(Severity.ERROR, f"{name}: {int((~finite).sum())} NaN/inf values; all values must be finite"))
    t = np.asarray(train_images, dtype=np.float64)
    train_range = (float(np.nanmin(t)), float(np.nanmax(t)))
    calib_range = (float(np.nanmin(xf)), float(np.nanmax(xf))) if finite.any() else (float("nan"), float("nan"))
    span = max(train_range[1] - train_range[0], 1e-12)
    if finite.any() and (calib_range[1] > train_range[1] + 0.5 * span or calib_range[0] < train_range[0] - 0.5 * span):
        findings.append(AuditFinding(Severity.ERROR, f"{name}: values {calib_range[0]:g}..{calib_range[1]:g} lie far outside "
                                     f"the training range {train_range[0]:g}..{train_range[1]:g} (e.g. 0..255 vs 0..1); "
                                     "preprocess the calibration data like the training data"))
    elif finite.any() and (calib_range[1] - calib_range[0]) < 0.5 * span:
        findings.append(AuditFinding(Severity.WARNING, f"{name}: values span {calib_range[0]:g}..{calib_range[1]:g}, less than "
                                     f"half the training range {train_range[0]:g}..{train_range[1]:g}"))
    classes_present, imbalance = 0, 1.0
    if labels is not None and n:
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
        present = counts[counts > 0]
        classes_present = int(present.size)
        imbalance = float(present.max() / present.min())
        if classes_present < num_classes:
            missing = [int(c) for c in np.flatnonzero(counts == 0)]
            sev = Severity.ERROR if classes_present == 1 and num_classes > 1 else Severity.WARNING
            findings.append(AuditFinding(sev, f"{name}: {classes_present} of {num_classes} classes present, missing {missing}"))
        if imbalance > 3.0:
            findings.append(AuditFinding(Severity.WARNING, f"{name}: class imbalance {imbalance:.1f}x (largest/smallest); at most 3x advised"))
    duplicates = 0
    if n:
        flat = np.ascontiguousarray(x.reshape(n, -1))
        duplicates = n - len({row.tobytes() for row in flat})
        if duplicates:
            findings.append(AuditFinding(Severity.WARNING, f"{name}: {duplicates} duplicate samples of {n}"))
    return CalibrationAudit(n, str(x.dtype), classes_present, num_classes, imbalance, duplicates,
                            calib_range, train_range, tuple(findings))


def require_usable(audit: CalibrationAudit) -> CalibrationAudit:
    """Raise QuantizationError naming the first error finding; return the audit when only warnings remain."""
    if audit.errors:
        raise QuantizationError("; ".join(f.message for f in audit.errors))
    return audit


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
    """One quantization setting measured on the test set: accuracy, size, TFLM arena, whether TFLM runs it."""

    label: str
    accuracy: float
    model_bytes: int
    tflm_arena_bytes: int | None
    tflm_runs: bool
    runtime: str


def default_sweep() -> tuple[tuple[str, object], ...]:
    """Calibration sample counts, class-balanced vs first-N, per-channel vs per-tensor weights."""
    from .quantize import QuantizeConfig, WeightGranularity

    rows = [(f"int8, {n} balanced samples", QuantizeConfig(num_calibration_samples=n)) for n in (1, 10, 100, 1000)]
    rows.append(("int8, 100 first-N samples", QuantizeConfig(num_calibration_samples=100, balanced=False)))
    rows.append(("int8, per-tensor weights, 300 samples",
                 QuantizeConfig(granularity=WeightGranularity.PER_TENSOR)))
    return tuple(rows)


def _tflm_arena_or_none(tflite: bytes, sample: np.ndarray) -> int | None:
    from .verify import tflm_arena_bytes

    try:
        return tflm_arena_bytes(tflite, sample)
    except (RuntimeError, QuantizationError, ValueError):
        return None


def sweep(model, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
          configs=None, comparisons: bool = True) -> tuple[SweepRow, ...]:
    """Quantize under each config and measure int8 accuracy in TFLM over the test set; optionally add
    dynamic-range and float16 conversions (LiteRT accuracy, and whether TFLM can run them at all)."""
    from .data import preprocess
    from .models import input_shape
    from .quantize import quantize
    from .verify import accuracy, quantize_input, run_litert, run_tflm

    shape = input_shape(model)
    calib = preprocess(train_x, shape)
    x = preprocess(test_x, shape)
    labels = np.asarray(test_y).astype(np.int64)
    rows = []
    for label, config in (configs or default_sweep()):
        q = quantize(model, calib, config, labels=train_y)
        xq = quantize_input(x, q.input)
        rows.append(SweepRow(label, accuracy(run_tflm(q.tflite, xq), labels), len(q.tflite),
                             _tflm_arena_or_none(q.tflite, xq[0]), True, "TFLM"))
    if comparisons:
        for label, tflite in _float_io_conversions(model, shape):
            arena = _tflm_arena_or_none(tflite, x[0])
            rows.append(SweepRow(label, accuracy(run_litert(tflite, x, reference=False), labels), len(tflite),
                                 arena, arena is not None, "LiteRT (comparison only)"))
    return tuple(rows)


def _float_io_conversions(model, shape: tuple[int, ...]) -> list[tuple[str, bytes]]:
    """Dynamic-range (hybrid) and float16 conversions, for size and accuracy comparison."""
    import tensorflow as tf

    from .quantize import _batch1_converter, _convert

    dynamic = _batch1_converter(model, shape)
    dynamic.optimizations = [tf.lite.Optimize.DEFAULT]
    fp16 = _batch1_converter(model, shape)
    fp16.optimizations = [tf.lite.Optimize.DEFAULT]
    fp16.target_spec.supported_types = [tf.float16]
    return [("dynamic-range (hybrid int8 weights)", _convert(dynamic, f"{model.name} dynamic-range")),
            ("float16 weights", _convert(fp16, f"{model.name} float16"))]


@dataclasses.dataclass(frozen=True)
class LayerError:
    """Float activation vs dequantized int8 activation of one layer over a batch of test images."""

    layer: str
    op: str
    rmse: float
    max_abs: float
    sqnr_db: float


def layer_errors(model, quantized, images: np.ndarray) -> tuple[LayerError, ...]:
    """Per-layer error of the int8 model (LiteRT reference kernels, every tensor kept) against Keras float.

    An op is matched to the Keras layer its output tensor is named after; ops with no such layer are skipped.
    """
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from .data import preprocess
    from .graph import read_graph
    from .models import input_shape
    from .verify import quantize_input

    graph = read_graph(quantized.tflite)
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
    x = preprocess(images, input_shape(model))
    probe = tf.keras.Model(model.inputs, [model.get_layer(name).output if name else model.outputs[0]
                                          for _, name in pairs])
    floats = probe.predict(x, batch_size=len(x), verbose=0)
    floats = floats if isinstance(floats, list) else [floats]
    interp = Interpreter(model_content=quantized.tflite, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                         experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    xq = quantize_input(x, quantized.input)
    index = interp.get_input_details()[0]["index"]
    ints = [np.empty((len(x), int(np.prod(graph.tensors[op.outputs[0]].shape))), np.float64) for op, _ in pairs]
    for i, sample in enumerate(xq):
        interp.set_tensor(index, sample[np.newaxis])
        interp.invoke()
        for k, (op, _) in enumerate(pairs):
            t = graph.tensors[op.outputs[0]]
            q = interp.get_tensor(op.outputs[0]).astype(np.float64).reshape(-1)
            ints[k][i] = (q - t.zero_points[0]) * t.scales[0]
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
class Analysis:
    """Everything `tinyq analyze` measured, and the report it wrote."""

    sweep: tuple[SweepRow, ...]
    layers: tuple[LayerError, ...]
    weights: tuple[WeightError, ...]
    audit: CalibrationAudit
    float_accuracy: float
    int8_accuracy: float
    report: object

    @property
    def layers_sorted(self) -> tuple[LayerError, ...]:
        """Layers from the most to the least sensitive (lowest SQNR first)."""
        return most_sensitive(self.layers, len(self.layers))


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs."""
    m = np.zeros((classes, classes), np.int64)
    np.add.at(m, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return m


def analyze(model, dataset, out_dir, layer_images: int = 200, configs=None):
    """Sweep, per-layer error, weight error, calibration audit and confusion matrices into out_dir/report.html."""
    from pathlib import Path

    from . import __version__
    from .data import NUM_CLASSES, preprocess
    from .models import input_shape
    from .quantize import QuantizeConfig, convert_float, quantize, select_calibration
    from .report_html import confusion_plot, layer_error_plot, write_html
    from .verify import quantize_input, run_tflm

    shape = input_shape(model)
    calib = preprocess(dataset.train_x, shape)
    config = QuantizeConfig()
    idx = select_calibration(calib, dataset.train_y, config)
    audit = require_usable(audit_calibration(calib[idx], dataset.train_y[idx], calib, NUM_CLASSES))
    q = quantize(model, calib, config, labels=dataset.train_y)
    x = preprocess(dataset.test_x, shape)
    labels = np.asarray(dataset.test_y, np.int64)
    float_pred = model.predict(x, batch_size=500, verbose=0).reshape(len(x), -1).argmax(1)
    int8_pred = run_tflm(q.tflite, quantize_input(x, q.input)).reshape(len(x), -1).argmax(1)
    rows = sweep(model, dataset.train_x, dataset.train_y, dataset.test_x, dataset.test_y, configs)
    layers = layer_errors(model, q, dataset.test_x[:layer_images])
    weights = weight_errors(model)
    classes = max(NUM_CLASSES, int(labels.max()) + 1)
    float_acc, int8_acc = float(np.mean(float_pred == labels)), float(np.mean(int8_pred == labels))
    summary = [("Keras float accuracy", f"{100 * float_acc:.2f} %"), ("TFLM int8 accuracy", f"{100 * int8_acc:.2f} %"),
               ("float / int8 .tflite bytes", f"{len(convert_float(model))} / {len(q.tflite)}"),
               ("calibration samples", str(len(idx)))]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = write_html(out / "report.html", dict(
        model_name=model.name, version=__version__, sha256=q.sha256, test_images=len(x), summary=summary,
        sweep=rows, layers=layers, sensitive=[f"{e.layer} ({e.sqnr_db:.1f} dB)" for e in most_sensitive(layers)],
        layer_plot=layer_error_plot(layers), weights=weights, findings=audit.findings,
        confusion_float=confusion_plot(confusion(labels, float_pred, classes), "Keras float"),
        confusion_int8=confusion_plot(confusion(labels, int8_pred, classes), "int8 in TFLM")))
    return Analysis(rows, layers, weights, audit, float_acc, int8_acc, report)
