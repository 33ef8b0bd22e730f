"""The specialised CONV_2D kernels (tinyq/kernels/conv.py, firmware_stub/runtime/tq_conv.c) bit-exact with TFLM.

Two synthetic int8 models cover every branch of the choice and of the C: shallow inputs (1 and 3 channels),
depths that are and are not multiples of 4, odd output channels and odd pixel counts, strides, dilation, SAME
padding with the input offset applied per tap, VALID with it folded, and 1x1 convolutions both in place and
through the gather. Each runs on a few hundred random inputs on the host (packed path, -DTQ_PORTABLE, ASan+UBSan)
and on a few dozen in QEMU on a DSP core (Cortex-M4) and one without (Cortex-M3). The division-free
requantization is checked against the generic one over random and edge values.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf

from tinyq import cortex_m, emit, firmware, verify
from tinyq.graph import read_graph
from tinyq.kernels import conv
from tinyq.lower import Optimize, lower
from tinyq.quantize import QuantizeConfig, quantize

L = tf.keras.layers
SAMPLES = 300
QEMU_SAMPLES = 40
RUNTIME = firmware.STUB_DIR / "runtime"


def _deep(x):
    x = L.Conv2D(5, 3, padding="same", activation="relu")(x)        # in_c 3, SAME: offset per tap, odd out_c
    x = L.Conv2D(6, 1, padding="same")(x)                           # 1x1 over 5 channels: gathered
    x = L.Conv2D(8, (5, 3), strides=(2, 1), padding="same")(x)      # in_c 6, strides
    x = L.Conv2D(8, 3, dilation_rate=2, padding="same", activation="relu")(x)  # whole groups, padding taps
    x = L.Conv2D(12, 1)(x)                                          # pointwise in place, odd pixel count
    x = L.Conv2D(7, 1, strides=2)(x)                                # pointwise strided, odd out_c
    return L.Conv2D(4, 3)(x)                                        # in_c 7, VALID: offset folded


def _shallow(x):
    x = L.Conv2D(16, 3, activation="relu")(x)                       # the demo CNN's first layer, in_c 1
    return L.Conv2D(9, 3, strides=2, padding="same")(x)             # in_c 16, stride 2 over SAME


@dataclass(frozen=True)
class Case:
    name: str
    layers: object
    shape: tuple[int, ...]


CASES = (Case("deep", _deep, (9, 9, 3)), Case("shallow", _shallow, (12, 11, 1)))


def _convert(case: Case, seed: int):
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input(case.shape)
    model = tf.keras.Model(inp, case.layers(inp), name=case.name)
    rng = np.random.default_rng(seed)
    for v in model.weights:  # non-zero biases, or the converter drops them
        if v.path.endswith("bias"):
            v.assign(rng.normal(0.0, 0.2, v.shape).astype(np.float32))
    calib = rng.random((64,) + case.shape, dtype=np.float32) * 2 - 1
    return quantize(model, calib, QuantizeConfig(64, input_range=(-1.0, 1.0)))


@dataclass(frozen=True)
class Emitted:
    """One case's generated folder (speed), its random int8 inputs and TFLM's outputs for them."""

    quantized: object
    folder: object
    inputs: np.ndarray
    tflm: np.ndarray


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    out = {}
    for seed, case in enumerate(CASES, start=11):
        q = _convert(case, seed)
        xs = np.random.default_rng(seed).integers(-128, 128, (SAMPLES,) + q.input.shape[1:], dtype=np.int8)
        tflm = verify.run_tflm(q.tflite, xs)
        r = verify.VerifyResult.tflm_only(q, xs, tflm, np.arange(len(xs)) % 10)
        folder = tmp_path_factory.mktemp(case.name) / "fw"
        emit.emit(q, r, folder, name=case.name, golden_count=3, optimize=Optimize.SPEED)
        out[case.name] = Emitted(q, folder, xs, tflm.reshape(len(xs), -1))
    return out


def _assert_bitexact(outs: np.ndarray, tflm: np.ndarray) -> None:
    same = np.all(outs == tflm, axis=1)
    assert same.all(), f"{int((~same).sum())} of {len(same)} outputs differ, first at {np.flatnonzero(~same)[:5]}"


def test_choice_covers_every_branch_and_size_keeps_generic(emitted):
    kernels = []
    for e in emitted.values():
        g = read_graph(e.quantized.tflite)
        assert {c.kernel for c in lower(g, Optimize.SIZE).calls if "conv" in c.kernel} == {"tq_conv2d"}
        calls = [c for c in lower(g, Optimize.SPEED).calls if "conv" in c.kernel]
        kernels += [c.kernel for c in calls]
        for c in calls:
            fields = dict(c.fields)
            assert c.scratch_bytes == (0 if c.kernel == "tq_conv2d_1x1" else 4 * int(fields["k_padded"]))
    assert kernels.count("tq_conv2d_1x1") == 2
    assert kernels.count("tq_conv2d_im2col") == 7


def test_weight_layout_pairs_channels_per_group_of_four():
    w = np.arange(3 * 5, dtype=np.int8).reshape(3, 5)  # 3 channels, K = 5 -> 8
    packed = conv.pair_weights(w, 3, 8).reshape(2, 2, 2, 4)  # [pair][group][channel][4]
    assert packed[0, 0].tolist() == [[0, 1, 2, 3], [5, 6, 7, 8]]
    assert packed[0, 1].tolist() == [[4, 0, 0, 0], [9, 0, 0, 0]]
    assert packed[1, 0].tolist() == [[10, 11, 12, 13], [0, 0, 0, 0]]


@pytest.mark.integration
@pytest.mark.parametrize("build", ["packed", "portable", "asan-ubsan"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_conv_bitexact_with_tflm_on_host(case, build, emitted, tmp_path):
    e = emitted[case.name]
    exe = firmware.build_stub(e.folder, tmp_path / "build", opt="-O2 -DTQ_PORTABLE" if build == "portable" else "-O2",
                              sanitize=build == "asan-ubsan")
    assert firmware.run_golden(exe).passed
    _assert_bitexact(firmware.run_batch(exe, e.inputs, e.tflm.shape[1]), e.tflm)


@pytest.mark.integration
@pytest.mark.qemu
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m3"])
def test_conv_bitexact_with_tflm_in_qemu(target, emitted, tmp_path):
    for name, e in emitted.items():
        elf = cortex_m.build_cortex_m(e.folder, tmp_path / name, target=target)
        outs = cortex_m.run_qemu_batch_measured(elf, e.inputs[:QEMU_SAMPLES], e.tflm.shape[1], target=target).outputs
        _assert_bitexact(outs, e.tflm[:QEMU_SAMPLES])


REQUANT_HARNESS = r"""
#include <stdio.h>
#include "tq_conv.c"
#include "tinyq_kernels.h"

