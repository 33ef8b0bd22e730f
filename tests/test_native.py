"""Crash isolation: native runtimes run in worker processes; a stand-in that segfaults or aborts at a chosen step
becomes a NativeCrash naming runtime, step and signal, the worker is replaced, and the other results are kept."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from tinyq import native, quantize, verify
from tinyq.errors import NativeCrash

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
    return verify._litert_outputs(tflite, inputs, reference)


def tflm_crashes_just_below(tflite, arena_size, sample):
    """TFLM that segfaults at the 16 arena sizes just below $TINYQ_TEST_ARENA_CRASH_BELOW (as TFLM does for a
    640-input autoencoder at 22,024-22,039 B), and runs normally elsewhere."""
    edge = int(os.environ[CRASH_BELOW_ENV])
    if edge - 16 <= arena_size < edge:
        segfault()
    return verify._tflm_runs(tflite, arena_size, sample)


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
    monkeypatch.setattr(verify, "_litert_outputs", litert_crashes_on_default_kernels)
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
    true_min = verify.tflm_arena_bytes(q.tflite, xq[0])
    monkeypatch.setenv(CRASH_BELOW_ENV, str(true_min))
    monkeypatch.setattr(verify, "_tflm_runs", tflm_crashes_just_below)
    probes: list[verify.ArenaProbe] = []
    assert verify.tflm_arena_bytes(q.tflite, xq[0], probes=probes) == true_min
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
    probes: list[verify.ArenaProbe] = []
    with native.Workers() as w:
        arena = verify.tflm_arena_bytes(q.tflite, sample, w, probes)
        assert w.call(native.Runtime.TFLM, "check", verify._tflm_runs, q.tflite, arena, sample)
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
