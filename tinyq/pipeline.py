"""The whole chain in one call: quantize -> verify -> emit -> host C engine -> Cortex-M -> report, all or nothing."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import dataclasses

import numpy as np

from .analyze import Analysis, analyze
from .data import Dataset, Preprocessing, Task, default_preprocessing, infer_task, preprocess, reference_range
from .diff import Runtime as DiffRuntime, quick_diff, quick_note, write_diff_json
from .emit import prepare
from .render import write_into
from .errors import BuildError, TinyqError
from .findings import Findings, diagnose
from .engine import Graph, Optimize, Rounding
from .models import TfliteModel, input_shape
from .native import Runtime, Workers, session
from .outdir import Claim, check_folder, claimed
from .preflight import CEngineMode, PreflightReport, check, preflight_keras, preflight_tflite
from .quantize import QuantizeConfig, QuantizedModel, quantize
from .report import CEngineFigures, ChainReport, CortexMFigures, report_dict, write_report
from .report_html import write_html
from .verify import VerifyResult, agreement, quantize_input, verify
from .targets import firmware
from .targets.cortex_m import check_toolchain, measure_cortex_m, profile_ops

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
    cortex_m_profile_images: int = 100  # inputs through the PROFILE=1 build for per-op counts (0: not profiled)
    analysis: bool = True
    overwrite: bool = False
    preprocessing: Preprocessing | None = None  # None: raw 0..255 -> 0..1 for uint8 data, else as stored
    task: Task | None = None  # None: from the labels (integer: classification, float: regression, none)
    optimize: Optimize = Optimize.SPEED  # the C engine's kernels: specialised per layer, or generic (size)
    rounding: Rounding = Rounding.DOUBLE  # the requantization rule of the C engine and golden vectors (SINGLE:
    # TFLITE_SINGLE_ROUNDING's, golden outputs from the host C engine built so, since pip TFLM rounds twice)
    timeout: float | None = None  # seconds each native call may take when run() starts the workers (None: per call,
    # native.default_limit of the model's size and inputs); a caller's `workers` carry their own

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
    findings: Findings = Findings()


def run(model, dataset: Dataset, out_dir: str | os.PathLike | Claim, config: PipelineConfig = PipelineConfig(),
        progress: Progress | None = None, workers: Workers | None = None) -> PipelineResult:
    """Run every stage into a staging folder, then swap it in as `out_dir`; nothing half-written on error,
    interrupt or kill. `out_dir` may be a Claim the caller took right after parsing its arguments, `workers`
    the caller's native-runtime workers (else one per runtime for this run). `model` is a Keras model, or a
    TfliteModel already full-integer (quantization and Keras float skipped)."""
    with claimed(out_dir, config.overwrite) as held, session(workers, config.timeout) as w:
        return _run(model, dataset, held, config, progress or (lambda _msg: None), w)


def _run(model, dataset: Dataset, held: Claim, config: PipelineConfig, say: Progress,
         workers: Workers) -> PipelineResult:
    out = held.out
    pre = config.preprocessing or default_preprocessing(dataset.train_x)
    say(f"preprocessing: {pre.describe()}")
    keras_model = None if isinstance(model, TfliteModel) else model
    shape = (input_shape(model) if keras_model is not None else tuple(model.quantized.input.shape[1:]))
    calib = preprocess(dataset.train_x, shape, pre)
    report_pre, engine_on = run_preflight(model, calib, config, say, workers)
    task = config.task or infer_task(dataset.test_y, _output_size(model))
    say(f"task: {task.value}")
    if keras_model is None:
        quantized = model.quantized
    else:
        qconfig = dataclasses.replace(config.quantize, input_range=reference_range(pre, calib, dataset.train_x))
        say(f"quantizing {model.name} ({min(qconfig.num_calibration_samples, len(calib))} calibration samples)")
        labels = dataset.train_y if task is Task.CLASSIFICATION else None
        quantized = quantize(model, calib, qconfig, labels=labels, workers=workers)
    result = verify(keras_model, quantized, dataset.test_x, dataset.test_y, progress=say, preprocessing=pre,
                    task=task, workers=workers)
    notes: list[str] = list(result.crashes)
    if report_pre.c_engine_blockers and config.c_engine_mode is CEngineMode.AUTO:
        notes.append("C engine not generated (TFLM files and checks only; --c-engine require makes this an "
                     "error): " + "; ".join(report_pre.c_engine_blockers))
        say(notes[-1])
    names = dataset.class_names if task is Task.CLASSIFICATION else None
    rounding = Rounding(config.rounding)
    if rounding is Rounding.SINGLE and not engine_on:
        raise TinyqError("--rounding single needs the C engine (its golden vectors come from the C engine built "
                         "with single rounding; pip TFLM rounds twice), which is "
                         + ("off" if config.c_engine_mode is CEngineMode.OFF else
                            "blocked: " + "; ".join(report_pre.c_engine_blockers)))
    with held.staged() as tmp:
        (tmp / "model_int8.tflite").write_bytes(quantized.tflite)
        save_test_vectors(tmp, result)
        uint8_source = np.asarray(dataset.test_x).dtype == np.uint8
        expected = None
        if rounding is Rounding.SINGLE:
            expected = _single_rounding_outputs(quantized, result, config, tmp / "build" / "single", say,
                                                workers.timeout)
        say("emitting firmware files")
        fw = tmp / "firmware"
        emission = prepare(quantized, result, config.name, config.golden_count, engine_on, names, pre,
                           uint8_source, config.optimize, rounding, expected)
        files = write_into(list(emission.files), fw)
        rel = [str(p.relative_to(tmp)) for p in files]
        c_fig = None
        if emission.engine is not None:
            c_fig = _host_c_engine(emission.engine, result, fw, tmp / "build", config, say, workers.timeout)
        m_fig = None
        if config.cortex_m and emission.engine is not None:
            try:
                m_fig = _cortex_m(fw, tmp / "build", result, config, say, quantized.graph, expected)
            except BuildError as exc:
                notes.append(f"Cortex-M4 step not run: {exc}")
                say(f"Cortex-M4 step not run: {exc}")
        fidelity = _quick_diff(quantized, result, fw if emission.engine is not None else None, c_fig, tmp, notes, say,
                               workers)
        analysis = None
        if config.analysis and keras_model is not None:
            analysis = _analysis(model, dataset, quantized, result, notes, say, pre, workers)
        elif config.analysis:
            notes.append("analysis (report.html) not run: its sweep re-quantizes the Keras model, and this "
                         ".tflite came already quantized")
        findings = diagnose(keras_model, dataset, quantized, result, analysis, pre, workers)
        report = report_dict(quantized, result, rel, c_fig, m_fig, notes, analysis)
        report["findings"] = findings.as_dict()
        report.update(run_section(pre, report_pre, config.c_engine_mode, engine_on, names, emission.engine))
        write_report(report, tmp)
        write_html(tmp / "report.html",
                   ChainReport(quantized, result, c_fig, m_fig, analysis, tuple(notes), fidelity))
        shutil.rmtree(tmp / "build", ignore_errors=True)
    written = tuple(sorted(p for p in out.rglob("*") if p.is_file()))
    return PipelineResult(out, quantized, result, report, written, analysis, findings)


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
        return int(np.prod(model.quantized.output.shape[1:]))
    return int(np.prod(model.outputs[0].shape[1:]))


def run_preflight(model, calib: np.ndarray, config: PipelineConfig, say: Progress,
                  workers: Workers | None = None) -> tuple[PreflightReport, bool]:
    """The pre-flight check on the int8 graph (a quick conversion for a Keras model), every native call in
    `workers`; raises listing every problem that blocks the chain; returns the report and whether the C engine
    is generated."""
    say("pre-flight check (quick int8 conversion, ops, types, runtimes)")
    if isinstance(model, TfliteModel):
        q = model.quantized
        report = preflight_tflite(model.tflite, model.name, quantize_input(calib[:1], q.input)[0], q.graph,
                                  workers)
    else:
        report = preflight_keras(model, calib, model.name, workers=workers)
    engine_on = check(report, config.c_engine_mode, f"model {model.name!r}")
    say(f"pre-flight: ops {', '.join(report.ops)}; "
        + ("no problems" if not report.problems else f"{len(report.problems)} problem(s) for the C engine"))
    return report, engine_on


def run_section(pre: Preprocessing, preflight: PreflightReport, mode: CEngineMode, engine_on: bool,
                class_names, engine=None) -> dict:
    """report.json keys this module adds: preprocessing, pre-flight findings, C engine status and the kernel
    chosen for each op (with the scratch they take in the arena), class names."""
    status = "generated" if engine_on else ("off" if mode is CEngineMode.OFF else "blocked")
    c_engine = {"mode": mode.value, "status": status, "blocked_by": list(preflight.c_engine_blockers)}
    if engine is not None:
        c_engine.update(optimize=engine.optimize.value, rounding=engine.rounding.value,
                        scratch_bytes=engine.scratch_bytes,
                        kernels=[{"op_index": op, "kernel": kernel} for op, kernel in engine.kernels])
    return {"preprocessing": pre.as_dict(), "preflight": preflight.as_dict(), "c_engine": c_engine,
            "class_names": None if class_names is None else list(class_names)}


def _analysis(model, dataset: Dataset, quantized: QuantizedModel, result: VerifyResult, notes: list[str],
              say: Progress, preprocessing: Preprocessing | None = None,
              workers: Workers | None = None) -> Analysis | None:
    """The quantization analysis for report.html, reusing this run's model and checks; a model the analysis
    cannot take apart leaves a note instead of failing the chain."""
    try:
        return analyze(model, dataset, quantized, result, progress=say, preprocessing=preprocessing,
                       workers=workers)
    except TinyqError as exc:
        notes.append(f"analysis (report.html) not run: {exc}")
        say(notes[-1])
        return None


def _quick_diff(quantized: QuantizedModel, result: VerifyResult, fw: Path | None, c_fig, out: Path,
                notes: list[str], say: Progress, workers: Workers | None = None):
    """The cheap `tinyq diff`: when any pair of runtimes disagrees, the first divergent op of the first
    disagreeing inputs into out/diff.json and a note; the pair matrix for report.html either way."""
    finals = {DiffRuntime.LITERT_REF: result.litert_ref_outputs, DiffRuntime.LITERT: result.litert_outputs,
              DiffRuntime.TFLM: result.tflm_outputs}
    try:
        quick = quick_diff(quantized.tflite, result.int8_inputs, finals, fw,
                           c_fig is None or c_fig.bitexact_vs_tflm == 1.0, out / "build", progress=say,
                           graph=quantized.graph, workers=workers)
    except TinyqError as exc:
        notes.append(f"diff (first divergent op) not run: {exc}")
        say(notes[-1])
        return None
    note = quick_note(quick)
    if note is not None:
        write_diff_json(quick, out / "diff.json")
        notes.append(note)
        say(note)
    return quick


def check_out_dir(out_dir: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse a non-empty output folder unless told to replace it (the lock and the other checks: outdir.claim)."""
    out = Path(out_dir)
    check_folder(out, overwrite)
    return out


