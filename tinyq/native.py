"""Native code at arm's length: the TF converter, LiteRT, TFLM and the C engine's host library run in worker
processes, so a signal, an abort or a sanitizer report in them becomes a `NativeCrash` naming the runtime, the
step and the signal, not a dead tinyq. Also: redirecting what native libraries print straight to file
descriptors 1 and 2.

Cost model: one long-lived worker per runtime kind and slot for a whole `Workers` session (a fresh interpreter
started on first use; slots > 0 only for work split over cores), whole arrays passed in one call, and a fresh
worker after a crash.

Time limits: every call to a worker ends within a limit; past it the worker is killed and `NativeTimeout` names
the runtime, the step and the limit. The default limit of a call (`default_limit`) is

    BASE_SECONDS + PER_MB_SECONDS * MB + PER_MB_INPUT_SECONDS * max(MB, MIN_MB) * inputs

with MB the size of the model the call is given, in MiB (the .tflite bytes, the saved Keras file, the engine
library), and `inputs` the samples it runs (calibration samples for the converter, test inputs for LiteRT, TFLM
and the C engine). E.g. a 100 kB model: 120 s plus 25 s per 1,000 inputs; a 4 MiB one over 300 calibration
samples: 120 + 120 + 240 = 480 s. MIN_MB stands in for the activations' cost, which a tiny model's size does not
show. `Workers(timeout=S)` (the CLI's `--timeout S`) gives every call S seconds instead. Starting a worker (a fresh
interpreter importing its runtime, TensorFlow's import above all) has its own limit: START_SECONDS, or S if larger.
Commands run by `run_child` (make, compilers, QEMU) get the caller's timeout, CHILD_SECONDS when it gives none.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import faulthandler
import importlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tempfile
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable, Iterator

from .errors import NativeCrash, NativeTimeout, TinyqError

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)  # the folder holding this tinyq package

_SANITIZER_LINE = re.compile(r"ERROR: (Address|Leak|Memory|Thread|UndefinedBehavior)Sanitizer|runtime error:|"
                             r"SUMMARY: |Fatal Python error|Assertion .* failed|terminate called|abort")


BASE_SECONDS = 120.0  # any call: a worker's own set-up (building an interpreter, loading a model) on a busy machine
PER_MB_SECONDS = 30.0  # per MiB of model: reading, converting, planning it
PER_MB_INPUT_SECONDS = 0.2  # per MiB of model and input run: LiteRT's reference kernels are the slowest runner
MIN_MB = 0.5  # the least a model counts for per input: a small model can still have large activations
START_SECONDS = 300.0  # starting a worker: a fresh interpreter and its runtime's imports
CHILD_SECONDS = 1800.0  # a command run_child is given without a timeout (a compile of a large model's C)


def default_limit(model_bytes: int, inputs: int) -> float:
    """Seconds a native call over a model of `model_bytes` running `inputs` samples may take (see the module doc)."""
    mb = max(0, model_bytes) / (1 << 20)
    return BASE_SECONDS + PER_MB_SECONDS * mb + PER_MB_INPUT_SECONDS * max(mb, MIN_MB) * max(0, inputs)


def _work(args: tuple) -> tuple[int, int]:
    """(model bytes, inputs) of a call, from its arguments when the caller does not say: the largest bytes
    argument or file a str argument names, and the length of the largest array of two or more dimensions."""
    size, inputs = 0, 1
    for arg in args:
        if isinstance(arg, (bytes, bytearray, memoryview)):
            size = max(size, len(arg))
        elif isinstance(arg, str) and len(arg) < 4096 and os.path.isfile(arg):
            size = max(size, os.path.getsize(arg))
        elif getattr(arg, "ndim", 0) >= 2:
            inputs = max(inputs, len(arg))
    return size, inputs


class Runtime(enum.Enum):
    """The native runtimes tinyq calls; each kind gets its own worker process."""

    CONVERTER = "TF converter"
    LITERT = "LiteRT"
    TFLM = "TFLM"
    C_ENGINE = "C engine"


@contextlib.contextmanager
def native_output_to(fd_target: int):
    """Send what native code prints on fd 1 and 2 to `fd_target` for the duration of the block."""
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(fd_target, 1)
        os.dup2(fd_target, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


@contextlib.contextmanager
def native_quiet():
    """Discard what native code prints on fd 1 and 2 (progress chatter; errors still raise)."""
    with open(os.devnull, "wb") as devnull, native_output_to(devnull.fileno()):
        yield


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (even by SIGKILL); a no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _serve(fd: int, log_path: str, parent_pid: int) -> None:
    """Worker loop: call what the parent sends, send back ("ok", value) or ("err", exception)."""
    die_with_parent()
    if os.getppid() != parent_pid:
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means
    conn = Connection(fd)
    sys.path[:] = conn.recv()  # the parent's, so functions it sends by reference import the same way
    log = open(log_path, "ab", buffering=0)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    faulthandler.enable(log)
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", fn(*args))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
            reply = ("err", exc)
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - e.g. an exception that does not pickle
            conn.send(("err", RuntimeError(f"{type(reply[1]).__name__}: {reply[1]} ({exc})")))


@dataclass
class _Worker:
    process: subprocess.Popen
    conn: Connection
    log_path: str
    pending: bool = False  # a preload was sent and its reply not yet read


_PRELOAD = {"CONVERTER": ("tensorflow",), "LITERT": ("ai_edge_litert.interpreter",),
            "TFLM": ("tflite_micro.python.tflite_micro.runtime",),
            "C_ENGINE": ("numpy", "tinyq.targets.firmware")}


def _preload(modules: tuple[str, ...]) -> None:
    """In a worker: import the runtime's modules ahead of its first real call."""
    for name in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "no exit status"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit status {exitcode}"


