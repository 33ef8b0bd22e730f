"""Pre-flight: right after loading, before any long step, every reason the chain would fail, at once."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

import numpy as np

from .engine import Graph, lower, read_graph, tflm_method
from .native import Runtime, Workers, session
from .quantize import QuantizeConfig, inspect_tflite, quick_int8
from .runtimes import tflm_problem
from .verify import quantize_input
from .errors import NativeTimeout, TinyqError, UnsupportedOpError


class ProblemKind(enum.Enum):
    """What a pre-flight problem blocks."""

    C_ENGINE_OP = "c_engine_op"  # only the C engine: TFLM files and checks still come out
    TFLM_OP = "tflm_op"
    FLOAT_TENSOR = "float_tensor"
    IO_TYPE = "io_type"
    IO_COUNT = "io_count"


class CEngineMode(enum.Enum):
    """What to do with tinyq's C engine: required (an unsupported op is an error), where it can (auto), off."""

    REQUIRE = "require"
    AUTO = "auto"
    OFF = "off"


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    message: str

    @property
    def blocks_everything(self) -> bool:
        return self.kind is not ProblemKind.C_ENGINE_OP


@dataclass(frozen=True)
class PreflightReport:
    """The int8 graph's ops and every problem found."""

    ops: tuple[str, ...]
    problems: tuple[Problem, ...]

    @property
    def c_engine_blockers(self) -> tuple[str, ...]:
        return tuple(p.message for p in self.problems if p.kind is ProblemKind.C_ENGINE_OP)

    @property
    def fatal(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.blocks_everything)

    def as_dict(self) -> dict:
        """report.json's view."""
        return {"ops": list(self.ops), "problems": [{"kind": p.kind.value, "message": p.message}
                                                     for p in self.problems]}


class PreflightError(TinyqError):
    """The model cannot go through the chain; the message lists every problem found."""


def check(report: PreflightReport, mode: CEngineMode, what: str) -> bool:
    """Raise when anything but the C engine is blocked (or the C engine too, if required); return whether
    the C engine is generated."""
    fatal = list(report.fatal)
    if mode is CEngineMode.REQUIRE:
        fatal += [p for p in report.problems if p.kind is ProblemKind.C_ENGINE_OP]
    if fatal:
        lines = "; ".join(f"[{p.kind.value}] {p.message}" for p in report.problems)
        raise PreflightError(f"{what}: pre-flight found {len(report.problems)} problem(s): {lines}")
    return mode is not CEngineMode.OFF and not report.c_engine_blockers


def _io_details(tflite: bytes) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """In the LiteRT worker: (name, dtype) of the model's inputs and of its outputs."""
    from ai_edge_litert.interpreter import Interpreter  # heavy native runtime: LiteRT's worker only

    interp = Interpreter(model_content=tflite)
    return tuple([(d["name"], np.dtype(d["dtype"]).name) for d in details]
                 for details in (interp.get_input_details(), interp.get_output_details()))


def preflight_tflite(tflite: bytes, name: str, sample: np.ndarray | None = None,
                     graph: Graph | None = None, workers: Workers | None = None) -> PreflightReport:
    """Problems of an int8 .tflite: I/O count and types, float or hybrid tensors, ops TFLM lacks (and, given
    one int8 `sample`, whether TFLM allocates and invokes it), ops the C engine lacks. `graph`: the Graph already
    read from these bytes, if any. LiteRT and TFLM run in `workers` (a fresh session if None)."""
    if graph is None:
        graph = read_graph(tflite)  # the one gate: no runtime sees bytes the reader has not accepted
    with session(workers) as w:
        return _preflight_tflite(tflite, name, sample, graph, w)


def _preflight_tflite(tflite: bytes, name: str, sample: np.ndarray | None, graph: Graph,
                      workers: Workers) -> PreflightReport:
    problems: list[Problem] = []
    try:
        ins, outs = workers.call(Runtime.LITERT, f"loading model {name!r} for pre-flight", _io_details, tflite,
                                 inputs=1)
    except NativeTimeout:
        raise
    except Exception as exc:  # noqa: BLE001 - LiteRT's refusal or its crash is the finding
        return PreflightReport((), (Problem(ProblemKind.TFLM_OP, f"LiteRT cannot load the .tflite: {exc}"),))
    if len(ins) != 1 or len(outs) != 1:
        problems.append(Problem(ProblemKind.IO_COUNT, f"{len(ins)} inputs {[n for n, _ in ins]} and "
                                f"{len(outs)} outputs {[n for n, _ in outs]}; exactly one of each is supported"))
    for role, details in (("input", ins), ("output", outs)):
        for tensor, dtype in details:
            if dtype != "int8":
                problems.append(Problem(ProblemKind.IO_TYPE, f"{role} {tensor!r} is {dtype}; the device path "
                                        f"needs int8 I/O (convert with inference_input/output_type int8)"))
    try:
        inspect_tflite(tflite, name, graph=graph, workers=workers)
    except NativeTimeout:
        raise
    except TinyqError as exc:
        problems.append(Problem(ProblemKind.FLOAT_TENSOR, str(exc)))
    for op in graph.operators:
        if tflm_method(op.code) is None:
            problems.append(Problem(ProblemKind.TFLM_OP, f"{graph.where(op)}: TFLM's MicroMutableOpResolver has "
                                    f"no Add method for it"))
    if sample is not None and not any(p.kind in (ProblemKind.TFLM_OP, ProblemKind.IO_COUNT) for p in problems):
        why = tflm_problem(tflite, sample, workers)
        if why is not None:
            problems.append(Problem(ProblemKind.TFLM_OP, f"TFLM cannot run the model: {why}"))
    problems += [Problem(ProblemKind.C_ENGINE_OP, m) for m in c_engine_problems(graph)]
    return PreflightReport(tuple(dict.fromkeys(op.name for op in graph.operators)), tuple(problems))


def c_engine_problems(graph) -> list[str]:
    """Why the C engine cannot lower each op it cannot, one op at a time so every one is listed."""
    found = []
    try:
        lower(graph)
        return found
    except UnsupportedOpError:
        pass
    for op in graph.operators:
        try:
            lower(dataclasses.replace(graph, operators=(op,)))
        except UnsupportedOpError as exc:
            found.append(str(exc))
    return found


def preflight_keras(model, samples: np.ndarray, name: str, count: int = 8,
                    workers: Workers | None = None) -> PreflightReport:
    """Quantize quickly on the first `count` preprocessed samples (in the converter's worker) and check the int8
    graph that results: the ops, and so the problems, are those of the full conversion (only the ranges
    differ). A converter crash raises NativeCrash naming the model."""
    x = np.asarray(samples[:count], np.float32)
    lo, hi = float(x.min()), float(x.max())
    config = QuantizeConfig(num_calibration_samples=len(x), input_range=(lo, hi if hi > lo else lo + 1.0))
    with session(workers) as w:
        tflite = quick_int8(model, x, config, f"pre-flight int8 conversion of model {name!r}", w)
        graph = read_graph(tflite)
        sample = None
        try:
            q = inspect_tflite(tflite, name, graph=graph, workers=w)
            sample = quantize_input(x[:1], q.input)[0]
        except NativeTimeout:
            raise
        except TinyqError:
            pass
        return preflight_tflite(tflite, name, sample, graph, w)
