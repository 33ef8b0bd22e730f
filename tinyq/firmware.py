"""Building and running the firmware stub on the host: golden vectors, bulk runs, code size."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BuildError
from .resources import firmware_stub_dir
from .native import run_child

STUB_DIR = firmware_stub_dir()


@dataclass(frozen=True)
class GoldenRun:
    """The stub run without arguments: exit status, per-vector lines and the summary line."""

    passed: bool
    lines: tuple[str, ...]
    summary: str


def build_stub(gen_dir: str | os.PathLike, build_dir: str | os.PathLike, target: str = "host", backend: str = "c",
               opt: str = "-O2", sanitize: bool = False, extra: tuple[str, ...] = ()) -> Path:
    """Compile the stub with the generated files in `gen_dir` through firmware_stub/Makefile; the executable."""
    if shutil.which("make") is None:
        raise BuildError("building the firmware stub needs 'make' (not found on PATH)")
    build = Path(build_dir).resolve()
    cmd = ["make", "-s", "-C", str(STUB_DIR), f"GEN_DIR={Path(gen_dir).resolve()}", f"TARGET={target}",
           f"BACKEND={backend}", f"OPT={opt}", f"BUILD_DIR={build}", *extra]
    if sanitize:
        cmd.append("SANITIZE=1")
    proc = run_child(cmd)
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip().splitlines()
        errors = [ln for ln in message if "error" in ln.lower()] or message
        raise BuildError(f"building the stub (target {target}, backend {backend}, {opt}) failed: "
                         f"{' | '.join(errors[:4])}")
    suffix = ".elf" if target != "host" else ""
    exe = build / f"stub{suffix}"
    if not exe.is_file():
        raise BuildError(f"make succeeded but {exe} is missing")
    return exe


def _run(cmd: list[str], cwd: str | None = None, timeout: float = 600.0,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    try:
        return run_child(cmd, cwd=cwd, timeout=timeout, env=dict(os.environ, **(env or {})))
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{cmd[0]}: did not finish within {timeout:.0f} s") from exc


SANITIZER_EXIT = 86  # exit status asked of ASan/UBSan, so a sanitizer report is never read as a mismatch (1)
SANITIZER_ENV = {"ASAN_OPTIONS": f"exitcode={SANITIZER_EXIT}:detect_leaks=1",
                 "UBSAN_OPTIONS": f"exitcode={SANITIZER_EXIT}:halt_on_error=1:print_stacktrace=1"}
_SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "SUMMARY: ")


def sanitizer_report(stderr: str, lines: int = 4) -> str | None:
    """The first lines of an ASan/UBSan report in a program's stderr, or None when there is none."""
    found = [ln.strip() for ln in stderr.splitlines() if any(mark in ln for mark in _SANITIZER_MARKS)]
    return " | ".join(found[:lines]) or None


def run_golden(exe: str | os.PathLike) -> GoldenRun:
    """Run every golden vector inside the stub; passed only if it exits 0 (all bit-exact). A sanitizer report,
    a signal or any other status raises BuildError saying which, so none of them reads as a mismatch."""
    proc = _run([str(exe)], env=SANITIZER_ENV)
    lines = tuple(ln for ln in proc.stdout.splitlines() if ln.strip())
    summary = lines[-1] if lines else proc.stderr.strip()
    report = sanitizer_report(proc.stderr)
    if report is not None or proc.returncode == SANITIZER_EXIT:
        raise BuildError(f"{exe}: sanitizer report in the golden run (exit {proc.returncode}): "
                         f"{report or proc.stderr.strip()[:400]}")
    if proc.returncode < 0:
        raise BuildError(f"{exe}: killed by signal {signal.Signals(-proc.returncode).name} in the golden run: "
                         f"{proc.stderr.strip()[:400]}")
    if proc.returncode not in (0, 1):
        raise BuildError(f"{exe}: exited with {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return GoldenRun(proc.returncode == 0, lines, summary)


def run_batch(exe: str | os.PathLike, inputs: np.ndarray, output_bytes: int) -> np.ndarray:
    """Push raw int8 input tensors (N, input_bytes) through the stub in one process; outputs (N, output_bytes)."""
    x = np.ascontiguousarray(np.asarray(inputs, dtype=np.int8).reshape(len(inputs), -1))
    with tempfile.TemporaryDirectory(prefix="tinyq_batch_") as tmp:
        src, dst = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        src.write_bytes(x.tobytes())
        proc = _run([str(exe), str(src), str(dst)])
        data = dst.read_bytes() if dst.exists() else b""
    if proc.returncode != 0 or len(data) != len(x) * output_bytes:
        raise BuildError(f"{exe}: bulk run of {len(x)} inputs exited {proc.returncode} with {len(data)} output "
                         f"bytes (expected {len(x) * output_bytes}): {proc.stderr.strip()[-400:]}")
    return np.frombuffer(data, dtype=np.int8).reshape(len(x), output_bytes).copy()


def text_bytes(objects: list[str | os.PathLike], size_tool: str = "size") -> int:
    """Bytes of the .text sections (code only, not .rodata) of these object files, from `size -A`."""
    total = 0
    for obj in objects:
        proc = _run([size_tool, "-A", str(obj)])
        if proc.returncode != 0:
            raise BuildError(f"{size_tool}: {proc.stderr.strip()}")
        for line in proc.stdout.splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0].startswith(".text") and fields[1].isdigit():
                total += int(fields[1])
    return total


def code_bytes(exe: str | os.PathLike) -> int:
    """Code of the C engine on the host: .text of the kernels, the backend and the generated model object."""
    obj = Path(exe).parent / "obj"
    runtime = {p.stem for p in (STUB_DIR / "runtime").glob("*.c")} | {"backend_c"}
    engine = [p for p in obj.glob("*.o") if p.stem in runtime or p.stem.endswith("_model")]
    if not engine:
        raise BuildError(f"{obj}: no engine object files to measure")
    return text_bytes(engine)

