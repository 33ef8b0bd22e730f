"""Crash isolation: native runtimes run in worker processes; a stand-in that segfaults or aborts at a chosen step
becomes a NativeCrash naming runtime, step and signal, the worker is replaced, and the other results are kept."""

from __future__ import annotations

import os
import signal
from typing import NamedTuple

import numpy as np
import pytest

from tinyq import native, quantize, runtimes, verify
from tinyq.errors import NativeCrash, NativeTimeout, TinyqError

CRASH_BELOW_ENV = "TINYQ_TEST_ARENA_CRASH_BELOW"


def segfault(*_args):
    """Stand-in for a runtime that dies by SIGSEGV."""
    os.kill(os.getpid(), signal.SIGSEGV)


def asan_abort(*_args):
    """Stand-in for code built with AddressSanitizer that finds a bad write: a report on stderr, then abort."""
    os.write(2, b"=================================================================\n"
                b"==4242==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x602000000011\n"
                b"WRITE of size 1 at 0x602000000011 thread T0\n")
    os.abort()


def echo_pid(value):
    return os.getpid(), value


def raise_value_error(message):
    raise ValueError(message)


def litert_crashes_on_default_kernels(tflite, inputs, reference):
    """LiteRT whose default kernels segfault; its reference kernels work."""
    if not reference:
        segfault()
    return runtimes._litert_outputs(tflite, inputs, reference)


def tflm_crashes_just_below(tflite, arena_size, sample):
    """TFLM that segfaults at the 16 arena sizes just below $TINYQ_TEST_ARENA_CRASH_BELOW (as TFLM does for a
    640-input autoencoder at 22,024-22,039 B), and runs normally elsewhere."""
    edge = int(os.environ[CRASH_BELOW_ENV])
    if edge - 16 <= arena_size < edge:
        segfault()
    return runtimes._tflm_runs(tflite, arena_size, sample)


def test_segfault_becomes_native_crash_and_worker_is_replaced():
    with native.Workers() as w:
        pid, value = w.call(native.Runtime.TFLM, "warm-up", echo_pid, 7)
        assert value == 7 and pid != os.getpid()
        with pytest.raises(NativeCrash) as err:
            w.call(native.Runtime.TFLM, "invoke of test vector 3", segfault)
        assert (err.value.runtime, err.value.step, err.value.signal) == ("TFLM", "invoke of test vector 3",
                                                                         "signal SIGSEGV")
        assert "TFLM crashed (signal SIGSEGV) during invoke of test vector 3" in str(err.value)
        new_pid, value = w.call(native.Runtime.TFLM, "after the crash", echo_pid, 8)
        assert value == 8 and new_pid != pid


def test_sanitizer_abort_is_reported_with_its_first_lines():
    with native.Workers() as w, pytest.raises(NativeCrash) as err:
        w.call(native.Runtime.LITERT, "LiteRT over 10 inputs", asan_abort)
    assert err.value.signal == "signal SIGABRT"
    assert any("ERROR: AddressSanitizer: heap-buffer-overflow" in line for line in err.value.lines)
    assert "AddressSanitizer" in str(err.value)


def test_python_exceptions_in_the_worker_come_back_as_themselves():
    with native.Workers() as w, pytest.raises(ValueError, match="bad tensor 5"):
        w.call(native.Runtime.LITERT, "step", raise_value_error, "bad tensor 5")


def test_workers_end_with_the_session():
    with native.Workers() as w:
        pid, _ = w.call(native.Runtime.CONVERTER, "step", echo_pid, 0)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.fixture(scope="module")
