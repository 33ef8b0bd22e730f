"""The int8 model in its native runtimes, each in its worker (tinyq.native): LiteRT with reference or default
kernels and TFLM over many inputs, whether TFLM runs a model at all, and the smallest TFLM arena that does."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass

import numpy as np

from .errors import NativeCrash, VerificationError
from .native import Runtime, Workers, native_output_to, native_quiet, session

PROGRESS_EVERY = 500  # inputs a runtime worker takes at a time when progress is followed


def _litert_outputs(tflite: bytes, inputs: np.ndarray, reference: bool) -> np.ndarray:
    """In the LiteRT worker: int8 outputs, one sample a call (the batch is fixed at 1)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType  # heavy native runtime: LiteRT's worker only

    kind = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    with native_quiet():  # LiteRT announces its XNNPACK delegate on stderr
        interp = Interpreter(model_content=tflite, experimental_op_resolver_type=kind, num_threads=1)
        interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    result = np.empty((len(inputs),) + tuple(out["shape"][1:]), dtype=out["dtype"])
    for i, x in enumerate(inputs):
        interp.set_tensor(inp["index"], x[np.newaxis])
        interp.invoke()
        result[i] = interp.get_tensor(out["index"])[0]
    return result


def _in_chunks(inputs: np.ndarray, run, tick) -> np.ndarray:
    """`run(chunk)` over the inputs in one call, or in chunks of PROGRESS_EVERY with `tick(done)` after each."""
    if tick is None or len(inputs) <= PROGRESS_EVERY:
        out = run(np.ascontiguousarray(inputs))
        if tick is not None:
            tick(len(inputs))
        return out
    parts = []
    for start in range(0, len(inputs), PROGRESS_EVERY):
        parts.append(run(np.ascontiguousarray(inputs[start:start + PROGRESS_EVERY])))
        tick(start + len(parts[-1]))
    return np.concatenate(parts)


def run_litert(tflite: bytes, inputs: np.ndarray, reference: bool, workers: Workers | None = None,
               tick=None) -> np.ndarray:
    """int8 outputs of LiteRT over all inputs, reference or default kernels, in the LiteRT worker;
    `tick(done)` follows the progress when given."""
    kernels = "reference" if reference else "default"
    with session(workers) as w:
        def run(x: np.ndarray) -> np.ndarray:
            return w.call(Runtime.LITERT, f"LiteRT ({kernels} kernels) over {len(x)} inputs", _litert_outputs,
                          tflite, x, reference)

        return _in_chunks(inputs, run, tick)


HOST_ARENA_BYTES = 64 << 20  # any microcontroller-sized model fits; tflm_arena_bytes measures the real need


def _tflm(tflite: bytes, arena_size: int | None = None):
    """A TFLM interpreter; by default with a host-sized arena, since TFLM's default (10x the model size)
    is too small for a small model with large activations."""
    from tflite_micro import runtime  # heavy native runtime: TFLM's worker only

    return runtime.Interpreter.from_bytes(tflite, arena_size=arena_size or HOST_ARENA_BYTES)


def _tflm_outputs(tflite: bytes, inputs: np.ndarray) -> np.ndarray:
    """In the TFLM worker: int8 outputs of the TFLM Python interpreter, one sample a call."""
    interp = _tflm(tflite)
    result = None
    for i, x in enumerate(inputs):
        interp.set_input(x[np.newaxis], 0)
        interp.invoke()
        y = interp.get_output(0)
        if result is None:
            result = np.empty((len(inputs),) + y.shape[1:], dtype=y.dtype)
        result[i] = y[0]
    return result if result is not None else np.empty((0,), np.int8)


def run_tflm(tflite: bytes, inputs: np.ndarray, workers: Workers | None = None, tick=None) -> np.ndarray:
    """int8 outputs of the TFLM Python interpreter, the kernels a device runs, in the TFLM worker;
    `tick(done)` follows the progress when given."""
    with session(workers) as w:
        def run(x: np.ndarray) -> np.ndarray:
            return w.call(Runtime.TFLM, f"TFLM over {len(x)} inputs", _tflm_outputs, tflite, x)

        return _in_chunks(inputs, run, tick)