def _host_c_engine(engine, result: VerifyResult, fw: Path, build: Path, config: PipelineConfig,
                   say: Progress, timeout: float | None = None) -> CEngineFigures:
    """Build the stub with the C engine on the host and run its golden vectors (what a user builds), push the whole
    test set through the engine (its -O3 library in worker processes; the sanitized stub under --sanitize) and
    compare with TFLM."""
    inputs = result.int8_inputs.reshape(result.test_images, -1)
    with Workers(timeout) as workers, ThreadPoolExecutor(1) as pool:  # the run's time limit, its own slots
        library = None
        if not config.sanitize:  # the library and its workers get ready while the stub builds
            workers.prepare(Runtime.C_ENGINE, slots=firmware.LIBRARY_JOBS)
            library = pool.submit(firmware.build_library, fw, build / "host-lib")
        say("building the C engine stub on the host")
        exe = firmware.build_stub(fw, build / "host", target="host", backend="c", opt="-O2",
                                  sanitize=config.sanitize)
        golden = firmware.run_golden(exe)
        if not golden.passed:
            raise BuildError(f"{exe}: golden vectors failed on the host: {golden.summary}")
        if library is None:
            say(f"running {result.test_images} test images through the sanitized C engine stub")
            outputs = firmware.run_batch(exe, inputs, result.tflm_outputs[0].size)
        else:
            say(f"running {result.test_images} test images through the C engine (-O3 library)")
            outputs = firmware.run_library(library.result(), inputs, result.tflm_outputs[0].size, workers)
    vs_tflm = agreement(outputs, result.tflm_outputs)
    vs_ref = agreement(outputs, result.litert_ref_outputs)
    float_pred = (None if result.float_outputs is None
                  else result.float_outputs.reshape(result.test_images, -1).argmax(axis=1))
    return CEngineFigures(
        accuracy=result.score(outputs),
        bitexact_vs_tflm=vs_tflm.bitexact,
        images=result.test_images,
        arena_bytes=engine.arena_bytes,
        lower_bound_bytes=engine.lower_bound_bytes,
        const_bytes=engine.const_bytes,
        code_bytes=firmware.code_bytes(exe),
        sanitized=config.sanitize,
        max_lsb_vs_tflm=vs_tflm.max_lsb,
        argmax_vs_float=(None if float_pred is None
                         else float((outputs.reshape(len(outputs), -1).argmax(axis=1) == float_pred).mean())),
        blocks=engine.blocks,
        call_count=engine.call_count,
        scratch_bytes=engine.scratch_bytes,
        optimize=engine.optimize.value,
        kernels=engine.kernels,
        rounding=engine.rounding.value,
        bitexact_vs_litert_ref=vs_ref.bitexact,
    )