def tiny():
    """A small random conv model, its int8 conversion and uint8 test data (no training)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(3)
    keras = tf.keras
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")], name="tiny")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 10, 64).astype(np.uint8)
    q = quantize.quantize(model, (x / 255.0).astype(np.float32).reshape(-1, 8, 8, 1),
                          quantize.QuantizeConfig(num_calibration_samples=32), labels=y)
    return model, q, x, y


def test_litert_crash_in_verify_keeps_the_other_results(tiny, monkeypatch):
    model, q, x, y = tiny
    monkeypatch.setattr(runtimes, "_litert_outputs", litert_crashes_on_default_kernels)
    result = verify.verify(model, q, x, y)
    assert len(result.crashes) == 1 and "LiteRT crashed (signal SIGSEGV)" in result.crashes[0]
    assert "default kernels" in result.crashes[0]
    assert result.litert_int8 is None and result.litert_ref_outputs.shape == result.tflm_outputs.shape
    assert result.tflm_vs_litert_ref.bitexact == 1.0
    assert [s.stage for s in verify.stage_agreement(result)] == ["Keras float", "LiteRT int8, reference kernels",
                                                                 "TFLM int8"]


def test_arena_search_survives_tflm_crashes_at_probed_sizes(tiny, monkeypatch):
    _model, q, x, _y = tiny
    xq = verify.quantize_input((x[:1] / 255.0).astype(np.float32).reshape(1, 8, 8, 1), q.input)
    true_min = runtimes.tflm_arena_bytes(q.tflite, xq[0])
    monkeypatch.setenv(CRASH_BELOW_ENV, str(true_min))
    monkeypatch.setattr(runtimes, "_tflm_runs", tflm_crashes_just_below)
    probes: list[runtimes.ArenaProbe] = []
    assert runtimes.tflm_arena_bytes(q.tflite, xq[0], probes=probes) == true_min
    crashed = [p for p in probes if p.crash]
    assert crashed and all(true_min - 16 <= p.size < true_min and p.crash == "signal SIGSEGV" for p in crashed)


def test_converter_crash_is_a_native_crash_naming_the_model(tiny, monkeypatch):
    model, _q, x, y = tiny
    monkeypatch.setattr(quantize, "_int8_from_file", segfault)
    with pytest.raises(NativeCrash, match=r"TF converter crashed \(signal SIGSEGV\) during calibration and int8 "
                                          r"conversion of model 'tiny'"):
        quantize.quantize(model, (x / 255.0).astype(np.float32).reshape(-1, 8, 8, 1),
                          quantize.QuantizeConfig(num_calibration_samples=8))


OVERFLOW_C = r"""
#include <stdio.h>
#include <stdlib.h>
int main(void) {
    volatile char *p = malloc(8);
    printf("vector 0: ok\n");
    p[8] = 1;  /* one past the end */
    printf("all golden vectors bit-exact\n");
    return 0;
}
"""


@pytest.mark.integration
def test_sanitizer_abort_in_the_golden_run_is_not_a_mismatch(tmp_path):
    import shutil
    import subprocess

    from tinyq.targets import firmware
    from tinyq.errors import BuildError

    src = tmp_path / "overflow.c"
    src.write_text(OVERFLOW_C)
    exe = tmp_path / "stub"
    subprocess.run([shutil.which("gcc") or "cc", "-fsanitize=address,undefined", "-g", str(src), "-o", str(exe)],
                   check=True)
    with pytest.raises(BuildError, match=r"sanitizer report in the golden run \(exit 86\): "
                                         r"==\d+==ERROR: AddressSanitizer: heap-buffer-overflow.*overflow.c:7"):
        firmware.run_golden(exe)


def test_a_signal_in_the_golden_run_is_named(tmp_path):
    from tinyq.targets import firmware
    from tinyq.errors import BuildError

    exe = tmp_path / "stub"
    exe.write_text("#!/bin/sh\necho 'vector 0: ok'\nkill -SEGV $$\n")
    exe.chmod(0o755)
    with pytest.raises(BuildError, match="killed by signal SIGSEGV in the golden run"):
        firmware.run_golden(exe)


@pytest.mark.slow
def test_real_tflm_segfaults_in_the_arena_search_of_an_autoencoder_are_survived():
    """TFLM itself (tflite-micro as installed) segfaults at some arena sizes just below the minimum of a
    640-input fully-connected autoencoder; the search treats those sizes as failing and finds the minimum."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    k = tf.keras
    h = inp = k.Input((640,))
    for n in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        h = k.layers.Dense(n, activation="relu")(h)
    model = k.Model(inp, k.layers.Dense(640)(h), name="autoencoder")
    x = np.random.default_rng(0).random((200, 640), dtype=np.float32)
    q = quantize.quantize(model, x, quantize.QuantizeConfig(num_calibration_samples=100))
    sample = verify.quantize_input(x[:1], q.input)[0]
    probes: list[runtimes.ArenaProbe] = []
    with native.Workers() as w:
        arena = runtimes.tflm_arena_bytes(q.tflite, sample, w, probes)
        assert w.call(native.Runtime.TFLM, "check", runtimes._tflm_runs, q.tflite, arena, sample)
    crashed = [p for p in probes if p.crash]
    assert crashed, f"TFLM no longer crashes below the minimum arena ({arena} B): {probes}"
    assert all(p.size < arena and p.crash == "signal SIGSEGV" for p in crashed)


