"""`tinyq firmware`: take a folder written by demo/convert to a target, check it against TFLM, measure it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..data import Preprocessing, PreprocessingKind, default_preprocessing, preprocess
from ..engine import Rounding
from ..userdata import load_data
from ..errors import BuildError, TinyqError
from ..native import Workers
from ..outdir import check_manifest, claim, read_json, write_text_atomic
from ..pipeline import TEST_INPUTS_FILE, PipelineConfig, cortex_m_figures
from ..quantize import inspect_tflite
from ..report import target_section
from ..runtimes import run_tflm
from ..verify import quantize_input
from .cortex_m import measure_cortex_m, profile_ops
from .firmware import build_library, run_library
from .registry import get


def run_firmware(out_dir: str | os.PathLike, target: str, data_path: str | None, images: int, opt: str,
                 say: Callable[[str], None], allow_modified: bool = False,
                 workers: Workers | None = None) -> list[tuple[str, str]]:
    """Build DIR/firmware for `target`, run golden vectors and `images` test images, merge figures into report.json.

    The folder is locked for the run and checked against its manifest first: a changed, missing or added file
    is refused, naming it, unless `allow_modified` (then the changes are recorded in report.json). TFLM runs in
    `workers` (their time limit), or in a session of its own."""
    core = get(target)
    if images < 1:
        raise TinyqError(f"--images must be >= 1, got {images}")
    with claim(out_dir, must_exist=True) as held:
        out = held.out
        model_path, fw, report_path = out / "model_int8.tflite", out / "firmware", out / "report.json"
        for p in (model_path, fw / "tinyq_stub.h"):
            if not p.exists():
                raise TinyqError(f"{p}: missing; --out must name a folder written by `tinyq demo` or `tinyq convert`")
        report = read_json(report_path, "the report of `tinyq demo` or `tinyq convert`")
        changes = check_manifest(out)
        if changes and not allow_modified:
            listing = ", ".join(f"{c.name} ({c.change})" for c in changes)
            raise TinyqError(f"{fw}: differs from manifest.json: {listing}; regenerate the folder, or pass "
                             f"--allow-modified to build your edits (recorded in report.json)")
        for c in changes:
            say(f"building a modified file: {c.name} ({c.change})")
        q = inspect_tflite(model_path.read_bytes(), model_path.stem)
        saved = out / TEST_INPUTS_FILE
        if data_path is None and saved.is_file():
            x_all = np.load(saved, allow_pickle=False)
            n = min(images, len(x_all))
            x = x_all[:n].reshape((n,) + tuple(q.input.shape[1:]))
            say(f"{n} int8 test inputs from {saved.name}")
        else:
            ds = load_data(data_path)
            n = min(images, len(ds.test_x))
            pre = _saved_preprocessing(report, ds.test_x)
            x = quantize_input(preprocess(ds.test_x[:n], tuple(q.input.shape[1:]), pre), q.input)
        single = report.get("rounding") == Rounding.SINGLE.value
        with tempfile.TemporaryDirectory(prefix="tinyq_fw_") as tmp:
            expected = _reference_outputs(q, fw, x.reshape(n, -1), single, Path(tmp), say, workers)
            say(f"{target}: cross-compiling ({opt}) and running in QEMU")
            m = measure_cortex_m(fw, Path(tmp) / target, x.reshape(n, -1), expected, opt=opt, progress=say,
                                 target=target, cycles=True)
            k = min(n, PipelineConfig.cortex_m_profile_images)
            say(f"{target}: per-op instruction counts over {k} images (PROFILE=1 build)")
            try:
                profile = profile_ops(fw, Path(tmp) / f"{target}-profile", q.graph, x.reshape(n, -1)[:k],
                                      expected[:k], opt=opt, target=target, progress=say, cycles=True)
            except BuildError as exc:  # e.g. the profile's counters do not fit beside a model in a small RAM
                say(f"{target}: per-op profile not taken: {exc}")
                profile = None
        fig = cortex_m_figures(m, profile)
        section = target_section(fig)
        if changes:
            section["modified_files"] = [{"name": c.name, "change": c.change} for c in changes]
        report[core.report_key] = section
        write_text_atomic(report_path, json.dumps(report, indent=2, sort_keys=True) + "\n")
    rows = [("target", f"{target} (QEMU {opt})"), ("flash", f"{m.flash_bytes} B"), ("RAM", f"{m.ram_bytes} B"),
            ("instructions/inference", str(fig.instructions_per_inference)),
            ("modelled cycles/inference", "no cycle table for this core" if fig.cycles_per_inference is None
             else f"{fig.cycles_per_inference} ({fig.cycle_model})"),
            ("bit-exact with " + ("the single-rounding reference" if single else "TFLM"),
             f"{m.bitexact_images} / {m.images} images"),
            ("per-op instructions, sum", "not measured" if profile is None else
             f"{profile.instructions:.0f} over {len(profile.ops)} kernel calls "
             f"({profile.bitexact_images} / {profile.images} images bit-exact)")]
    if changes:
        rows.append(("modified files (allowed)", ", ".join(f"{c.name} ({c.change})" for c in changes)))
    return rows


def _reference_outputs(q, fw: Path, x: np.ndarray, single: bool, tmp: Path, say,
                       workers: Workers | None = None) -> np.ndarray:
    """What the target must give: TFLM's outputs, or for a folder made with --rounding single (whose golden vectors
    pip TFLM cannot give) the folder's own C engine built on the host, as `tinyq convert` made them."""
    if not single:
        say(f"TFLM reference outputs for {len(x)} test samples")
        return run_tflm(q.tflite, x.reshape((len(x),) + tuple(q.input.shape[1:])), workers).reshape(len(x), -1)
    say(f"single rounding: reference outputs for {len(x)} test samples from the folder's C engine on the host")
    library = build_library(fw, tmp / "host-lib")
    return run_library(library, x, int(np.prod(q.output.shape[1:])), workers)


def _saved_preprocessing(report: dict, samples) -> Preprocessing:
    """The preprocessing the folder was made with (report.json), so --data maps as convert did."""
    section = report.get("preprocessing")
    if not section:
        return default_preprocessing(samples)
    kind = PreprocessingKind(section["kind"])
    if kind is PreprocessingKind.RANGE:
        return Preprocessing.input_range(*section["input_range"])
    if kind is PreprocessingKind.STANDARDIZE:
        return Preprocessing.standardize(section["mean"], section["std"])
    return Preprocessing.as_stored()