def _tflm_problem(tflite: bytes, sample: np.ndarray) -> str | None:
    """In the TFLM worker: None when TFLM allocates and invokes on one sample, else what TFLM printed."""
    with tempfile.TemporaryFile() as log:
        try:
            with native_output_to(log.fileno()):
                interp = _tflm(tflite)
                interp.set_input(sample[np.newaxis], 0)
                interp.invoke()
            return None
        except (RuntimeError, ValueError) as exc:
            log.seek(0)
            lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
            return " / ".join(dict.fromkeys(lines)) or str(exc)


def tflm_problem(tflite: bytes, sample: np.ndarray, workers: Workers | None = None) -> str | None:
    """None when TFLM allocates and invokes the model on one sample; else why not, as TFLM printed it
    (e.g. "Didn't find op for builtin opcode 'GELU'" or a kernel's "Only float32 and int8 types are supported"),
    or how it crashed."""
    with session(workers) as w:
        try:
            return w.call(Runtime.TFLM, "TFLM trial run on one input", _tflm_problem, tflite, sample, inputs=1)
        except NativeCrash as exc:
            return str(exc)


def _tflm_runs(tflite: bytes, arena_size: int, sample: np.ndarray) -> bool:
    """In the TFLM worker: whether TFLM allocates and invokes with this arena size."""
    try:
        with native_quiet():
            interp = _tflm(tflite, arena_size)
            interp.set_input(sample[np.newaxis], 0)
            interp.invoke()
        return True
    except RuntimeError:
        return False


def _recorded_arena_total(tflite: bytes, sample: np.ndarray) -> int | None:
    """In the TFLM worker: the 'Arena allocation total' TFLM's recording allocator prints, or None."""
    with native_quiet():
        interp = _tflm(tflite)
        interp.set_input(sample[np.newaxis], 0)
        interp.invoke()
    with tempfile.TemporaryFile() as log:
        with native_output_to(log.fileno()):
            interp.print_allocations()
        log.seek(0)
        found = re.search(rb"Arena allocation total (\d+) bytes", log.read())
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class ArenaProbe:
    """One probed arena size and what TFLM did with it; `crash` says how TFLM died at that size."""

    size: int
    runs: bool
    crash: str | None = None


def tflm_arena_bytes(tflite: bytes, sample: np.ndarray, workers: Workers | None = None,
                     probes: list[ArenaProbe] | None = None) -> int:
    """Smallest arena (bytes) with which TFLM allocates and invokes; checked: 16 bytes fewer fails.

    Starts from the total TFLM's recording allocator prints, then bisects on real runs, because the
    arena start alignment makes the usable size differ from the recorded one by a few bytes. TFLM itself
    crashes at some sizes: a crash at a probed size counts as "that size fails" and the search goes on
    (each probe is appended to `probes` when given).
    """
    with session(workers) as w:
        def runs(size: int) -> bool:
            try:
                ok = bool(w.call(Runtime.TFLM, f"TFLM arena probe at {size} B", _tflm_runs, tflite, size, sample,
                                  inputs=1))
                crash = None
            except NativeCrash as exc:
                ok, crash = False, exc.signal
            if probes is not None:
                probes.append(ArenaProbe(size, ok, crash))
            return ok

        try:
            recorded = w.call(Runtime.TFLM, "TFLM arena recording", _recorded_arena_total, tflite, sample,
                              inputs=1)
        except NativeCrash:
            recorded = None
        hi = recorded or max(4096, len(tflite) * 10)
        while not runs(hi):
            hi *= 2
            if hi > 1 << 30:
                raise VerificationError("TFLM cannot run the model with any arena up to 1 GiB")
        lo = max(0, hi - 256)
        while lo > 0 and runs(lo):
            lo = max(0, lo - (hi - lo))
        while hi - lo > 1:  # lo fails, hi works
            mid = (lo + hi) // 2
            if runs(mid):
                hi = mid
            else:
                lo = mid
        tight = not runs(hi - 16)
    if not tight:
        raise VerificationError(f"TFLM arena search not monotonic around {hi} bytes")
    return hi