WORKERS_DRIVER = r"""
import os, signal, time
from tinyq import cli, native
signal.signal(signal.SIGTERM, cli._terminated)
with native.Workers() as w:
    pids = [w.call(runtime, "pid", os.getpid) for runtime in native.Runtime]
    print(" ".join(map(str, pids)), flush=True)
    w.call(native.Runtime.TFLM, "a long invoke", time.sleep, 60)  # busy: it would not notice a closed pipe
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_workers_die_with_tinyq(sig):
    import subprocess
    import sys
    import time

    import procs

    proc = subprocess.Popen([sys.executable, "-c", WORKERS_DRIVER], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == len(native.Runtime) and proc.pid not in pids
        workers = [procs.proc_of(p) for p in pids]  # (pid, start time): a pid reused later is not a worker
        assert None not in workers, pids
        proc.send_signal(sig)
        proc.wait(10)
        deadline = time.monotonic() + 5  # a worker that missed its parent's death would sleep for a minute
        alive = procs.alive(workers)
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = procs.alive(workers)  # a pid gone between two reads of /proc counts as gone, never raises
        assert alive == []
    finally:
        proc.kill()
        proc.wait()


# ---- every native call in a worker, with a time limit ----

# Runs `tinyq ARGS...` as the CLI does and, at exit, writes to $TINYQ_TEST_REPORT which native runtimes' kernels
# tinyq's own process loaded or entered. What counts as "kernels loaded":
# - LiteRT: ai_edge_litert.interpreter or its pybind module _pywrap_litert_interpreter_wrapper in sys.modules
#   (importing them is only ever done to build an Interpreter);
# - TFLM: any tflite_micro module (the package's __init__ imports the runtime and its _runtime extension);
# - the TF converter: `import tensorflow` itself loads tf.lite's converter and interpreter wrappers, so their
#   presence in sys.modules says nothing; instead the wrapper watches the entry points into their native code:
#   wrap_converter.wrapped_convert / _experimental_mlir_quantize / _experimental_mlir_sparsify (every
#   conversion and quantization goes through them), TF's calibrator (it runs TFLite kernels over the samples)
#   and TF's own tf.lite.Interpreter. A call to any of them in tinyq's process is recorded.
# $TINYQ_TEST_HOOK ("module:attr=module:attr") replaces a worker function by a stand-in of tests/native_hooks.py.
NATIVE_WRAPPER = r"""
import atexit, importlib, json, os, sys
from tinyq.native import native_quiet
with native_quiet():  # tinyq loads TF quietly too; here first, to watch the converter's entry points
    import tensorflow
    from tensorflow.compiler.mlir.lite.python import wrap_converter
    from tensorflow.lite.python import interpreter as tf_interpreter
    from tensorflow.lite.python.optimize import calibrator

calls = []

def watch(owner, name):
    real = getattr(owner, name)
    def watched(*args, **kwargs):
        calls.append(f"{owner.__name__}.{name}")
        return real(*args, **kwargs)
    setattr(owner, name, watched)

for name in ("wrapped_convert", "wrapped_experimental_mlir_quantize", "wrapped_experimental_mlir_sparsify"):
    watch(wrap_converter, name)
watch(tf_interpreter.Interpreter, "__init__")
watch(calibrator.Calibrator, "__init__")
KERNELS = ("ai_edge_litert.interpreter", "ai_edge_litert._pywrap_litert_interpreter_wrapper")

def report():
    loaded = [m for m in sys.modules if m in KERNELS or m == "tflite_micro" or m.startswith("tflite_micro.")]
    with open(os.environ["TINYQ_TEST_REPORT"], "w") as f:
        json.dump({"modules": sorted(loaded), "calls": calls}, f)

atexit.register(report)
hook = os.environ.get("TINYQ_TEST_HOOK")
if hook:
    (target, attr), (source, name) = (part.split(":") for part in hook.split("="))
    setattr(importlib.import_module(target), attr, getattr(importlib.import_module(source), name))
