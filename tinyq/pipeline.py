"""The whole chain in one call: quantize -> verify -> emit -> host C engine -> Cortex-M -> report, all or nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import dataclasses

import numpy as np

from .analyze import Analysis
from .data import Dataset, Preprocessing, Task, default_preprocessing, infer_task, preprocess
from .emit import prepare, write_files
from .errors import BuildError, TinyqError
from .models import TfliteModel, input_shape
from .preflight import CEngineMode, PreflightReport, check, preflight_keras, preflight_tflite
from .quantize import QuantizeConfig, QuantizedModel, inspect_tflite, quantize
from .report import CEngineFigures, CortexMFigures, report_dict, write_report
from .verify import VerifyResult, agreement, verify

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PipelineConfig:
    """What to produce: C identifier for the files, quantization, golden vectors, which firmware checks run."""

    name: str = "mnist"
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    golden_count: int = 10
    c_engine: CEngineMode | bool = CEngineMode.AUTO  # True: AUTO, False: OFF
    sanitize: bool = False
    cortex_m: bool = True
    cortex_m_images: int = 1000
    analysis: bool = True
    overwrite: bool = False
    preprocessing: Preprocessing | None = None  # None: raw 0..255 -> 0..1 for uint8 data, else as stored
    task: Task | None = None  # None: from the labels (integer: classification, float: regression, none)

    @property
    def c_engine_mode(self) -> CEngineMode:
        if isinstance(self.c_engine, CEngineMode):
            return self.c_engine
        return CEngineMode.AUTO if self.c_engine else CEngineMode.OFF


@dataclass(frozen=True)
class PipelineResult:
    """Where everything went and what was measured."""

    out_dir: Path
    quantized: QuantizedModel
    verify: VerifyResult
    report: dict
    files: tuple[Path, ...]
    analysis: Analysis | None = None


def run(model, dataset: Dataset, out_dir: str | os.PathLike, config: PipelineConfig = PipelineConfig(),
        progress: Progress | None = None) -> PipelineResult:
    """Run every stage into a temporary folder, then move it to `out_dir`; nothing half-written on error.

    `model` is a Keras model, or a TfliteModel already full-integer (quantization and Keras float skipped)."""
    say = progress or (lambda _msg: None)
    out = check_out_dir(out_dir, config.overwrite)
    pre = config.preprocessing or default_preprocessing(dataset.train_x)
    say(f"preprocessing: {pre.describe()}")
    keras_model = None if isinstance(model, TfliteModel) else model
    shape = input_shape(model) if keras_model is not None else tuple(inspect_tflite(model.tflite, model.name).input.shape[1:])
    calib = preprocess(dataset.train_x, shape, pre)
    report_pre, engine_on = run_preflight(model, calib, config, say)
    task = config.task or infer_task(dataset.test_y, _output_size(model))
    say(f"task: {task.value}")
    if keras_model is None:
        quantized = inspect_tflite(model.tflite, model.name)
    else:
        qconfig = dataclasses.replace(config.quantize, input_range=reference_range(pre, calib, dataset.train_x))
        say(f"quantizing {model.name} ({min(qconfig.num_calibration_samples, len(calib))} calibration samples)")
        labels = dataset.train_y if task is Task.CLASSIFICATION else None
        quantized = quantize(model, calib, qconfig, labels=labels)
    result = verify(keras_model, quantized, dataset.test_x, dataset.test_y, progress=say, preprocessing=pre,
                    task=task)
    notes: list[str] = []
    if report_pre.c_engine_blockers and config.c_engine_mode is CEngineMode.AUTO:
        notes.append("C engine not generated (TFLM files and checks only; --c-engine require makes this an "
                     "error): " + "; ".join(report_pre.c_engine_blockers))
        say(notes[-1])
    names = dataset.class_names if task is Task.CLASSIFICATION else None
    with staged_dir(out) as tmp:
        (tmp / "model_int8.tflite").write_bytes(quantized.tflite)
        save_test_vectors(tmp, result)
        say("emitting firmware files")
        fw = tmp / "firmware"
        emission = prepare(quantized, result, config.name, config.golden_count, engine_on, names, pre,
                           np.asarray(dataset.test_x).dtype == np.uint8)
        files = write_files(list(emission.files), fw)
        rel = [str(p.relative_to(tmp)) for p in files]
        c_fig = None
        if emission.engine is not None:
            c_fig = _host_c_engine(emission.engine, result, fw, tmp / "build", config, say)
        m_fig = None
        if config.cortex_m and emission.engine is not None:
            try:
                m_fig = _cortex_m(fw, tmp / "build", result, config, say)
            except BuildError as exc:
                notes.append(f"Cortex-M4 step not run: {exc}")
                say(f"Cortex-M4 step not run: {exc}")
        analysis = None
        if config.analysis and keras_model is not None:
            analysis = _analysis(model, dataset, quantized, result, tmp, notes, say, pre)
        elif config.analysis:
            notes.append("analysis (report.html) not run: its sweep re-quantizes the Keras model, and this "
                         ".tflite came already quantized")
        report = report_dict(quantized, result, rel, c_fig, m_fig, notes, analysis)
        report.update(run_section(pre, report_pre, config.c_engine_mode, engine_on, names))
        write_report(report, tmp)
        shutil.rmtree(tmp / "build", ignore_errors=True)
    written = tuple(sorted(p for p in out.rglob("*") if p.is_file()))
    return PipelineResult(out, quantized, result, report, written, analysis)


TEST_INPUTS_FILE = "test_inputs_int8.npy"
TFLM_OUTPUTS_FILE = "tflm_outputs_int8.npy"


SAVED_TEST_VECTORS = 1000  # `tinyq firmware` streams 1000 by default


def save_test_vectors(out: Path, result: VerifyResult) -> None:
    """The first int8 test inputs and TFLM's outputs for them, so `tinyq firmware` can check a target
    without the data (and without knowing how it was preprocessed)."""
    n = min(result.test_images, SAVED_TEST_VECTORS)
    np.save(out / TEST_INPUTS_FILE, result.int8_inputs.reshape(result.test_images, -1)[:n])
    np.save(out / TFLM_OUTPUTS_FILE, result.tflm_outputs.reshape(result.test_images, -1)[:n])


def _output_size(model) -> int:
    if isinstance(model, TfliteModel):
        return int(np.prod(inspect_tflite(model.tflite, model.name).output.shape[1:]))
    return int(np.prod(model.outputs[0].shape[1:]))


def reference_range(pre: Preprocessing, calib: np.ndarray, raw: np.ndarray) -> tuple[float, float]:
    """The float input range the calibration audit checks against: what the preprocessing makes of a uint8
    source, else what the calibration data spans."""
    from .data import PreprocessingKind

    if np.asarray(raw).dtype == np.uint8 and pre.kind is not PreprocessingKind.AS_STORED:
        return pre.output_range()
    lo, hi = float(np.min(calib)), float(np.max(calib))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def run_preflight(model, calib: np.ndarray, config: PipelineConfig, say: Progress) -> tuple[PreflightReport, bool]:
    """The pre-flight check on the int8 graph (a quick conversion for a Keras model); raises listing every
    problem that blocks the chain; returns the report and whether the C engine is generated."""
    say("pre-flight check (quick int8 conversion, ops, types, runtimes)")
    if isinstance(model, TfliteModel):
        from .verify import quantize_input

        q = inspect_tflite(model.tflite, model.name)
        report = preflight_tflite(model.tflite, model.name, quantize_input(calib[:1], q.input)[0])
    else:
        report = preflight_keras(model, calib, model.name)
    engine_on = check(report, config.c_engine_mode, f"model {model.name!r}")
    say(f"pre-flight: ops {', '.join(report.ops)}; "
        + ("no problems" if not report.problems else f"{len(report.problems)} problem(s) for the C engine"))
    return report, engine_on


def run_section(pre: Preprocessing, preflight: PreflightReport, mode: CEngineMode, engine_on: bool,
                class_names) -> dict:
    """report.json keys this module adds: preprocessing, pre-flight findings, C engine status, class names."""
    status = "generated" if engine_on else ("off" if mode is CEngineMode.OFF else "blocked")
    return {"preprocessing": pre.as_dict(), "preflight": preflight.as_dict(),
            "c_engine": {"mode": mode.value, "status": status, "blocked_by": list(preflight.c_engine_blockers)},
            "class_names": None if class_names is None else list(class_names)}


@contextlib.contextmanager
def staged_dir(out: Path):
    """A temporary folder beside `out` that replaces it when the block succeeds and vanishes when it fails."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _analysis(model, dataset: Dataset, quantized: QuantizedModel, result: VerifyResult, out: Path,
              notes: list[str], say: Progress, preprocessing: Preprocessing | None = None) -> Analysis | None:
    """The quantization analysis into out/report.html, reusing this run's model and checks; a model the
    analysis cannot take apart leaves a note instead of failing the chain."""
    from .analyze import analyze
    from .report_html import write_html

    try:
        analysis = analyze(model, dataset, quantized, result, progress=say, preprocessing=preprocessing)
    except TinyqError as exc:
        notes.append(f"analysis (report.html) not run: {exc}")
        say(notes[-1])
        return None
    write_html(out / "report.html", analysis)
    return analysis


