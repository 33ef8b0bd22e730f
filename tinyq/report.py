"""report.json and report.md: every measured figure of one run, under stable key names."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .analyze import most_sensitive
from .render import environment
from .quantize import QuantizedModel
from .targets import TARGETS, get
from .verify import VerifyResult


@dataclass(frozen=True)
class CEngineFigures:
    """The interpreter-free C engine measured on the host over the test set."""

    accuracy: float
    bitexact_vs_tflm: float
    images: int
    arena_bytes: int
    lower_bound_bytes: int
    const_bytes: int
    code_bytes: int
    sanitized: bool
    max_lsb_vs_tflm: int = 0
    argmax_vs_float: float | None = None
    blocks: tuple = ()  # cengine.ArenaBlock: the arena layout over the kernel calls, for report.html
    call_count: int = 0
    scratch_bytes: int = 0  # the largest kernel scratch, planned inside the arena
    optimize: str = "speed"  # the kernel choice: specialised per layer (speed) or generic (size)
    kernels: tuple[tuple[int, str], ...] = ()  # (op index, C kernel) of every kernel call
    rounding: str = "double"  # the requantization rule (engine.Rounding): double as pip TFLM, or single
    bitexact_vs_litert_ref: float | None = None  # share of outputs equal to LiteRT's reference kernels'


@dataclass(frozen=True)
class CortexMFigures:
    """The stub cross-compiled for a Cortex-M and run in QEMU."""

    target: str
    flash_bytes: int
    ram_bytes: int
    instructions_per_inference: int
    bitexact_images: int
    images: int
    opt: str = "-O2"
    flash_split: tuple[tuple[str, int], ...] = ()  # (what, bytes): model constants, engine code, harness parts
    ram_split: tuple[tuple[str, int], ...] = ()  # (what, bytes): arena, engine data and stack, harness parts
    deployment_flash_bytes: int = 0  # model constants + engine code: what a product links of tinyq's
    deployment_ram_bytes: int = 0  # arena (scratch included) + engine static data + stack of one inference
    ops: tuple = ()  # cortex_m.OpCost of every kernel call, from the PROFILE=1 build (empty: not profiled)
    profile_images: int = 0
    profile_bitexact_images: int = 0
    cycles_per_inference: int | None = None  # modelled (targets/cycles), None when the core has no cycle table
    cycle_model: str = ""  # what the cycles model: core and memory

    @property
    def ops_instructions(self) -> float:
        """Sum of the per-op counts, to compare with the unprofiled build's instructions per inference."""
        return sum(o.instructions for o in self.ops)


@dataclass(frozen=True)
class ChainReport:
    """Everything one run measured, for report.html: the model and its checks, and what ran of the rest."""

    quantized: QuantizedModel
    verified: VerifyResult
    c_engine: CEngineFigures | None = None
    cortex_m: CortexMFigures | None = None
    analysis: object | None = None  # analyze.Analysis
    notes: tuple[str, ...] = ()
    fidelity: object | None = None  # diff.QuickDiff: the runtime-pair matrix and first divergent ops


def target_section(fig: CortexMFigures) -> dict:
    """The report.json section of one target (`cortex_m4`), written by `tinyq demo` and `tinyq firmware`."""
    section = {"flash_bytes": fig.flash_bytes, "ram_bytes": fig.ram_bytes,
               "instructions_per_inference": fig.instructions_per_inference,
               "bitexact_images": fig.bitexact_images, "images": fig.images, "opt": fig.opt,
               "flash_split": dict(fig.flash_split), "ram_split": dict(fig.ram_split),
               "deployment": {"flash_bytes": fig.deployment_flash_bytes, "ram_bytes": fig.deployment_ram_bytes}}
    if fig.cycles_per_inference is not None:
        section["cycles_per_inference"] = fig.cycles_per_inference
        section["cycle_model"] = fig.cycle_model
    if fig.ops:
        section["ops"] = [{"op_index": o.op_index, "op": o.op_name, "kernel": o.kernel, "macs": o.macs,
                           "instructions": round(o.instructions, 1),
                           "instructions_per_mac": None if o.macs == 0 else round(o.instructions_per_mac, 3),
                           **({} if o.cycles is None else {
                               "cycles": round(o.cycles, 1),
                               "cycles_per_mac": None if o.macs == 0 else round(o.cycles_per_mac, 3)})}
                          for o in fig.ops]
        section["ops_profile"] = {"images": fig.profile_images, "bitexact_images": fig.profile_bitexact_images,
                                  "instructions_sum": round(fig.ops_instructions, 1),
                                  "sum_vs_instructions_per_inference": round(
                                      fig.ops_instructions / fig.instructions_per_inference, 6)}
    return section