static uint32_t state = 12345u;
static uint32_t next(void) { state = state * 1664525u + 1013904223u; return state; }

int main(void)
{
    static const int32_t edges[] = {0, 1, -1, 2, -2, 3, -3, 127, -128, 255, -255, 1 << 20, -(1 << 20), 0x3FFFFFFF,
                                    -0x40000000, INT32_MAX, INT32_MIN + 1, INT32_MIN};
    const int32_t n_edges = (int32_t)(sizeof edges / sizeof edges[0]);
    long n = 0;
    int32_t shift, e, i;
    for (shift = -31; shift <= 30; shift++) {
        const int32_t left = shift > 0 ? shift : 0;
        for (i = 0; i < 20000; i++) {
            const int32_t mult = i < 64 ? (int32_t)(i == 0 ? 0 : (1u << 30) + (uint32_t)i * 0x00FFFFFFu)
                                        : (int32_t)(next() >> 1);
            const int32_t rq[4] = {0, mult, left, shift > 0 ? 0 : -shift};
            const tq_conv_rq q = channel_rq(rq, 0);
            for (e = 0; e <= n_edges; e++) {
                const int32_t raw = e < n_edges ? edges[e] : (int32_t)next();
                /* keep x << left within int32, as tinyq/lower.py proves for every layer */
                const int32_t x = (int32_t)((uint32_t)raw << (left + 1)) >> (left + 1);
                const int32_t got = rescale(x, q);
                const int32_t want = tq_multiply_by_quantized_multiplier(x, mult, shift);
                if (got != want) {
                    printf("x=%ld mult=%ld shift=%ld: %ld, not %ld\n", (long)x, (long)mult, (long)shift, (long)got,
                           (long)want);
                    return 1;
                }
                n++;
            }
        }
    }
    printf("%ld\n", n);
    return 0;
}
"""


@pytest.mark.integration
def test_division_free_requantization_equals_generic(tmp_path):
    src = tmp_path / "requant.c"
    src.write_text(REQUANT_HARNESS)
    exe = tmp_path / "requant"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-fsanitize=undefined",
                    "-fno-sanitize-recover=all", f"-I{RUNTIME}", str(src), str(RUNTIME / "tinyq_kernels.c"), "-o",
                    str(exe)], check=True, capture_output=True, text=True)
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert int(run.stdout) == 62 * 20000 * 19
