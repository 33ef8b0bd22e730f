"""Building the firmware stub through firmware_stub/Makefile for the host or a registry target (whose make
variables come from registry.py), and running it on the host: golden vectors, bulk runs, code size; and the C
engine as a host shared library, run in worker processes over whole arrays."""

from __future__ import annotations

import _ctypes
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BuildError
from ..native import Runtime, Workers, run_child, session
from ..resources import firmware_stub_dir
from .memory import link_fit
from .registry import get

STUB_DIR = firmware_stub_dir()


@dataclass(frozen=True)
class GoldenRun:
    """The stub run without arguments: exit status, per-vector lines and the summary line."""

    passed: bool
    lines: tuple[str, ...]
    summary: str


def build_stub(gen_dir: str | os.PathLike, build_dir: str | os.PathLike, target: str = "host", backend: str = "c",
               opt: str = "-O2", sanitize: bool = False, extra: tuple[str, ...] = ()) -> Path:
    """Compile the stub with the generated files in `gen_dir` through firmware_stub/Makefile for "host" or a
    registry target (an unknown one raises BuildError naming the known ones); the executable."""
    suffix = ".elf" if target != "host" else ""
    return _make(gen_dir, build_dir, target, backend, opt, sanitize, extra, f"stub{suffix}")


ENGINE_LIBRARY = "libtinyq_engine.so"


def build_library(gen_dir: str | os.PathLike, build_dir: str | os.PathLike, opt: str = "-O3") -> Path:
    """Compile the generated C engine (the very sources the stub's C backend builds) with engine_lib.c's batch
    entry point into a host shared library (`make LIB=1`), for run_library; its path. It is built for this
    machine's own instruction set (NATIVE=1: AVX2 where there is one), as it only ever runs here."""
    return _make(gen_dir, build_dir, "host", "c", opt, False, ("LIB=1", "NATIVE=1"), ENGINE_LIBRARY)


def _make(gen_dir: str | os.PathLike, build_dir: str | os.PathLike, target: str, backend: str, opt: str,
          sanitize: bool, extra: tuple[str, ...], product: str) -> Path:
    """Run firmware_stub/Makefile; the path of `product` in the build folder."""
    core = {} if target == "host" else get(target).make_variables()
    if shutil.which("make") is None:
        raise BuildError("building the firmware stub needs 'make' (not found on PATH)")
    build = Path(build_dir).resolve()
    cmd = ["make", "-s", "-C", str(STUB_DIR), f"GEN_DIR={Path(gen_dir).resolve()}", f"TARGET={target}",
           *(f"{k}={v}" for k, v in core.items()), f"BACKEND={backend}", f"OPT={opt}", f"BUILD_DIR={build}", *extra]
    if sanitize:
        cmd.append("SANITIZE=1")
    started = time.time()
    proc = run_child(cmd)
    if proc.returncode != 0:
        link_map = build / f"{product}.map"
        if target != "host" and link_map.is_file() and link_map.stat().st_mtime >= started - 1:
            fit = link_fit(link_map, get(target))
            if not fit.fits:
                raise BuildError(fit.message())
        message = (proc.stderr or proc.stdout).strip().splitlines()
        errors = [ln for ln in message if "error" in ln.lower()] or message
        raise BuildError(f"building the stub (target {target}, backend {backend}, {opt}) failed: "
                         f"{' | '.join(errors[:4])}")
    exe = build / product
    if not exe.is_file():
        raise BuildError(f"make succeeded but {exe} is missing")
    return exe