def report_dict(quantized: QuantizedModel, result: VerifyResult, files: list[str] | None = None,
                c_engine: CEngineFigures | None = None, cortex_m: CortexMFigures | None = None,
                notes: list[str] | None = None, analysis=None) -> dict:
    """The nested report with the key names the issues fixed (`model.sha256` is report['model']['sha256'])."""
    a = result.tflm_vs_litert_ref
    report = {
        "tinyq_version": __version__,
        "model": {"name": quantized.name, "sha256": quantized.sha256, "params": result.params,
                  "macs": result.macs},
        "test_images": result.test_images,
        "task": result.task.value,
        "metric": {"name": result.metric_name, "keras_float": result.keras_float,
                   "litert_ref_int8": _finite(result.litert_ref_int8), "litert_int8": _finite(result.litert_int8),
                   "tflm_int8": result.tflm_int8},
        "agreement": {"tflm_vs_litert_ref_bitexact": _finite(a.bitexact), "tflm_vs_litert_ref_max_lsb": a.max_lsb,
                      "tflm_vs_litert_ref_argmax": _finite(a.argmax)},
        "sizes": {"float_tflite_bytes": result.float_tflite_bytes or None, "int8_tflite_bytes": result.int8_tflite_bytes},
        "arena_bytes": {"tflm": result.tflm_arena_bytes},
        "ops": list(quantized.op_names),
        "quantization": {
            "calibration_samples": len(quantized.calibration_indices),
            "balanced": quantized.config.balanced,
            "granularity": quantized.config.granularity.value,
            "calibration_method": quantized.config.calibration_method,
            "audit_warnings": [f.message for f in quantized.audit.warnings] if quantized.audit else [],
            "input": {"scale": quantized.input.scale, "zero_point": quantized.input.zero_point},
            "output": {"scale": quantized.output.scale, "zero_point": quantized.output.zero_point},
        },
        "notes": list(notes or []),
    }
    if result.task.value == "classification":
        report["accuracy"] = {k: v for k, v in report["metric"].items() if k != "name"}
        report["per_class_accuracy"] = {"keras_float": list(result.per_class_float),
                                        "tflm_int8": list(result.per_class_tflm)}
    if result.output_error is not None:
        e = result.output_error
        report["output_error"] = {"tflm_int8_vs_keras_float_mse": e.mse,
                                  "tflm_int8_vs_keras_float_sqnr_db": _finite(e.sqnr_db)}
    if files is not None:
        report["emit"] = {"files": list(files)}
    if c_engine is not None:
        report["metric"]["c_int8"] = c_engine.accuracy
        if "accuracy" in report:
            report["accuracy"]["c_int8"] = c_engine.accuracy
        report["agreement"]["c_vs_tflm_bitexact"] = c_engine.bitexact_vs_tflm
        report["agreement"]["c_vs_tflm_images"] = c_engine.images
        report["agreement"]["c_vs_litert_ref_bitexact"] = c_engine.bitexact_vs_litert_ref
        report["rounding"] = c_engine.rounding
        report["arena_bytes"]["c"] = c_engine.arena_bytes
        report["arena_bytes"]["lower_bound"] = c_engine.lower_bound_bytes
        report["arena_bytes"]["c_scratch"] = c_engine.scratch_bytes
        report["flash_bytes"] = {"c_weights": c_engine.const_bytes, "c_code": c_engine.code_bytes}
    if cortex_m is not None:
        report[get(cortex_m.target).report_key] = target_section(cortex_m)
    if analysis is not None:
        report["analysis"] = analysis_section(analysis)
    return report


def analysis_section(analysis) -> dict:
    """report.json's pointer to report.html, with the sweep and the most sensitive layers in numbers (no
    timings, so the same model and data give the same report)."""
    return {
        "html": "report.html",
        "sweep": [{"setting": r.label, "accuracy": r.accuracy, "model_bytes": r.model_bytes,
                   "tflm_arena_bytes": r.tflm_arena_bytes, "tflm_runs": r.tflm_runs, "measured_in": r.runtime,
                   "note": r.note} for r in analysis.sweep],
        "most_sensitive_layers": [{"layer": e.layer, "sqnr_db": round(e.sqnr_db, 2)}
                                  for e in most_sensitive(analysis.layers)],
    }


def write_report(report: dict, out_dir: str | Path) -> list[Path]:
    """Write report.json (sorted keys, stable) and report.md (rendered from templates/report.md.j2)."""
    out = Path(out_dir)
    json_path = out / "report.json"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    md_path = out / "report.md"
    md_path.write_text(environment().get_template("report.md.j2").render(
        r=report, pct=_pct, metric=lambda v: metric_text(report, v), targets=measured_targets(report)))
    return [json_path, md_path]