def _single_rounding_outputs(quantized: QuantizedModel, result: VerifyResult, config: PipelineConfig, build: Path,
                             say: Progress, timeout: float | None = None) -> np.ndarray:
    """Every test input's outputs from the C engine built on the host with single rounding (its -O3 library): the
    golden and expected outputs of a single-rounding build, which pip TFLM (double rounding) cannot give. The
    engine's kernels are checked against the exact integer model in tinyq's tests, and the run's outputs against
    LiteRT's reference kernels in the report."""
    say("single rounding: running the test set through the C engine built with TQ_SINGLE_ROUNDING (golden outputs)")
    emission = prepare(quantized, result, config.name, 1, True, None, None, False, config.optimize,
                       Rounding.SINGLE, result.tflm_outputs)
    fw = build / "firmware"
    build.mkdir(parents=True, exist_ok=True)
    write_into(list(emission.files), fw)
    inputs = result.int8_inputs.reshape(result.test_images, -1)
    with Workers(timeout) as workers:
        library = firmware.build_library(fw, build / "host-lib")
        return firmware.run_library(library, inputs, result.tflm_outputs[0].size, workers)


def _cortex_m(fw: Path, build: Path, result: VerifyResult, config: PipelineConfig, say: Progress,
              graph: Graph, golden: np.ndarray | None = None) -> CortexMFigures:
    """Cross-compile for the Cortex-M4, run golden vectors and test images in QEMU, measure flash/RAM/instructions;
    then per-op instructions from a second, profiled build over the first `cortex_m_profile_images` inputs. The
    outputs are compared with TFLM's, or with `golden` (the single-rounding reference) when given."""
    check_toolchain()
    n = min(config.cortex_m_images, result.test_images)
    say(f"Cortex-M4: cross-compiling and running {n} images in QEMU")
    inputs = result.int8_inputs.reshape(result.test_images, -1)
    expected = (result.tflm_outputs if golden is None else golden).reshape(result.test_images, -1)
    measured = measure_cortex_m(fw, build / "cortex-m4", inputs[:n], expected[:n], progress=say, cycles=True)
    k = min(config.cortex_m_profile_images, result.test_images)
    if k < 1:
        return cortex_m_figures(measured)
    say(f"Cortex-M4: per-op instruction counts over {k} images (PROFILE=1 build)")
    profile = profile_ops(fw, build / "cortex-m4-profile", graph, inputs[:k], expected[:k], progress=say,
                          cycles=True)
    return cortex_m_figures(measured, profile)