def run_binary(cmd: list[str], cwd: str | None = None, timeout: float = 600.0,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a built program (in its own process group, see native.run_child) with extra environment variables;
    a run past `timeout` raises BuildError."""
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
    proc = run_binary([str(exe)], env=SANITIZER_ENV)
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
        proc = run_binary([str(exe), str(src), str(dst)])
        data = dst.read_bytes() if dst.exists() else b""
    if proc.returncode != 0 or len(data) != len(x) * output_bytes:
        raise BuildError(f"{exe}: bulk run of {len(x)} inputs exited {proc.returncode} with {len(data)} output "
                         f"bytes (expected {len(x) * output_bytes}): {proc.stderr.strip()[-400:]}")
    return np.frombuffer(data, dtype=np.int8).reshape(len(x), output_bytes).copy()


LIBRARY_JOBS = 2  # worker processes run_library splits a batch over by default
MIN_SLICE = 512  # inputs per worker below which a second worker costs more than it saves


def run_library(lib: str | os.PathLike, inputs: np.ndarray, output_bytes: int, workers: Workers | None = None,
                jobs: int = LIBRARY_JOBS) -> np.ndarray:
    """Push raw int8 input tensors (N, input_bytes) through the engine library (build_library); outputs
    (N, output_bytes), the same bytes as run_batch of the stub. The inputs are cut into at most `jobs` contiguous
    slices, each run in its own worker process (the engine has one static arena, so one invoke at a time per
    process), and joined in order. A crash in the library raises NativeCrash naming the C engine and the slice;
    sizes that do not match the engine's raise BuildError naming both."""
    x = np.ascontiguousarray(np.asarray(inputs, dtype=np.int8).reshape(len(inputs), -1))
    count = max(1, min(jobs, len(x) // MIN_SLICE))
    bounds = [len(x) * i // count for i in range(count + 1)]
    path = str(Path(lib).resolve())
    with session(workers) as w, ThreadPoolExecutor(count) as pool:
        # started from this thread, not the pool's: a worker is killed when the thread that started it ends
        w.prepare(Runtime.C_ENGINE, slots=count)
        futures = [pool.submit(w.call, Runtime.C_ENGINE, f"the run of {path} on inputs {a} to {b - 1} of {len(x)}",
                               _library_batch, path, x[a:b], a, output_bytes, slot=i)
                   for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
            parts = [f.result() for f in futures]
        except BaseException:  # a slice crashed or the caller was interrupted: do not wait for the others
            for f in futures:
                f.cancel()
            while not all(f.done() for f in futures):  # a call that started after a kill gets the next one
                w.kill(Runtime.C_ENGINE)
                wait(futures, timeout=0.1)
            raise
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


_LIBRARY_STATUS = {-1: "the engine's init failed", -2: "the batch was refused (negative count or null pointer)"}


def _library_batch(path: str, x: np.ndarray, first: int, output_bytes: int) -> np.ndarray:
    """In a C engine worker: load the library, check the sizes, run inputs `first`... of the caller's batch,
    unload the library again (so one rebuilt at the same path is read afresh on the next call)."""
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise BuildError(f"{path}: cannot load the C engine library: {exc}") from None
    try:
        try:
            name_of, run = lib.tinyq_engine_model_name, lib.tinyq_engine_run_batch
            in_bytes, out_bytes = lib.tinyq_engine_input_bytes(), lib.tinyq_engine_output_bytes()
        except AttributeError as exc:
            raise BuildError(f"{path}: not a tinyq C engine library (make LIB=1): {exc}") from None
        name_of.restype = ctypes.c_char_p
        run.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32)
        model = name_of().decode(errors="replace")
        if x.shape[1] != in_bytes or output_bytes != out_bytes:
            raise BuildError(f"{path}: the C engine of model {model!r} takes {in_bytes}-byte inputs and gives "
                             f"{out_bytes}-byte outputs, but was given {x.shape[1]}-byte inputs for "
                             f"{output_bytes}-byte outputs")
        out = np.empty((len(x), out_bytes), dtype=np.int8)
        status = run(x.ctypes.data, out.ctypes.data, len(x))
    finally:
        _ctypes.dlclose(lib._handle)
    if status != 0:
        what = _LIBRARY_STATUS.get(status, f"invoke failed on input {first + status - 1}")
        raise BuildError(f"{path}: C engine of model {model!r}: {what} (status {status})")
    return out


def text_bytes(objects: list[str | os.PathLike], size_tool: str = "size") -> int:
    """Bytes of the .text sections (code only, not .rodata) of these object files, from `size -A`."""
    total = 0
    for obj in objects:
        proc = run_binary([size_tool, "-A", str(obj)])
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

