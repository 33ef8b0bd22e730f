"""`tinyq firmware`: take a folder written by demo/convert to a target, check it against TFLM, measure it."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .cortex_m import measure_cortex_m
from .data import load_mnist, preprocess
from .errors import TinyqError
from .outdir import claim, write_text_atomic
from .pipeline import cortex_m_figures
from .quantize import inspect_tflite
from .report import target_section
from .verify import quantize_input, run_tflm


@dataclass(frozen=True)
class FileChange:
    """A file of the emitted firmware folder that differs from manifest.json: changed, missing or added."""

    name: str
    change: str


def check_manifest(out: Path) -> tuple[FileChange, ...]:
    """Every file of OUT/firmware and OUT/model_int8.tflite against firmware/manifest.json (sha256); the
    differences, empty when the folder is as tinyq wrote it. A missing or unreadable manifest raises."""
    fw = out / "firmware"
    manifest = _read_json(fw / "manifest.json", "the manifest of the generated files")
    try:
        listed = {str(f["name"]): str(f["sha256"]) for f in manifest["files"]}
        listed["../model_int8.tflite"] = str(manifest["model"]["sha256"])
    except (KeyError, TypeError) as exc:
        raise TinyqError(f"{fw / 'manifest.json'}: not a tinyq manifest (no {exc} entry)") from exc
    changes = []
    for name, digest in sorted(listed.items()):
        path = (fw / name).resolve()
        if not path.is_file():
            changes.append(FileChange(name, "missing"))
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            changes.append(FileChange(name, "changed"))
    present = {p.relative_to(fw).as_posix() for p in fw.rglob("*") if p.is_file()}
    for name in sorted(present - set(listed) - {"manifest.json"}):
        changes.append(FileChange(name, "added"))
    return tuple(changes)


def _read_json(path: Path, what: str) -> dict:
    """A JSON object from a file tinyq wrote, or one clear error saying how it is broken."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise TinyqError(f"{path}: missing ({what}); --out must name a folder written by `tinyq demo` or "
                         f"`tinyq convert`") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise TinyqError(f"{path}: broken or truncated ({what}): not valid JSON{where}; rerun `tinyq demo` or "
                         f"`tinyq convert` to write it again") from None
    if not isinstance(value, dict):
        raise TinyqError(f"{path}: not {what}: a JSON {type(value).__name__}, expected an object")
    return value


def run_firmware(out_dir: str | os.PathLike, target: str, data_path: str | None, images: int, opt: str,
                 say: Callable[[str], None], allow_modified: bool = False) -> list[tuple[str, str]]:
    """Build DIR/firmware for `target`, run golden vectors and `images` test images, merge figures into report.json.

    The folder is locked for the run and checked against its manifest first: a changed, missing or added file
    is refused, naming it, unless `allow_modified` (then the changes are recorded in report.json)."""
    if images < 1:
        raise TinyqError(f"--images must be >= 1, got {images}")
    with claim(out_dir, must_exist=True) as held:
        out = held.out
        model_path, fw, report_path = out / "model_int8.tflite", out / "firmware", out / "report.json"
        for p in (model_path, fw / "tinyq_stub.h"):
            if not p.exists():
                raise TinyqError(f"{p}: missing; --out must name a folder written by `tinyq demo` or `tinyq convert`")
        report = _read_json(report_path, "the report of `tinyq demo` or `tinyq convert`")
        changes = check_manifest(out)
        if changes and not allow_modified:
            listing = ", ".join(f"{c.name} ({c.change})" for c in changes)
            raise TinyqError(f"{fw}: differs from manifest.json: {listing}; regenerate the folder, or pass "
                             f"--allow-modified to build your edits (recorded in report.json)")
        for c in changes:
            say(f"building a modified file: {c.name} ({c.change})")
        q = inspect_tflite(model_path.read_bytes(), model_path.stem)
        ds = load_mnist(data_path)
        n = min(images, len(ds.test_x))
        x = quantize_input(preprocess(ds.test_x[:n], q.input.shape[1:]), q.input)
        say(f"TFLM reference outputs for {n} test images")
        expected = run_tflm(q.tflite, x).reshape(n, -1)
        say(f"{target}: cross-compiling ({opt}) and running in QEMU")
        with tempfile.TemporaryDirectory(prefix="tinyq_fw_") as tmp:
            m = measure_cortex_m(fw, Path(tmp) / target, x.reshape(n, -1), expected, opt=opt)
        fig = cortex_m_figures(m)
        section = target_section(fig)
        if changes:
            section["modified_files"] = [{"name": c.name, "change": c.change} for c in changes]
        report[target.replace("-", "_")] = section
        write_text_atomic(report_path, json.dumps(report, indent=2, sort_keys=True) + "\n")
    rows = [("target", f"{target} (QEMU {opt})"), ("flash", f"{m.flash_bytes} B"), ("RAM", f"{m.ram_bytes} B"),
            ("instructions/inference", str(fig.instructions_per_inference)),
            ("bit-exact with TFLM", f"{m.bitexact_images} / {m.images} images")]
    if changes:
        rows.append(("modified files (allowed)", ", ".join(f"{c.name} ({c.change})" for c in changes)))
    return rows