from tinyq import cli
sys.exit(cli.main(sys.argv[1:]))
"""

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def run_tinyq(tmp_path, args: list[str], hook: str | None = None, env: dict | None = None, timeout: float = 600):
    """`tinyq ARGS` in a subprocess through NATIVE_WRAPPER: (exit code, stderr, report of kernels loaded or None,
    wall-clock time.time() at which each stderr line arrived)."""
    import json
    import subprocess
    import sys
    import time

    report = tmp_path / "kernels.json"
    root = os.path.dirname(TESTS_DIR)
    full = dict(os.environ, TINYQ_TEST_REPORT=str(report), TF_CPP_MIN_LOG_LEVEL="3", **(env or {}),
                PYTHONPATH=os.pathsep.join(p for p in (root, TESTS_DIR, os.environ.get("PYTHONPATH")) if p))
    if hook:
        full["TINYQ_TEST_HOOK"] = hook
    proc = subprocess.Popen([sys.executable, "-c", NATIVE_WRAPPER, *args], env=full, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    lines, times = [], []
    try:
        for line in proc.stderr:
            lines.append(line)
            times.append(time.time())
        code = proc.wait(timeout)
    finally:
        proc.kill()
        proc.wait()
    return RunResult(code, "".join(lines), json.loads(report.read_text()) if report.exists() else None,
                     tuple(times))


class RunResult(NamedTuple):
    code: int
    stderr: str
    report: dict | None
    line_times: tuple[float, ...]


@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    """A small Keras conv model, its int8 .tflite (converted in the workers) and an .npz of float data."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("small")
    tf.keras.utils.set_random_seed(5)
    keras = tf.keras
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3, activation="relu", name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(3, name="dense")], name="small")
    model.save(folder / "small.keras")
    rng = np.random.default_rng(1)
    x = rng.random((48, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, 48)
    np.savez(folder / "x.npz", x_train=x, y_train=y, x_test=x[:16], y_test=y[:16])
    q = quantize.quantize(model, x, quantize.QuantizeConfig(num_calibration_samples=32))
    (folder / "small.tflite").write_bytes(q.tflite)
    return folder


@pytest.mark.integration
@pytest.mark.parametrize("model, extra", [("small.keras", []), pytest.param("small.tflite", ["--no-analysis"],
                                                                           marks=pytest.mark.slow)],
                         ids=["keras", "tflite"])
def test_no_native_kernels_run_in_tinyqs_process(small_files, tmp_path, model, extra):
    code, err, report, _ = run_tinyq(tmp_path, ["--quiet", "convert", str(small_files / model), "--data",
                                                str(small_files / "x.npz"), "--out", "out", "--no-cortex-m", *extra])
    assert code == 0, err[-3000:]
    assert report == {"modules": [], "calls": []}, report
    assert (tmp_path / "out" / "model_int8.tflite").is_file()


def _lstm_files(folder):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(2)
    keras = tf.keras
    model = keras.Sequential([keras.Input((8, 4)), keras.layers.LSTM(6), keras.layers.Dense(3)], name="lstm")
    model.save(folder / "lstm.keras")
    rng = np.random.default_rng(2)
    x = rng.random((32, 8, 4)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    np.savez(folder / "x.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])


def _one_error_line(code: int, err: str) -> str:
    """The run ended with exit 2 (no signal death) and exactly one line on stderr; that line."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("tinyq: error: "), (code, err[-3000:])
    return lines[0]


@pytest.mark.slow
def test_lstm_that_crashes_the_converter_in_preflight_is_one_line(tmp_path):
    _lstm_files(tmp_path)
    code, err, report, _ = run_tinyq(tmp_path, ["--quiet", "convert", "lstm.keras", "--data", "x.npz", "--out", "d"])
    if code == 0:  # a TF converter that no longer crashes on it: the hooked test below still covers the crash
        pytest.skip("this TF converter converts the LSTM model")
    line = _one_error_line(code, err)
    assert ("TF converter crashed (signal SIGSEGV) during pre-flight int8 conversion of model 'lstm'; tinyq "
            "itself is unharmed") in line
    assert report["calls"] == [] and not (tmp_path / "d").exists()


def test_converter_crash_in_preflight_is_one_line(small_files, tmp_path):
    code, err, report, _ = run_tinyq(tmp_path, ["--quiet", "convert", str(small_files / "small.keras"), "--data",
                                                str(small_files / "x.npz"), "--out", "d"],
                                     hook="tinyq.quantize:_int8_from_file=native_hooks:segfault")
    line = _one_error_line(code, err)
    assert "TF converter crashed (signal SIGSEGV) during pre-flight int8 conversion of model 'small'" in line
    assert report["calls"] == [] and not (tmp_path / "d").exists()


def test_a_worker_that_stops_responding_ends_the_run_at_its_limit(small_files, tmp_path):
    import json
    import time

    import native_hooks
    import procs

    stopped = tmp_path / "stopped.json"
    run = run_tinyq(tmp_path, ["--quiet", "convert", str(small_files / "small.tflite"), "--data",
                               str(small_files / "x.npz"), "--out", "d", "--timeout", "5"],
                    hook="tinyq.qmodel:_litert_details=native_hooks:stop_self",
                    env={native_hooks.STOPPED_AT_ENV: str(stopped)})
    ended = time.time()
    line = _one_error_line(run.code, run.stderr)
    assert line == ("tinyq: error: LiteRT did not finish loading model 'small' within its time limit of 5 s; its "
                    "worker was killed (--timeout SECONDS sets another limit)")
    at = json.loads(stopped.read_text())
    assert 5 <= run.line_times[0] - at["time"] < 5 + 2.5, run.line_times[0] - at["time"]  # the limit, a margin
    assert ended - at["time"] < 5 + 20  # and the exit (TensorFlow's teardown takes seconds on a busy machine)
    assert procs.proc_of(at["pid"]) is None  # the stopped worker was killed, not left behind
    assert not (tmp_path / "d").exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".d")] == []


@pytest.mark.integration
@pytest.mark.slow
def test_firmware_timeout_limits_its_tflm_reference_run(small_files, tmp_path):
    """`tinyq firmware --timeout`: a TFLM reference run that stops responding ends the command at the limit with
    one line, and report.json is left as it was."""
    code, err, _, _ = run_tinyq(tmp_path, ["--quiet", "convert", str(small_files / "small.tflite"), "--data",
                                           str(small_files / "x.npz"), "--out", "out", "--no-cortex-m",
                                           "--no-analysis"])
    assert code == 0, err[-3000:]
    before = (tmp_path / "out" / "report.json").read_bytes()
    run = run_tinyq(tmp_path, ["--quiet", "firmware", "--out", "out", "--images", "4", "--timeout", "3"],
                    hook="tinyq.runtimes:_tflm_outputs=native_hooks:stop_self")
    line = _one_error_line(run.code, run.stderr)
    assert line == ("tinyq: error: TFLM did not finish TFLM over 4 inputs within its time limit of 3 s; its worker "
                    "was killed (--timeout SECONDS sets another limit)"), line
    assert (tmp_path / "out" / "report.json").read_bytes() == before


def test_stopped_worker_times_out_and_the_next_call_gets_a_new_one():
    import time

    import native_hooks

    with native.Workers(timeout=1.5) as w:
        first, _ = w.call(native.Runtime.TFLM, "warm-up", native_hooks.echo_pid, 1)
        start = time.monotonic()
        with pytest.raises(NativeTimeout, match=r"^TFLM did not finish a stopped call within its time limit of 1.5 s"):
            w.call(native.Runtime.TFLM, "a stopped call", native_hooks.stop_self)
        assert 1.5 <= time.monotonic() - start < 4
        second, value = w.call(native.Runtime.TFLM, "after", native_hooks.echo_pid, 2)
        assert value == 2 and second != first


def test_default_limit_grows_with_model_size_and_inputs():
    base = native.default_limit(0, 0)
    assert base == native.BASE_SECONDS
    assert native.default_limit(100_000, 10_000) > native.default_limit(100_000, 100) > base
    assert native.default_limit(8 << 20, 100) > native.default_limit(1 << 20, 100)
    assert native.Workers(timeout=7).limit(8 << 20, 10_000) == 7
    with pytest.raises(TinyqError):
        native.Workers(timeout=0)


def test_commands_without_a_timeout_get_one_and_its_expiry_is_one_line():
    import subprocess
    import time

    assert native.CHILD_SECONDS > 0
    start = time.monotonic()
    with pytest.raises(native.ChildTimeout) as err:
        native.run_child(["sleep", "30"], timeout=0.5)
    assert time.monotonic() - start < 5
    assert isinstance(err.value, subprocess.TimeoutExpired) and isinstance(err.value, TinyqError)
    assert str(err.value) == "sleep did not finish within 0.5 s and was killed: sleep 30"


@pytest.mark.slow
def test_a_model_the_worker_cannot_load_is_converted_there_from_a_saved_model(monkeypatch):
    import tensorflow as tf

    keras = tf.keras

    class Halve(keras.layers.Layer):  # defined here only: a fresh process cannot load the model's .keras
        def call(self, x):
            return x * 0.5

    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3, activation="relu"), Halve(),
                              keras.layers.Flatten(), keras.layers.Dense(3)], name="custom")

    def in_tinyqs_process(*_args):
        raise AssertionError("the converter ran in tinyq's own process")

    monkeypatch.setattr(quantize, "run_converter", in_tinyqs_process)  # the worker imports its own, unpatched
    x = np.random.default_rng(0).random((16, 6, 6, 1)).astype(np.float32)
    q = quantize.quantize(model, x, quantize.QuantizeConfig(num_calibration_samples=16))
    assert q.op_names == ("CONV_2D", "MUL", "RESHAPE", "FULLY_CONNECTED") and q.input.dtype == "int8"
    assert len(quantize.convert_float(model)) > 0