def cortex_m_figures(m, profile=None) -> CortexMFigures:
    """The report's view of a CortexMResult, with the per-op counts of a cortex_m.OpProfile if one was taken."""
    f, r = m.flash, m.ram
    return CortexMFigures(m.target, m.flash_bytes, m.ram_bytes, int(m.instructions_per_inference),
                          m.bitexact_images, m.images, m.opt,
                          flash_split=(("model constants", f.model_constants), ("engine code", f.engine_code),
                                       ("golden vectors (test harness)", f.golden_vectors),
                                       ("stub main and I/O (test harness)", f.harness_code),
                                       ("start-up, board, semihosting, libc (test harness)", f.startup_libc)),
                          ram_split=(("engine arena (kernel scratch included)", r.arena),
                                     ("engine static data", r.engine_static),
                                     ("engine stack during one inference", r.stack_invoke),
                                     ("stub buffers, board, newlib static data (test harness)", r.harness_static),
                                     ("heap, stdio (test harness)", r.heap),
                                     ("stack of main and printf beyond the inference (test harness)",
                                      r.stack_peak - r.stack_invoke)),
                          deployment_flash_bytes=f.deployment, deployment_ram_bytes=r.deployment,
                          ops=profile.ops if profile else (), profile_images=profile.images if profile else 0,
                          profile_bitexact_images=profile.bitexact_images if profile else 0,
                          cycles_per_inference=(None if m.cycles is None else round(m.cycles.cycles_per_call)),
                          cycle_model=(f"{m.cycles.core} timing table, zero-wait memory, over the {m.cycles.calls} "
                                       f"golden vectors" if m.cycles else ""))
