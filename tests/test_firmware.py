"""The C engine's host library (firmware.build_library / run_library): split over workers yet byte-identical,
sizes checked, and a crash or failed invoke in the library a clear TinyqError instead of a dead tinyq."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from tinyq import emit, native, pipeline
from tinyq.targets import firmware
from tinyq.errors import BuildError, NativeCrash

pytestmark = pytest.mark.integration

# Stand-in for a broken engine build: the library's interface, copying the first two input bytes to the output,
# writing through a null pointer on an input starting with 99 and failing the invoke on one starting with 98.
BROKEN_ENGINE_C = r"""
#include <stdint.h>
int32_t tinyq_engine_input_bytes(void) { return 4; }
int32_t tinyq_engine_output_bytes(void) { return 2; }
const char *tinyq_engine_model_name(void) { return "broken"; }
int tinyq_engine_run_batch(const int8_t *in, int8_t *out, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        if (in[4 * i] == 99) {
            *(int8_t *volatile)0 = 1;
        }
        if (in[4 * i] == 98) {
            return 1 + (int)i;
        }
        out[2 * i] = in[4 * i];
        out[2 * i + 1] = in[4 * i + 1];
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def broken_lib(tmp_path_factory):
    folder = tmp_path_factory.mktemp("broken_engine")
    (folder / "broken.c").write_text(BROKEN_ENGINE_C)
    lib = folder / firmware.ENGINE_LIBRARY
    subprocess.run([shutil.which("gcc") or "cc", "-O0", "-shared", "-fPIC", str(folder / "broken.c"), "-o", str(lib)],
                   check=True)
    return lib


def _inputs(n: int) -> np.ndarray:
    return (np.arange(n * 4) % 90).astype(np.int8).reshape(n, 4)


def test_slices_over_two_workers_join_in_order(broken_lib):
    x = _inputs(3 * firmware.MIN_SLICE + 5)
    with native.Workers() as w:
        two = firmware.run_library(broken_lib, x, 2, w, jobs=2)
        one = firmware.run_library(broken_lib, x, 2, w, jobs=1)
    assert two.tobytes() == one.tobytes() == x[:, :2].tobytes()


def test_a_crash_in_the_library_names_the_c_engine_and_the_slice(broken_lib):
    n = 2 * firmware.MIN_SLICE
    x = _inputs(n)
    x[n - 3, 0] = 99
    with native.Workers() as w:
        with pytest.raises(NativeCrash) as err:
            firmware.run_library(broken_lib, x, 2, w, jobs=2)
        assert (err.value.runtime, err.value.signal) == ("C engine", "signal SIGSEGV")
        assert err.value.step == f"the run of {broken_lib.resolve()} on inputs {n // 2} to {n - 1} of {n}"
        assert f"C engine crashed (signal SIGSEGV) during the run of {broken_lib.resolve()}" in str(err.value)
        x[n - 3, 0] = 0
        assert firmware.run_library(broken_lib, x, 2, w, jobs=2).tobytes() == x[:, :2].tobytes()  # a new worker


def test_a_failed_invoke_names_the_input(broken_lib):
    x = _inputs(2 * firmware.MIN_SLICE)
    x[700, 0] = 98
    with pytest.raises(BuildError, match=r"C engine of model 'broken': invoke failed on input 700 \(status 189\)"):
        firmware.run_library(broken_lib, x, 2)


@pytest.mark.parametrize("in_bytes, out_bytes", [(5, 2), (4, 3)])
def test_wrong_sizes_are_refused_naming_both(broken_lib, in_bytes, out_bytes):
    x = np.zeros((3, in_bytes), np.int8)
    with pytest.raises(BuildError, match=f"model 'broken' takes 4-byte inputs and gives 2-byte outputs, but was "
                                         f"given {in_bytes}-byte inputs for {out_bytes}-byte outputs"):
        firmware.run_library(broken_lib, x, out_bytes)


@pytest.mark.parametrize("sanitize", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["library", "sanitized-stub"])
def test_pipeline_host_check_is_bitexact_on_the_whole_test_set(sanitize, mlp_q, mlp_verify, tmp_path):
    """Both ways the pipeline runs the test set through the C engine: the -O3 library, or the sanitized stub."""
    fw = tmp_path / "fw"
    emission = emit.prepare(mlp_q, mlp_verify, "mlp")
    emit.write_files(list(emission.files), fw)
    said: list[str] = []
    fig = pipeline._host_c_engine(emission.engine, mlp_verify, fw, tmp_path / "build",
                                  pipeline.PipelineConfig(sanitize=sanitize), said.append)
    assert (fig.images, fig.bitexact_vs_tflm, fig.sanitized) == (10000, 1.0, sanitize)
    assert any(("sanitized C engine stub" in s) == sanitize and "10000 test images" in s for s in said)
    assert (tmp_path / "build" / "host-lib" / firmware.ENGINE_LIBRARY).is_file() != sanitize


def test_a_file_that_is_not_an_engine_library_is_refused(tmp_path):
    junk = tmp_path / firmware.ENGINE_LIBRARY
    junk.write_text("not ELF")
    with pytest.raises(BuildError, match="cannot load the C engine library"):
        firmware.run_library(junk, np.zeros((2, 4), np.int8), 2)


def test_an_interrupt_does_not_wait_for_the_slices_still_running(broken_lib, monkeypatch):
    """Ctrl-C while one worker is busy: run_library kills the workers instead of waiting for their slices."""
    import time

    x = _inputs(2 * firmware.MIN_SLICE)
    with native.Workers() as w:
        assert firmware.run_library(broken_lib, x, 2, w).shape == (len(x), 2)  # both workers up
        real_call = w.call

        def interrupted(runtime, step, fn, *args, slot=0):
            if slot == 1:
                return real_call(runtime, "a long slice", time.sleep, 60, slot=1)
            raise KeyboardInterrupt

        monkeypatch.setattr(w, "call", interrupted)
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            firmware.run_library(broken_lib, x, 2, w)
        assert time.monotonic() - start < 30  # not the 60 s slice: generous for a loaded machine
        monkeypatch.undo()
        assert firmware.run_library(broken_lib, x, 2, w).tobytes() == x[:, :2].tobytes()  # fresh workers
