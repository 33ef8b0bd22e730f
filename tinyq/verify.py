"""Run one model through Keras float, LiteRT (reference and default kernels) and TFLM over a test set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .data import Preprocessing, Task, check_labels, infer_task, preprocess
from .errors import NativeCrash, VerificationError
from .engine import Graph, macs
from .models import input_shape
from .native import Workers, session
from .progress import counted
from .quantize import QuantizedModel, TensorQuant, convert_float
from .runtimes import run_litert, run_tflm, tflm_arena_bytes

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Agreement:
    """How two int8 runtimes agree over a test set: whole-vector identity, worst LSB gap, same argmax."""

    bitexact: float
    max_lsb: int
    argmax: float


@dataclass(frozen=True)
class OutputError:
    """int8 outputs (dequantized) against the Keras float outputs: mean squared error and SQNR."""

    mse: float
    sqnr_db: float


def output_error(reference: np.ndarray, test: np.ndarray) -> OutputError:
    """MSE and SQNR (dB, signal = reference) of `test` against `reference`, both float, same size."""
    ref = np.asarray(reference, np.float64).reshape(-1)
    err = np.asarray(test, np.float64).reshape(-1) - ref
    noise = float(np.sum(err ** 2))
    signal = float(np.sum(ref ** 2))
    sqnr = float("inf") if noise == 0 else (float("-inf") if signal == 0 else 10.0 * np.log10(signal / noise))
    return OutputError(float(np.mean(err ** 2)), sqnr)


METRIC_NAMES = {Task.CLASSIFICATION: "accuracy", Task.REGRESSION: "MSE vs targets",
                Task.RECONSTRUCTION: "MSE vs input", Task.NONE: "none (no labels: agreement only)"}


@dataclass(frozen=True)
class Scorer:
    """The task metric of output vectors: accuracy against labels, or MSE against float targets (int8
    outputs are dequantized first); None when there is nothing to score against."""

    task: Task
    labels: np.ndarray | None
    targets: np.ndarray | None
    output: TensorQuant | None

    def __call__(self, outputs: np.ndarray | None) -> float | None:
        if outputs is None:
            return None
        if self.task is Task.CLASSIFICATION:
            return accuracy(outputs, self.labels)
        if self.targets is None:
            return None
        y = np.asarray(outputs)
        if np.issubdtype(y.dtype, np.integer):
            y = dequantize(y, self.output)
        n = len(self.targets)
        t = np.asarray(self.targets, np.float64).reshape(n, -1)
        if t.shape[1] != y.reshape(n, -1).shape[1]:
            raise VerificationError(f"targets have {t.shape[1]} values per sample, the model outputs "
                                    f"{y.reshape(n, -1).shape[1]}")
        return float(np.mean((y.reshape(n, -1).astype(np.float64) - t) ** 2))


@dataclass(frozen=True)
class VerifyResult:
    """The task metric (accuracy for a classifier) of every runtime, agreement, sizes and memory of one
    model, plus the int8 tensors TFLM saw and produced. Float-model fields are None for a .tflite given
    already quantized."""

    test_images: int
    keras_float: float | None
    litert_ref_int8: float | None
    litert_int8: float | None
    tflm_int8: float | None
    tflm_vs_litert_ref: Agreement
    per_class_float: tuple[float, ...]
    per_class_tflm: tuple[float, ...]
    float_tflite_bytes: int
    int8_tflite_bytes: int
    tflm_arena_bytes: int
    params: int
    macs: int
    int8_inputs: np.ndarray
    tflm_outputs: np.ndarray
    labels: np.ndarray
    float_outputs: np.ndarray | None
    litert_ref_outputs: np.ndarray
    litert_outputs: np.ndarray
    crashes: tuple[str, ...] = ()  # runtimes that crashed (their outputs are empty, their figures None)
    task: Task = Task.CLASSIFICATION
    targets: np.ndarray | None = None
    output_quant: TensorQuant | None = None
    output_error: OutputError | None = None  # TFLM int8 vs Keras float

    @property
    def metric_name(self) -> str:
        return METRIC_NAMES[self.task]

    @property
    def scorer(self) -> Scorer:
        return Scorer(self.task, self.labels, self.targets, self.output_quant)

    def score(self, outputs: np.ndarray) -> float | None:
        """The task metric of another runtime's outputs over the same test set (e.g. the C engine's)."""
        return self.scorer(outputs)

    @classmethod
    def tflm_only(cls, quantized: QuantizedModel, inputs: np.ndarray, tflm_outputs: np.ndarray, labels: np.ndarray,
                  arena_bytes: int = 0) -> "VerifyResult":
        """A result carrying just TFLM's inputs and outputs (what emission needs), e.g. for benchmarks and tests."""
        n = len(inputs)
        return cls(n, 0.0, 0.0, 0.0, accuracy(tflm_outputs, labels), agreement(tflm_outputs, tflm_outputs), (), (), 0,
                   len(quantized.tflite), arena_bytes, 0, 0, inputs, tflm_outputs, labels,
                   tflm_outputs, tflm_outputs, tflm_outputs)


