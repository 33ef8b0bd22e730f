"""What the measured figures mean, said before the tables: a float model near chance on the user's data (with
the evidence for its likely causes: label order, input range, input layout), else an int8 drop over 1 point
with the most sensitive layers. Built from figures the chain already has; only a float model near chance is
re-run, on a few alternative views of its inputs."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .analyze import LayerError, confusion, layer_errors, most_sensitive
from .data import ClassOrder, Dataset, Preprocessing, Task, preprocess
from .errors import TinyqError
from .models import input_shape
from .verify import VerifyResult, accuracy

DROP_PP = 1.0  # an int8 accuracy drop over this many percentage points is reported
SQNR_DB = 20.0  # without labels: TFLM int8 output SQNR vs float under this (noise over 1 % of the signal power)
PROBE_SAMPLES = 1000  # test samples the float model re-reads under each alternative view of its input
LAYER_SAMPLES = 200  # test samples of the per-layer error when the analysis did not run (analyze's default)
PERMUTED_MIN = 0.5  # a confusion matrix is "a permutation" when remapping labels gives at least this accuracy


class Cause(enum.Enum):
    """Why a float model can be near chance on data it was trained for."""

    LABEL_ORDER = "label order"
    INPUT_RANGE = "input range"
    INPUT_LAYOUT = "input layout"


@dataclass(frozen=True)
class Probe:
    """The float model's accuracy on the same test samples given another way: the evidence for one cause."""

    cause: Cause
    change: str
    accuracy: float
    samples: int


@dataclass(frozen=True)
class Relabel:
    """One class the float model consistently predicts as another index: labelled `labelled`, predicted
    `predicted` for `share` of its samples."""

    name: str
    labelled: int
    predicted: int
    share: float


def chance_level(labels: np.ndarray, classes: int) -> float:
    """The accuracy of a model that knows nothing: uniform guessing, or always the most common label."""
    counts = np.bincount(np.asarray(labels, np.int64))
    return max(1.0 / classes, float(counts.max()) / float(counts.sum()))


def near_chance_threshold(chance: float) -> float:
    """Float accuracy below this is "near chance": 1.5x chance, but at most a quarter of the way from chance to
    100 % (ten classes: 15 %; two classes: 62.5 %, not 75 %)."""
    return chance + min(0.5 * chance, 0.25 * (1.0 - chance))


def label_permutation(matrix: np.ndarray, float_accuracy: float, names: tuple[str, ...]
                      ) -> tuple[tuple[Relabel, ...], float | None]:
    """The classes whose samples the float model puts under another index, when the (true, predicted) counts
    are close to a permutation: every label's most predicted index differs, and remapping gives at least
    PERMUTED_MIN and twice the float accuracy. Returns the relabels and the remapped accuracy, or ((), None)."""
    rows = np.flatnonzero(matrix.sum(axis=1) > 0)
    predicted = matrix[rows].argmax(axis=1)
    if len(set(predicted.tolist())) < len(rows) or np.array_equal(rows, predicted):
        return (), None
    remapped = float(matrix[rows, predicted].sum()) / float(matrix.sum())
    if remapped < max(PERMUTED_MIN, 2.0 * float_accuracy):
        return (), None
    return tuple(Relabel(_name(names, int(i)), int(i), int(p), float(matrix[i, p]) / float(matrix[i].sum()))
                 for i, p in zip(rows, predicted) if i != p), remapped


def _name(names: tuple[str, ...], index: int) -> str:
    return names[index] if index < len(names) else str(index)


def _pct(value: float) -> str:
    return f"{100.0 * value:.1f} %"