def check_out_dir(out_dir: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse a non-empty output folder unless told to replace it; checked before any long step."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TinyqError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise TinyqError(f"{out}: exists and is not empty (use --force / overwrite=True to replace it)")
    return out


def _host_c_engine(engine, result: VerifyResult, fw: Path, build: Path, config: PipelineConfig,
                   say: Progress) -> CEngineFigures:
    """Build the stub with the C engine on the host, push the whole test set through it, compare with TFLM."""
    from . import firmware

    say("building the C engine stub on the host")
    exe = firmware.build_stub(fw, build / "host", target="host", backend="c", opt="-O2", sanitize=config.sanitize)
    golden = firmware.run_golden(exe)
    if not golden.passed:
        raise BuildError(f"{exe}: golden vectors failed on the host: {golden.summary}")
    say(f"running {result.test_images} test images through the C engine")
    inputs = result.int8_inputs.reshape(result.test_images, -1)
    outputs = firmware.run_batch(exe, inputs, result.tflm_outputs[0].size)
    return CEngineFigures(
        accuracy=result.score(outputs),
        bitexact_vs_tflm=agreement(outputs, result.tflm_outputs).bitexact,
        images=result.test_images,
        arena_bytes=engine.arena_bytes,
        lower_bound_bytes=engine.lower_bound_bytes,
        const_bytes=engine.const_bytes,
        code_bytes=firmware.code_bytes(exe),
        sanitized=config.sanitize,
    )


def _cortex_m(fw: Path, build: Path, result: VerifyResult, config: PipelineConfig,
              say: Progress) -> CortexMFigures:
    """Cross-compile for the Cortex-M4, run golden vectors and test images in QEMU, measure flash/RAM/instructions."""
    from .cortex_m import check_toolchain, measure_cortex_m

    check_toolchain()
    n = min(config.cortex_m_images, result.test_images)
    say(f"Cortex-M4: cross-compiling and running {n} images in QEMU")
    inputs = result.int8_inputs.reshape(result.test_images, -1)[:n]
    expected = result.tflm_outputs.reshape(result.test_images, -1)[:n]
    return cortex_m_figures(measure_cortex_m(fw, build / "cortex-m4", inputs, expected))


def cortex_m_figures(m) -> CortexMFigures:
    """The report's view of a CortexMResult."""
    return CortexMFigures(m.target, m.flash_bytes, m.ram_bytes, int(m.instructions_per_inference),
                          m.bitexact_images, m.images, m.opt)
