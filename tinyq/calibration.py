"""Calibration sets and activation ranges: the audit that stops a useless calibration set, and percentile
calibration, which clips each recorded activation range before the converter quantizes the model."""
from __future__ import annotations

import dataclasses
import enum

import flatbuffers
import numpy as np

from .errors import QuantizationError
from .engine import read_graph
from .native import native_quiet


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
    """Coverage, balance, duplicates, dtype and value range of a calibration set."""
    samples: int
    dtype: str
    classes_present: int
    classes_expected: int
    imbalance: float  # largest class count / smallest present class count
    duplicates: int
    calib_range: tuple[float, float]
    reference_range: tuple[float, float]
    findings: tuple[AuditFinding, ...]

    @property
    def errors(self) -> tuple[AuditFinding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[AuditFinding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)


_RANGE_TOLERANCE = 0.01  # of the reference span: float rounding in preprocessing, not a different scale
_MAX_IMBALANCE = 3.0


def _value_findings(x: np.ndarray, reference_range: tuple[float, float], name: str) -> list[AuditFinding]:
    """Empty set, integer dtype, NaN/Inf, and values outside (or covering little of) the reference range."""
    if x.ndim == 0 or x.shape[0] == 0 or x.size == 0:
        return [AuditFinding(Severity.ERROR, f"{name} is empty: need at least one sample")]
    findings = []
    lo, hi = reference_range
    if not np.issubdtype(x.dtype, np.floating):
        findings.append(AuditFinding(Severity.ERROR, f"{name} is {x.dtype}; give float samples preprocessed as for "
                                     f"training (range {lo:g}..{hi:g})"))
    elif x.dtype != np.float32:
        findings.append(AuditFinding(Severity.WARNING, f"{name} is {x.dtype}; the model takes float32, values are cast"))
    bad = ~np.isfinite(x.reshape(len(x), -1))
    if bad.any():
        first = int(np.flatnonzero(bad.any(axis=1))[0])
        findings.append(AuditFinding(Severity.ERROR, f"{name} has {int(bad.sum())} NaN/Inf values (first in sample "
                                     f"{first}); all values must be finite"))
        return findings
    amin, amax = float(x.min()), float(x.max())
    span = hi - lo
    if amin < lo - _RANGE_TOLERANCE * span or amax > hi + _RANGE_TOLERANCE * span:
        findings.append(AuditFinding(Severity.ERROR, f"{name} spans {amin:g}..{amax:g}, outside the model's input "
                                     f"range {lo:g}..{hi:g} (were 0..255 pixels passed to a model trained on 0..1?)"))
    elif amax - amin < 0.5 * span:
        findings.append(AuditFinding(Severity.WARNING, f"{name} spans {amin:g}..{amax:g}, less than half the "
                                     f"input range {lo:g}..{hi:g}"))
    return findings


def _label_findings(labels: np.ndarray, num_classes: int, name: str) -> tuple[int, float, list[AuditFinding]]:
    """Class coverage and balance. One class is an error once the set is big enough to hold every class."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    present = counts[counts > 0]
    imbalance = float(present.max() / present.min())
    findings = []
    if present.size < num_classes:
        missing = [int(c) for c in np.flatnonzero(counts == 0)]
        one_class = present.size == 1 and num_classes > 1 and len(labels) >= num_classes
        findings.append(AuditFinding(Severity.ERROR if one_class else Severity.WARNING,
                                     f"{name}: {present.size} of {num_classes} classes present, missing {missing}"
                                     + ("" if len(labels) >= num_classes else f" ({len(labels)} samples)")))
    if imbalance > _MAX_IMBALANCE:
        findings.append(AuditFinding(Severity.WARNING, f"{name}: class imbalance {imbalance:.1f}x (largest/smallest "
                                     f"class); at most {_MAX_IMBALANCE:g}x advised"))
    return int(present.size), imbalance, findings


def audit_calibration(images: np.ndarray, labels: np.ndarray | None, reference_range: tuple[float, float],
                      num_classes: int, name: str = "calibration data") -> CalibrationAudit:
    """Check a calibration set against the value range the model was trained on and its class labels.

    Findings are listed, never raised (see require_usable), so a report can show the warnings.
    """
    x = np.asarray(images)
    findings = _value_findings(x, reference_range, name)
    n = int(x.shape[0]) if x.ndim else 0
    finite = n > 0 and np.issubdtype(x.dtype, np.number) and bool(np.isfinite(x).all())
    calib_range = (float(x.min()), float(x.max())) if finite else (float("nan"), float("nan"))
    classes_present, imbalance = 0, 1.0
    if labels is not None and n:
        if len(labels) != n:
            raise QuantizationError(f"{name}: {len(labels)} labels for {n} samples")
        classes_present, imbalance, label_findings = _label_findings(labels, num_classes, name)
        findings += label_findings
    duplicates = 0
    if n:
        flat = np.ascontiguousarray(x.reshape(n, -1))
        duplicates = n - len({row.tobytes() for row in flat})
        if duplicates:
            findings.append(AuditFinding(Severity.WARNING, f"{name}: {duplicates} duplicate samples of {n}"))
    return CalibrationAudit(n, str(x.dtype), classes_present, num_classes, imbalance, duplicates,
                            calib_range, tuple(float(v) for v in reference_range), tuple(findings))


def require_usable(audit: CalibrationAudit) -> CalibrationAudit:
    """Raise QuantizationError naming every error finding; return the audit when only warnings remain."""
    if audit.errors:
        raise QuantizationError("; ".join(f.message for f in audit.errors))
    return audit


@dataclasses.dataclass(frozen=True)
class ActivationRange:
    """One activation tensor's calibrated range: the converter's min-max and the one tinyq gave the quantizer."""
    tensor: str
    minmax: tuple[float, float]
    used: tuple[float, float]


def percentile_range(values: np.ndarray, percentile: float) -> tuple[float, float]:
    """The central `percentile` % of the values, widened to include 0 (zero must be representable exactly)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    lo = float(np.percentile(v, 100.0 - percentile))
    hi = float(np.percentile(v, percentile))
    return min(lo, 0.0), max(hi, 0.0)


def clip_recorded_ranges(calibrated: bytes, samples: np.ndarray, percentile: float
                         ) -> tuple[bytes, tuple[ActivationRange, ...]]:
    """Replace every activation range the calibrator recorded (min-max) by the percentile range of the same
    tensor over the same samples; the model input keeps its range, which is the caller's contract.

    `calibrated` is the converter's calibrate-only output: the float model with min/max on each tensor.
    Values come from running it in LiteRT's reference kernels with every tensor kept.
    """
    # heavy native runtimes (importing the schema loads TFLM's): only here, in the converter's worker
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    read_graph(calibrated)  # the one gate for model bytes, the converter's included
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(calibrated, 0))
    graph = model.subgraphs[0]
    targets = [i for i, t in enumerate(graph.tensors)
               if t.quantization is not None and t.quantization.min is not None and i not in set(graph.inputs)]
    with native_quiet():
        interp = Interpreter(model_content=calibrated, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                             experimental_preserve_all_tensors=True, num_threads=1)
        interp.allocate_tensors()
    index = interp.get_input_details()[0]["index"]
    values: dict[int, list[np.ndarray]] = {i: [] for i in targets}
    for sample in samples:
        interp.set_tensor(index, sample[np.newaxis].astype(np.float32))
        interp.invoke()
        for i in targets:
            values[i].append(interp.get_tensor(i).reshape(-1).copy())
    ranges = []
    for i in targets:
        q = graph.tensors[i].quantization
        lo, hi = percentile_range(np.concatenate(values[i]), percentile)
        ranges.append(ActivationRange(graph.tensors[i].name.decode(), (float(q.min[0]), float(q.max[0])), (lo, hi)))
        q.min = np.array([lo], dtype=np.float32)
        q.max = np.array([hi], dtype=np.float32)
    builder = flatbuffers.Builder(len(calibrated) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), tuple(ranges)