@dataclass(frozen=True)
class NearChance:
    """The float model is near chance on the user's data: what chance is, and the evidence on each cause."""

    float_accuracy: float
    chance: float
    classes: int
    class_names: tuple[str, ...]
    class_order: ClassOrder
    relabels: tuple[Relabel, ...]  # non-empty: the float confusion matrix is close to a permutation
    remapped_accuracy: float | None
    probes: tuple[Probe, ...]
    input_range: tuple[float, float]
    preprocessing: str
    stored_shape: tuple[int, ...]
    model_shape: tuple[int, ...]

    @property
    def threshold(self) -> float:
        return near_chance_threshold(self.chance)

    def likely(self, probe: Probe) -> bool:
        """A view of the input that lifts the float model clear of chance explains it."""
        return probe.accuracy >= max(self.threshold, 2.0 * self.float_accuracy)

    def lines(self) -> tuple[str, ...]:
        head = (f"float accuracy {_pct(self.float_accuracy)} is near chance ({_pct(self.chance)} with "
                f"{self.classes} classes; flagged under {_pct(self.threshold)}): no int8 recipe can fix this, "
                f"check how the data reaches the model first")
        return (head, "  - " + self._label_line(), *("  - " + self._probe_line(c) for c in
                                                       (Cause.INPUT_RANGE, Cause.INPUT_LAYOUT)))

    def _label_line(self) -> str:
        what = "folder" if self.class_order is not ClassOrder.STORED else "class"
        numbering = ", ".join(f"{n}={i}" for i, n in enumerate(self.class_names))
        how = {ClassOrder.FOLDER_NAMES: "class folders are numbered in sorted name order",
               ClassOrder.LABELS_FILE: "class folders are numbered by the --labels file",
               ClassOrder.STORED: "the labels are used as stored"}[self.class_order]
        order = f"{how}" + (f" ({numbering})" if numbering else "")
        fix = ("; --labels FILE (one class name a line, line i = model output i) sets the order of class folders"
               if self.class_order is not ClassOrder.STORED else "")
        if not self.relabels:
            return f"label order: the float predictions are no permutation of the labels; {order}{fix}"
        first, rest = self.relabels[0], self.relabels[1:]
        moves = (f"{what} '{first.name}' is predicted as class {first.predicted} but labelled {first.labelled} "
                 f"({_pct(first.share)} of its samples)")
        if rest:
            moves += "; likewise (labelled -> predicted) " + ", ".join(
                f"'{r.name}' {r.labelled} -> {r.predicted} ({_pct(r.share)})" for r in rest)
        line = (f"label order (likely cause): the float confusion matrix is a permutation: {moves}; remapped, "
                f"float accuracy would be {_pct(self.remapped_accuracy)}; {order}{fix}")
        wanted = self.model_order()
        if wanted is not None:
            line += f"; for this model the file's lines are {', '.join(wanted)}"
        return line

    def model_order(self) -> tuple[str, ...] | None:
        """The class names in the model's output order the permutation implies, when it names every output."""
        names = list(self.class_names) if len(self.class_names) == self.classes else None
        if names is None:
            return None
        moved = {r.labelled: r.predicted for r in self.relabels}
        order = [""] * self.classes
        for i, name in enumerate(names):
            order[moved.get(i, i)] = name
        return tuple(order) if all(order) and len(set(order)) == self.classes else None

    def _probe_line(self, cause: Cause) -> str:
        lo, hi = self.input_range
        where = (f"model input spans {lo:g}..{hi:g} ({self.preprocessing})" if cause is Cause.INPUT_RANGE else
                 f"stored samples {self.stored_shape}, model input {self.model_shape}"
                 + (" (rows, columns, channels)" if len(self.model_shape) == 3 else ""))
        probes = [p for p in self.probes if p.cause is cause]
        if not probes:
            return f"{cause.value}: {where}; no other reading of it was tried"
        likely = [p for p in probes if self.likely(p)]
        tried = ", ".join(f"{p.change}: float {_pct(p.accuracy)}" for p in probes)
        verdict = " (likely cause)" if likely else ""
        tail = f"; re-read that way the float model is clear of chance" if likely else "; none is clear of chance"
        return f"{cause.value}{verdict}: {where}; on {probes[0].samples} test samples, {tried}{tail}"

    def as_dict(self) -> dict:
        return {"float_accuracy": self.float_accuracy, "chance": self.chance, "threshold": self.threshold,
                "classes": self.classes, "class_order": self.class_order.value,
                "permutation": [{"class": r.name, "labelled": r.labelled, "predicted": r.predicted,
                                 "share": r.share} for r in self.relabels],
                "remapped_accuracy": self.remapped_accuracy, "model_order": self.model_order(),
                "probes": [{"cause": p.cause.value, "change": p.change, "float_accuracy": p.accuracy,
                            "samples": p.samples, "likely": self.likely(p)} for p in self.probes],
                "input_range": list(self.input_range), "lines": list(self.lines())}