def _first_lines(text: str, count: int = 4) -> list[str]:
    """The lines that say what happened: sanitizer and fatal-error lines first, else the first lines."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    key = [ln for ln in lines if _SANITIZER_LINE.search(ln)]
    return (key or lines)[:count]


class Workers:
    """One worker process per runtime kind and slot, started on first use, replaced after a crash, ended by
    close(). Calls to different (runtime, slot) pairs may run at the same time from different threads."""

    def __init__(self, timeout: float | None = None) -> None:
        """`timeout`: seconds every call may take (the CLI's --timeout); None: default_limit of each call."""
        if timeout is not None and not timeout > 0:
            raise TinyqError(f"a time limit must be a positive number of seconds, got {timeout}")
        self.timeout = timeout
        self._workers: dict[tuple[Runtime, int], _Worker] = {}

    def limit(self, model_bytes: int, inputs: int) -> float:
        """Seconds a call over a model of `model_bytes` running `inputs` samples may take in this session."""
        return self.timeout if self.timeout is not None else default_limit(model_bytes, inputs)

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self, runtime: Runtime, slot: int) -> _Worker:
        fd, log_path = tempfile.mkstemp(prefix=f"tinyq-{runtime.name.lower()}-", suffix=".log")
        os.close(fd)
        parent, child = socket.socketpair()
        code = f"from tinyq.native import _serve; _serve({child.fileno()}, {log_path!r}, {os.getpid()})"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH"))
                                                          if p))
        try:
            # a fresh interpreter, not a fork: forking a process with TensorFlow threads is unsafe, and unlike
            # multiprocessing's 'spawn' this does not re-run the caller's __main__ script
            process = subprocess.Popen([sys.executable, "-c", code], pass_fds=(child.fileno(),), env=env,
                                       stdin=subprocess.DEVNULL)
        finally:
            child.close()
        worker = _Worker(process, Connection(parent.detach()), log_path)
        worker.conn.send(list(sys.path))
        self._workers[runtime, slot] = worker
        return worker

    def prepare(self, *runtimes: Runtime, slots: int = 1) -> None:
        """Start these runtimes' workers (slots 0 to slots-1 of each) and their imports now, without waiting, so
        the start-up (TensorFlow's import above all) overlaps with what the caller does next."""
        for runtime in runtimes:
            for slot in range(slots):
                worker = self._live(runtime, slot)
                if not worker.pending:
                    worker.conn.send((_preload, (_PRELOAD[runtime.name],)))
                    worker.pending = True

    def call(self, runtime: Runtime, step: str, fn: Callable, *args, slot: int = 0, model_bytes: int | None = None,
             inputs: int | None = None):
        """fn(*args) in the runtime's worker of this slot; a crash raises NativeCrash and the next call gets a new
        worker; a call that does not end within its time limit (`limit(model_bytes, inputs)`, each estimated
        from `args` when not given) kills the worker and raises NativeTimeout.

        `fn` must be a module-level function (it is sent by reference); exceptions it raises are re-raised here.
        """
        size, count = _work(args)
        seconds = self.limit(size if model_bytes is None else model_bytes, count if inputs is None else inputs)
        worker = self._live(runtime, slot)
        offset = os.path.getsize(worker.log_path)
        try:
            if worker.pending:
                start = max(START_SECONDS, self.timeout or 0.0)
                with self._deadline(runtime, slot, worker, f"start-up of its worker (before {step})", start):
                    worker.conn.recv()
                worker.pending = False
            with self._deadline(runtime, slot, worker, step, seconds):
                worker.conn.send((fn, args))
                status, value = worker.conn.recv()
        except (EOFError, OSError):
            raise self._crashed(runtime, slot, worker, step, offset) from None
        except BaseException:  # interrupted mid-call, or out of time: the worker's state is unknown
            self._stop((runtime, slot))
            raise
        if status == "err":
            raise value
        return value

    @contextlib.contextmanager
    def _deadline(self, runtime: Runtime, slot: int, worker: _Worker, step: str, seconds: float):
        """Kill the worker if the block has not ended after `seconds` (a watchdog thread, so a blocked send is
        covered as well as a reply that never comes); the block's EOF/broken pipe then raises NativeTimeout."""
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()

        timer = threading.Timer(seconds, expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        except (EOFError, OSError):
            if not expired.is_set():
                raise
            self._stop((runtime, slot))
            raise NativeTimeout(runtime.value, step, seconds) from None
        finally:
            timer.cancel()

    def _live(self, runtime: Runtime, slot: int) -> _Worker:
        """The worker of (runtime, slot), started now if there is none or it died between calls (killed)."""
        worker = self._workers.get((runtime, slot))
        if worker is not None and worker.process.poll() is not None:
            self._stop((runtime, slot))
            worker = None
        return worker or self._start(runtime, slot)

    def kill(self, runtime: Runtime) -> None:
        """Kill this runtime's workers (every slot) now, e.g. when the caller is interrupted while other threads
        wait on them: those calls then end at once with NativeCrash, and the next call gets a new worker."""
        for (kind, _slot), worker in list(self._workers.items()):
            if kind is runtime:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                worker.process.wait()

    def _crashed(self, runtime: Runtime, slot: int, worker: _Worker, step: str, offset: int) -> NativeCrash:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(5)
        exitcode = worker.process.returncode
        with open(worker.log_path, "rb") as log:
            log.seek(offset)
            text = log.read(1 << 16).decode(errors="replace")
        self._stop((runtime, slot))
        return NativeCrash(runtime.value, step, _signal_name(exitcode), tuple(_first_lines(text)))

    def _stop(self, key: tuple[Runtime, int]) -> None:
        worker = self._workers.pop(key, None)
        if worker is None:
            return
        worker.conn.close()
        if worker.pending:  # still importing its runtime: nothing to finish
            worker.process.kill()
        try:
            worker.process.wait(2)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        with contextlib.suppress(OSError):
            os.unlink(worker.log_path)

    def close(self) -> None:
        """End every worker (they also end on their own when this process dies)."""
        for key in list(self._workers):
            self._stop(key)


@contextlib.contextmanager
def session(workers: Workers | None = None, timeout: float | None = None) -> Iterator[Workers]:
    """`workers` if given (the caller's session), else a fresh one (with `timeout`, see Workers) closed at the end
    of the block."""
    if workers is not None:
        yield workers
        return
    with Workers(timeout) as fresh:
        yield fresh


# Supervisor between tinyq and a command: the kernel sends it SIGTERM when tinyq dies (even by SIGKILL), and it
# then kills its whole process group (the command and the command's own children, e.g. make's compilers).
_SUPERVISOR = """
import ctypes, os, signal, subprocess, sys
signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
ctypes.CDLL(None).prctl(1, signal.SIGTERM)
if os.getppid() != int(sys.argv[1]):
    os.killpg(0, signal.SIGKILL)
try:
    child = subprocess.Popen(sys.argv[2:])
except OSError as exc:
    sys.stderr.write(f"{sys.argv[2]}: {exc}\\n")
    sys.exit(127)
while True:
    try:
        code = child.wait()
        break
    except InterruptedError:
        continue
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


POLL_SECONDS = 0.5  # how often run_child calls its poll callback


class ChildTimeout(subprocess.TimeoutExpired, TinyqError):
    """A command run_child ran did not end within its time limit and was killed with its children: a
    TimeoutExpired for callers that say more, and one line naming the command and the limit for the others."""

    def __str__(self) -> str:
        command = " ".join(map(str, self.cmd))
        limit = f"{self.timeout:.0f}" if self.timeout >= 10 else f"{self.timeout:.3g}"
        return f"{Path(str(self.cmd[0])).name} did not finish within {limit} s and was killed: {command[:200]}"



def run_child(cmd: list[str], cwd: str | os.PathLike | None = None, timeout: float | None = None,
              env: dict[str, str] | None = None, stdin=subprocess.DEVNULL, poll=None) -> subprocess.CompletedProcess:
    """Run a command (make, a compiler, QEMU, a stub) that dies with tinyq: in its own process group, killed
    with all its children on any exception here (Ctrl-C, SIGTERM, timeout), and on Linux, under a small
    supervisor the kernel warns when tinyq dies, even by SIGKILL. Text output captured. Every command has a time
    limit: `timeout`, else CHILD_SECONDS; past it, ChildTimeout (a TimeoutExpired) is raised after the kill.
    `poll()`, when given, is called about twice a second while the command runs."""
    timeout = CHILD_SECONDS if timeout is None else timeout
    argv = [str(c) for c in cmd]
    if sys.platform.startswith("linux"):
        argv = [sys.executable, "-S", "-c", _SUPERVISOR, str(os.getpid()), *argv]
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = max(0.0, deadline - time.monotonic())
            wait = left if poll is None else min(POLL_SECONDS, left)
            try:
                out, err = proc.communicate(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    raise ChildTimeout(list(cmd), timeout) from None
                poll()
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)