@dataclass(frozen=True)
class StageAgreement:
    """One runtime of the chain against Keras float (same argmax) and against TFLM (the device's kernels)."""

    stage: str
    accuracy: float | None  # the task metric
    argmax_vs_float: float | None
    vs_tflm: Agreement | None  # None for the float model, whose outputs are not int8


def stage_agreement(result: VerifyResult) -> tuple[StageAgreement, ...]:
    """Keras float, LiteRT reference, LiteRT default and TFLM over the same test images."""
    n = result.test_images
    float_pred = None if result.float_outputs is None else np.argmax(result.float_outputs.reshape(n, -1), axis=1)

    def same_argmax(outputs: np.ndarray) -> float | None:
        if float_pred is None:
            return None
        return float(np.mean(np.argmax(outputs.reshape(n, -1), axis=1) == float_pred))

    rows = [] if float_pred is None else [StageAgreement("Keras float", result.keras_float, 1.0, None)]
    for stage, acc, outputs in (("LiteRT int8, reference kernels", result.litert_ref_int8, result.litert_ref_outputs),
                                ("LiteRT int8, default kernels", result.litert_int8, result.litert_outputs),
                                ("TFLM int8", result.tflm_int8, result.tflm_outputs)):
        if len(outputs) != n:  # that runtime crashed; its crash is in result.crashes
            continue
        rows.append(StageAgreement(stage, acc, same_argmax(outputs), agreement(outputs, result.tflm_outputs)))
    return tuple(rows)


def quantize_input(x: np.ndarray, q: TensorQuant) -> np.ndarray:
    """float -> the tensor's integer type (int8, or int16 in 16x8 mode) as TFLite's QUANTIZE does: round half
    away from zero, add the zero point, saturate."""
    dtype = np.dtype(q.dtype)
    v = np.asarray(x, dtype=np.float32) / np.float32(q.scale)
    rounded = np.sign(v) * np.floor(np.abs(v) + 0.5)
    limits = np.iinfo(dtype)
    return np.clip(rounded + q.zero_point, limits.min, limits.max).astype(dtype)