class DropMeasure(enum.Enum):
    """What an int8 drop is measured on: accuracy against labels, top-1 agreement with float (no labels,
    vector outputs), or the output SQNR against float (regression, reconstruction, one output)."""

    ACCURACY = "accuracy"
    AGREEMENT = "top-1 agreement with float"
    SQNR = "output SQNR vs float"


@dataclass(frozen=True)
class Int8Drop:
    """TFLM int8 loses more than the threshold against float, with where int8 loses the most signal."""

    measure: DropMeasure
    float_value: float  # accuracy, or 1.0 for agreement; unused for SQNR
    int8_value: float  # accuracy, agreement, or SQNR in dB
    layers: tuple[LayerError, ...]
    layers_source: str  # where the per-layer figures come from, or why there are none

    def line(self) -> str:
        if self.measure is DropMeasure.ACCURACY:
            what = (f"int8 drop {100.0 * (self.float_value - self.int8_value):.1f} pp: accuracy float "
                    f"{_pct(self.float_value)} -> TFLM int8 {_pct(self.int8_value)}")
        elif self.measure is DropMeasure.AGREEMENT:
            what = (f"int8 drop: TFLM int8 picks the float model's top output on {_pct(self.int8_value)} of the "
                    f"test samples ({100.0 * (1.0 - self.int8_value):.1f} pp differ)")
        else:
            what = f"int8 drop: TFLM int8 output SQNR vs float {self.int8_value:.1f} dB (under {SQNR_DB:g} dB)"
        layers = (", ".join(f"{e.layer} ({e.sqnr_db:.1f} dB)" for e in self.layers) if self.layers
                  else "not measured")
        return (f"{what}; most sensitive layers ({self.layers_source}): {layers}; "
                f"--max-drop would search for a recipe that keeps it")

    def as_dict(self) -> dict:
        return {"measure": self.measure.value, "float": self.float_value, "int8": self.int8_value,
                "most_sensitive_layers": [{"layer": e.layer, "sqnr_db": round(e.sqnr_db, 2)} for e in self.layers],
                "layers_source": self.layers_source, "line": self.line()}


def drop_measure(verified: VerifyResult) -> tuple[DropMeasure, float, float] | None:
    """(measure, float, int8) when int8 loses more than DROP_PP points of accuracy (or of top-1 agreement
    without labels), or its output SQNR is under SQNR_DB; None otherwise or without a float model."""
    if verified.float_outputs is None:
        return None
    n = verified.test_images
    if verified.task is Task.CLASSIFICATION:
        f, q = verified.keras_float, verified.tflm_int8
        return (DropMeasure.ACCURACY, f, q) if round(100.0 * (f - q), 9) > DROP_PP else None
    if verified.task is Task.NONE and verified.float_outputs.reshape(n, -1).shape[1] > 1:
        same = float(np.mean(verified.float_outputs.reshape(n, -1).argmax(1)
                             == verified.tflm_outputs.reshape(n, -1).argmax(1)))
        return (DropMeasure.AGREEMENT, 1.0, same) if round(100.0 * (1.0 - same), 9) > DROP_PP else None
    sqnr = verified.output_error.sqnr_db
    return (DropMeasure.SQNR, 0.0, sqnr) if sqnr < SQNR_DB else None


@dataclass(frozen=True)
class Findings:
    """What to say first: the float model near chance, else an int8 drop; neither when all is well."""

    near_chance: NearChance | None = None
    int8_drop: Int8Drop | None = None

    def lines(self) -> tuple[str, ...]:
        if self.near_chance is not None:  # an int8 recipe cannot help a model that is wrong in float
            return self.near_chance.lines()
        return () if self.int8_drop is None else (self.int8_drop.line(),)

    def as_dict(self) -> dict:
        return {"float_near_chance": None if self.near_chance is None else self.near_chance.as_dict(),
                "int8_drop": None if self.int8_drop is None or self.near_chance is not None
                else self.int8_drop.as_dict(),
                "lines": list(self.lines())}