def measured_targets(report: dict) -> list[tuple[str, str]]:
    """(report.json key, title) of every registry target the report has a section for, in registry order."""
    return [(t.report_key, t.title) for t in TARGETS.values() if t.report_key in report]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100.0 * value:.2f} %"


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: the NaN figures of a runtime that crashed (see the report's notes) and an
    SQNR of +inf (identical outputs) are written as null."""
    return value if value is not None and value == value and abs(value) != float("inf") else None


def metric_text(report: dict, value: float | None) -> str:
    """A task metric as the report prints it: a percentage for accuracy, else the number, or n/a."""
    if value is None:
        return "n/a"
    return _pct(value) if report.get("task", "classification") == "classification" else f"{value:.6g}"


def summary_rows(report: dict) -> list[tuple[str, str]]:
    """The few lines a person reads first, as (label, value) pairs for the CLI table."""
    acc, agr, ar = report["metric"], report["agreement"], report["arena_bytes"]
    name = acc["name"]
    rows = [
        ("model", f"{report['model']['name']} ({report['model']['params']} params, {report['model']['macs']} MACs)"),
        ("test images", str(report["test_images"])),
        ("task / metric", f"{report['task']} / {name}"),
        (f"Keras float {name}", metric_text(report, acc["keras_float"])),
        ("LiteRT int8 (reference kernels)", metric_text(report, acc["litert_ref_int8"])),
        ("LiteRT int8 (default kernels)", metric_text(report, acc["litert_int8"])),
        ("TFLM int8", metric_text(report, acc["tflm_int8"])),
        ("TFLM vs LiteRT-ref bit-exact", f"{_pct(agr['tflm_vs_litert_ref_bitexact'])}"
                                         f" (max {agr['tflm_vs_litert_ref_max_lsb']} LSB)"),
        (".tflite float / int8", f"{report['sizes']['float_tflite_bytes'] or 'n/a'} / {report['sizes']['int8_tflite_bytes']} B"),
        ("TFLM arena", f"{ar['tflm']} B"),
    ]
    if report.get("task", "classification") == "classification":
        rows.insert(rows.index(next(r for r in rows if r[0] == "TFLM vs LiteRT-ref bit-exact")) + 1,
                    ("TFLM vs LiteRT-ref argmax", _pct(agr["tflm_vs_litert_ref_argmax"])))
    if "output_error" in report:
        e = report["output_error"]
        sqnr = "inf" if e["tflm_int8_vs_keras_float_sqnr_db"] is None else f"{e['tflm_int8_vs_keras_float_sqnr_db']:.1f}"
        rows.insert(7, ("TFLM int8 vs float output", f"MSE {e['tflm_int8_vs_keras_float_mse']:.6g}, SQNR {sqnr} dB"))
    if "c_engine" in report and report["c_engine"]["status"] != "generated":
        rows.append(("C engine", report["c_engine"]["status"] + (
            ": " + "; ".join(report["c_engine"]["blocked_by"]) if report["c_engine"]["blocked_by"] else "")))
    if "c_int8" in acc:
        rows += [("C engine int8", metric_text(report, acc["c_int8"])),
                 ("C engine vs TFLM bit-exact", _pct(agr["c_vs_tflm_bitexact"])),
                 ("C engine arena / lower bound", f"{ar['c']} / {ar['lower_bound']} B"),
                 ("C engine weights / code", f"{report['flash_bytes']['c_weights']} / "
                                             f"{report['flash_bytes']['c_code']} B")]
    if "analysis" in report:
        rows.append(("most sensitive layers", ", ".join(f"{e['layer']} ({e['sqnr_db']:.1f} dB)"
                                                        for e in report["analysis"]["most_sensitive_layers"])))
    for key, title in measured_targets(report):
        m = report[key]
        rows += [(f"{title} flash / RAM", f"{m['flash_bytes']} / {m['ram_bytes']} B")]
        if "deployment" in m:
            rows.append((f"{title} deployment flash / RAM", f"{m['deployment']['flash_bytes']} / "
                                                            f"{m['deployment']['ram_bytes']} B"))
        rows += [
                 (f"{title} instructions/inference", str(m["instructions_per_inference"])),
                 *([(f"{title} modelled cycles/inference", f"{m['cycles_per_inference']} ({m['cycle_model']})")]
                   if "cycles_per_inference" in m else []),
                 (f"{title} bit-exact (QEMU)", f"{m['bitexact_images']} / {m['images']}")]
    return rows