def dequantize(q8: np.ndarray, q: TensorQuant) -> np.ndarray:
    """int8 -> float32: scale * (q - zero_point)."""
    return (np.asarray(q8, dtype=np.int32) - q.zero_point).astype(np.float32) * np.float32(q.scale)


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of output vectors (any dtype) against labels; NaN for a runtime that crashed (no outputs)."""
    if len(outputs) != len(labels):
        return float("nan")
    return float(np.mean(np.argmax(outputs.reshape(len(labels), -1), axis=1) == labels))


def per_class_accuracy(outputs: np.ndarray, labels: np.ndarray) -> tuple[float, ...]:
    """Top-1 accuracy for each class present in `labels`, in class order."""
    pred = np.argmax(outputs.reshape(len(labels), -1), axis=1)
    return tuple(float(np.mean(pred[labels == c] == c)) for c in np.unique(labels))


def agreement(a: np.ndarray, b: np.ndarray) -> Agreement:
    """Agreement of two int8 output sets of the same shape (N, ...); NaN when one runtime crashed (no outputs)."""
    if len(a) != len(b):
        return Agreement(float("nan"), -1, float("nan"))
    a2 = a.reshape(len(a), -1).astype(np.int32)
    b2 = b.reshape(len(b), -1).astype(np.int32)
    return Agreement(
        bitexact=float(np.mean(np.all(a2 == b2, axis=1))),
        max_lsb=int(np.max(np.abs(a2 - b2))) if a2.size else 0,
        argmax=float(np.mean(np.argmax(a2, axis=1) == np.argmax(b2, axis=1))),
    )


def verify(model, quantized: QuantizedModel, test_x: np.ndarray, test_y: np.ndarray | None,
           progress: Progress | None = None, preprocessing: Preprocessing | None = None,
           task: Task | None = None, workers: Workers | None = None) -> VerifyResult:
    """Every runtime over the whole test set (samples as stored, mapped by `preprocessing`, default the
    MNIST 0..1), scored for the task (inferred from `test_y` when not given), with agreement and sizes.
    `model` None: a .tflite given already quantized; the Keras float stage is skipped.

    Each native runtime runs in its worker (one per kind for the whole call). A LiteRT crash is recorded in
    `crashes` and the other results are kept; TFLM is the reference the firmware is checked against, so a
    TFLM crash raises NativeCrash.
    """
    say = progress or (lambda _msg: None)
    shape = tuple(quantized.input.shape[1:]) if model is None else input_shape(model)
    x = preprocess(test_x, shape, preprocessing)
    out_size = int(np.prod(quantized.output.shape[1:]))
    task = task or infer_task(test_y, out_size)
    labels, targets = task_labels(task, test_y, x, len(x))
    if task is Task.CLASSIFICATION:
        labels = check_labels(labels, out_size, "test labels")
    float_out = None
    if model is not None:
        say(f"Keras float on {len(x)} samples")
        float_out = np.asarray(model.predict(x, batch_size=500, verbose=0))
    if quantized.input.dtype != "int8":
        raise VerificationError(f"model {quantized.name!r}: input is {quantized.input.dtype}; verify needs int8 I/O")
    xq = quantize_input(x, quantized.input)
    crashes: list[str] = []
    with session(workers) as w:
        try:
            tflm = run_tflm(quantized.tflite, xq, w, tick=counted(say, "TFLM int8", len(xq)))
        except RuntimeError as exc:
            raise VerificationError(f"model {quantized.name!r}: TFLM cannot run it: {exc}") from exc
        litert = {}
        for reference, label in ((True, "LiteRT int8, reference kernels"), (False, "LiteRT int8, default kernels")):
            try:
                litert[reference] = run_litert(quantized.tflite, xq, reference, w,
                                               tick=counted(say, label, len(xq)))
            except NativeCrash as exc:
                crashes.append(str(exc))
                say(f"{label}: {exc}")
                litert[reference] = np.empty((0,) + tflm.shape[1:], tflm.dtype)
        say("TFLM arena size")
        arena = tflm_arena_bytes(quantized.tflite, xq[0], w)
        float_bytes = 0 if model is None else len(convert_float(model, w))
    ref, opt = litert[True], litert[False]
    scorer = Scorer(task, labels, targets, quantized.output)

    def score(outputs: np.ndarray | None) -> float | None:
        return None if outputs is None or len(outputs) != len(xq) else scorer(outputs)

    classify = task is Task.CLASSIFICATION
    return VerifyResult(
        test_images=len(x),
        keras_float=score(float_out),
        litert_ref_int8=score(ref),
        litert_int8=score(opt),
        tflm_int8=score(tflm),
        tflm_vs_litert_ref=agreement(tflm, ref),
        per_class_float=per_class_accuracy(float_out, labels) if classify and float_out is not None else (),
        per_class_tflm=per_class_accuracy(tflm, labels) if classify else (),
        float_tflite_bytes=float_bytes,
        int8_tflite_bytes=len(quantized.tflite),
        tflm_arena_bytes=arena,
        params=constant_elements(quantized.graph) if model is None else int(model.count_params()),
        macs=macs(quantized.graph),
        int8_inputs=xq,
        tflm_outputs=tflm,
        labels=labels,
        float_outputs=float_out,
        litert_ref_outputs=ref,
        litert_outputs=opt,
        crashes=tuple(crashes),
        task=task,
        targets=targets,
        output_quant=quantized.output,
        output_error=None if float_out is None else output_error(float_out, dequantize(tflm, quantized.output)),
    )


def task_labels(task: Task, test_y: np.ndarray | None, x: np.ndarray, n: int
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Integer labels (zeros when the task has none: golden vectors carry a label byte) and float targets."""
    if task is Task.CLASSIFICATION:
        if test_y is None or np.asarray(test_y).ndim != 1 or not np.issubdtype(np.asarray(test_y).dtype, np.integer):
            raise VerificationError("classification needs integer class labels (N,) for the test set")
        return np.asarray(test_y).astype(np.int64), None
    zeros = np.zeros(n, np.int64)
    if task is Task.RECONSTRUCTION:
        return zeros, np.asarray(x, np.float32)
    if task is Task.REGRESSION and test_y is not None:
        return zeros, np.asarray(test_y, np.float32)
    return zeros, None


def constant_elements(graph: Graph) -> int:
    """Elements of the constant tensors (weights and biases): the parameter count of a .tflite."""
    return int(sum(t.size for t in graph.tensors if t.data is not None))