def input_probes(predict: Callable[[np.ndarray], np.ndarray], raw: np.ndarray, labels: np.ndarray,
                 pre: Preprocessing, shape: tuple[int, ...]) -> tuple[tuple[float, float], tuple[Probe, ...]]:
    """The model input's range over the first PROBE_SAMPLES test samples, and the float accuracy on them read
    other ways: rescaled (x/255 when the input looks raw, x255, 0..1 <-> -1..1) and re-laid (rows and columns
    swapped in square images; stored channels-first transposed to the model's channels-last)."""
    raw, y = np.asarray(raw)[:PROBE_SAMPLES], np.asarray(labels)[:PROBE_SAMPLES]
    x = preprocess(raw, shape, pre)
    lo, hi = float(x.min()), float(x.max())
    views = []
    if hi > 2.0:
        views.append((Cause.INPUT_RANGE, "inputs / 255", x / np.float32(255.0)))
    if -1.5 <= lo and hi <= 1.5:
        views.append((Cause.INPUT_RANGE, "inputs x 255", x * np.float32(255.0)))
        views.append((Cause.INPUT_RANGE, "inputs 0..1 as -1..1", x * np.float32(2.0) - np.float32(1.0)) if lo >= 0
                     else (Cause.INPUT_RANGE, "inputs -1..1 as 0..1", (x + np.float32(1.0)) / np.float32(2.0)))
    if len(shape) in (2, 3) and shape[0] == shape[1] > 1:
        views.append((Cause.INPUT_LAYOUT, "images transposed (rows and columns swapped)", np.swapaxes(x, 1, 2)))
    stored = tuple(raw.shape[1:])
    if len(shape) == 3 and stored == (shape[2], shape[0], shape[1]) and stored != tuple(shape):
        try:
            views.append((Cause.INPUT_LAYOUT, "stored channels-first (NCHW) read as channels-last (NHWC)",
                          preprocess(np.transpose(raw, (0, 2, 3, 1)), shape, pre)))
        except TinyqError:  # a per-channel mean/std that only fits the stored layout: nothing to compare
            pass
    return (lo, hi), tuple(Probe(cause, change, accuracy(np.asarray(predict(v)), y), len(y))
                           for cause, change, v in views)


def near_chance(verified: VerifyResult, dataset: Dataset, pre: Preprocessing, model) -> NearChance | None:
    """The evidence on each cause when the float accuracy is under near_chance_threshold; None otherwise."""
    n = verified.test_images
    outputs = verified.float_outputs.reshape(n, -1)
    classes = outputs.shape[1]
    if len(np.unique(verified.labels)) < 2:  # a test set of one class says nothing about chance
        return None
    chance = chance_level(verified.labels, classes)
    if verified.keras_float >= near_chance_threshold(chance):
        return None
    size = max(classes, int(verified.labels.max()) + 1)
    names = tuple(dataset.class_names or ())
    relabels, remapped = label_permutation(confusion(verified.labels, outputs.argmax(axis=1), size),
                                           verified.keras_float, names)
    shape = input_shape(model)
    span, probes = input_probes(lambda v: model.predict(v, batch_size=500, verbose=0), dataset.test_x,
                                verified.labels, pre, shape)
    return NearChance(verified.keras_float, chance, classes, names, dataset.class_order, relabels, remapped,
                      probes, span, pre.describe(), dataset.sample_shape, tuple(shape))


def _sensitive_layers(model, quantized, dataset: Dataset, analysis, pre: Preprocessing,
                      workers) -> tuple[tuple[LayerError, ...], str]:
    """The three most sensitive layers: from the analysis when it ran, else the per-layer error alone on
    LAYER_SAMPLES test samples (one LiteRT call, no sweep); a model it cannot take apart says why."""
    if analysis is not None:
        return most_sensitive(analysis.layers), "from the analysis"
    count = min(LAYER_SAMPLES, len(dataset.test_x))
    try:
        errors = layer_errors(model, quantized, dataset.test_x[:count], pre, workers)
    except TinyqError as exc:
        return (), f"per-layer error not measured: {exc}"
    return most_sensitive(errors), f"per-layer error on {count} test samples, analysis off"


def diagnose(model, dataset: Dataset, quantized, verified: VerifyResult, analysis, pre: Preprocessing,
             workers=None) -> Findings:
    """The findings of one run of the chain on a Keras `model` (None: a .tflite given quantized, no float)."""
    if model is None or verified.float_outputs is None:
        return Findings()
    if verified.task is Task.CLASSIFICATION:
        near = near_chance(verified, dataset, pre, model)
        if near is not None:
            return Findings(near_chance=near)
    measured = drop_measure(verified)
    if measured is None:
        return Findings()
    layers, source = _sensitive_layers(model, quantized, dataset, analysis, pre, workers)
    return Findings(int8_drop=Int8Drop(*measured, layers, source))
