"""The specialised CONV_2D kernels (tinyq/engine/ops/conv.py, firmware_stub/runtime/conv/) bit-exact with TFLM.

Four synthetic int8 models cover the choice and the C: shallow inputs (1 and 3 channels), 1x1 over depths 8 and 16,
depths that are and are not multiples of 4, odd output channels and odd pixel counts, strides, dilation, SAME
padding with the input offset applied per tap, VALID with it folded, and 1x1 convolutions both widened in runs
and gathered. Each runs on a few hundred random inputs on the host (host SIMD, -DTQ_PORTABLE, DSP twins under ASan+UBSan)
and on a few dozen in QEMU on a DSP core (Cortex-M4) and one without (Cortex-M3). The division-free
requantization is checked against the generic one over random and edge values, and the requantization modes
converted models do not reach (unfused, clamped) against the generic kernel directly.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf
from kernel_checks import HOST_BUILDS, QEMU_TARGETS, check_host, check_qemu, convert_layers

from tinyq import emit, runtimes, verify
from tinyq.targets import firmware
from tinyq.engine import read_graph
from tinyq.engine.ops import conv
from tinyq.engine import Optimize, lower

L = tf.keras.layers
SAMPLES = 300
RUNTIME = firmware.STUB_DIR / "runtime"
# The runtime compiled in place: its shared headers and every op family's folder on the include path.
RUNTIME_INCLUDES = [f"-I{d}" for d in (RUNTIME, *sorted(p for p in RUNTIME.iterdir() if p.is_dir()))]


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


def _first(x):
    x = L.Conv2D(3, 3, strides=2, padding="same")(x)                # in_c 2, SAME stride 2: offset per tap, border
    x = L.Conv2D(1, (3, 2), activation="relu6")(x)                  # in_c 3, VALID, out_c 1, clamped activation
    x = L.Conv2D(7, 3, dilation_rate=2, padding="same")(x)          # in_c 1, dilated SAME, odd out_c and pixels
    return L.Conv2D(4, (5, 1), strides=(1, 2), padding="same", activation="relu")(x)  # in_c 7: not shallow


def _pointwise(x):
    x = L.Conv2D(16, 1)(x)                                          # K = 8
    x = L.Conv2D(8, 1)(x)                                           # K = 16
    x = L.Conv2D(9, 1, strides=2)(x)                                # K = 8 strided, odd out_c
    return L.Conv2D(4, 1, activation="relu6")(x)                    # in_c 9: gathered, clamped


@dataclass(frozen=True)
class Case:
    name: str
    layers: object
    shape: tuple[int, ...]


CASES = (Case("deep", _deep, (9, 9, 3)), Case("shallow", _shallow, (12, 11, 1)), Case("first", _first, (13, 11, 2)),
         Case("pointwise", _pointwise, (9, 7, 8)))


def _convert(case: Case, seed: int):
    return convert_layers(case.name, case.layers, case.shape, seed)


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
        tflm = runtimes.run_tflm(q.tflite, xs)
        r = verify.VerifyResult.tflm_only(q, xs, tflm, np.arange(len(xs)) % 10)
        folder = tmp_path_factory.mktemp(case.name) / "fw"
        emit.emit(q, r, folder, name=case.name, golden_count=3, optimize=Optimize.SPEED)
        out[case.name] = Emitted(q, folder, xs, tflm.reshape(len(xs), -1))
    return out


def test_choice_covers_every_branch_and_size_keeps_generic(emitted):
    kernels, modes = [], set()
    for e in emitted.values():
        g = read_graph(e.quantized.tflite)
        assert {c.kernel for c in lower(g, Optimize.SIZE).calls if "conv" in c.kernel} == {"tq_conv2d"}
        calls = [c for c in lower(g, Optimize.SPEED).calls if "conv" in c.kernel]
        kernels += [c.kernel for c in calls]
        for c in calls:
            fields = dict(c.fields)
            if c.kernel == "tq_conv2d_shallow":
                assert int(fields["in_c"]) <= 3 and c.scratch_bytes == 8 * ((int(fields["taps"]) + 1) // 2)
            else:
                assert c.scratch_bytes == 4 * int(fields["k_padded"])
                full = int(fields["act_min"]) == -128 and int(fields["act_max"]) == 127
                modes.add((c.kernel, full, int(fields["k_padded"]) in (8, 16)))
    assert kernels.count("tq_conv2d_1x1") == 5
    assert kernels.count("tq_conv2d_im2col") == 7
    assert kernels.count("tq_conv2d_shallow") == 5
    # converted models requantize fused over int8's whole range (the other modes: test_mm_requant_modes...)
    assert {(k, full) for k, full, _ in modes} == {("tq_conv2d_1x1", True), ("tq_conv2d_im2col", True)}
    assert ("tq_conv2d_1x1", True, True) in modes and ("tq_conv2d_1x1", True, False) in modes


def test_shallow_layout_pairs_taps_and_channels():
    w = np.arange(1, 3 * 5 + 1, dtype=np.int8).reshape(3, 5)  # 3 channels, K = 5 -> 3 words per channel
    words = conv.shallow_weights(w, 3).view(np.uint32).reshape(2, 3, 2)  # [pair][word][channel]
    assert [int(v) for v in words[0, 0]] == [1 | 2 << 16, 6 | 7 << 16]
    assert [int(v) for v in words[0, 2]] == [5, 10]
    assert [int(v) for v in words[1, 1]] == [13 | 14 << 16] * 2  # the odd channel's copy completes the pair
    neg = conv.shallow_weights(np.array([[-1, -2]], dtype=np.int8), 1).view(np.uint32)
    assert int(neg[0]) == 0xFFFF | 0xFFFE << 16
    fields = dict(k_h=2, k_w=3, in_c=2, in_w=10, dil_h=2, dil_w=1)
    assert conv.tap_offsets(fields).tolist() == [0, 1, 2, 3, 4, 5, 40, 41, 42, 43, 44, 45]
    rows = conv.shallow_requant(np.array([7, -3]), np.array([1 << 30, 3 << 29]), np.array([-1, -9]), -5)
    c = (1 << 30) + (1 << 39) - 5 * (1 << 40)
    assert rows.reshape(2, 6)[1].tolist() == [c & 0xFFFFFFFF, (c >> 32), -3, 3 << 29, 8, -(1 << 31)]
    assert conv.shallow_requant(np.array([0]), np.array([1 << 30]), np.array([0]), 0) is None  # no right shift


def test_weight_layout_pairs_channels_per_group_of_four():
    w = np.arange(3 * 5, dtype=np.int8).reshape(3, 5)  # 3 channels, K = 5 -> 8
    packed = conv.pair_weights(w, 3, 8).reshape(2, 2, 2, 4)  # [pair][group][channel][4]
    assert packed[0, 0].tolist() == [[0, 1, 2, 3], [5, 6, 7, 8]]
    assert packed[0, 1].tolist() == [[4, 0, 0, 0], [9, 0, 0, 0]]
    assert packed[1, 0].tolist() == [[10, 11, 12, 13], [10, 11, 12, 13]]  # the odd channel's copy completes it
    rows = conv.requant_rows(np.array([7, -3, 5]), np.array([1 << 30, 3 << 29, 9]), np.array([2, -9, 0]))
    assert rows.reshape(4, 6).tolist() == [[2, 0, 7, 1 << 30, 0, 0], [0, 9, -3, 3 << 29, 0, 0], [0, 0, 5, 9, 0, 0],
                                           [0, 0, 5, 9, 0, 0]]


@pytest.mark.integration
@HOST_BUILDS
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_conv_bitexact_with_tflm_on_host(case, opt, sanitize, emitted, tmp_path):
    e = emitted[case.name]
    check_host(e.folder, e.inputs, e.tflm, tmp_path / "build", opt, sanitize)


@pytest.mark.integration
@pytest.mark.qemu
@QEMU_TARGETS
def test_conv_bitexact_with_tflm_in_qemu(target, emitted, tmp_path):
    for name, e in emitted.items():
        check_qemu(e.folder, e.inputs, e.tflm, tmp_path / name, target)


REQUANT_HARNESS = r"""
#include <stdio.h>
#include "tq_requant.h"

/* TFLite's MultiplyByQuantizedMultiplier as gemmlowp writes it, the reference the division-free forms must equal. */
static int32_t srdhm(int32_t a, int32_t b)
{
    int64_t ab;
    int64_t nudge;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

static int32_t rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static int32_t reference_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return rounding_divide_by_pot(srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

static uint32_t state = 12345u;
static uint32_t next(void) { state = state * 1664525u + 1013904223u; return state; }

int main(void)
{
    static const int32_t edges[] = {0, 1, -1, 2, -2, 3, -3, 127, -128, 255, -255, 1 << 20, -(1 << 20), 0x3FFFFFFF,
                                    -0x40000000, INT32_MAX, INT32_MIN + 1, INT32_MIN};
    const int32_t n_edges = (int32_t)(sizeof edges / sizeof edges[0]);
    long n = 0, fused = 0;
    int32_t shift, e, i;
    for (shift = -31; shift <= 30; shift++) {
        const int32_t left = shift > 0 ? shift : 0;
        for (i = 0; i < 20000; i++) {
            const int32_t mult = i < 64 ? (int32_t)(i == 0 ? 0 : (1u << 30) + (uint32_t)i * 0x00FFFFFFu)
                                        : (int32_t)(next() >> 1);
            /* the fused form's output zero point, within int8 and where the constant fits (see conv.py) */
            const int32_t zp = (int32_t)(next() % 256u) - 128;
            const int32_t r = -shift;
            const int64_t c = r >= 1 ? ((int64_t)1 << 30) + ((int64_t)1 << (30 + r)) + zp * (int64_t)((uint64_t)1 << (31 + r)) : 0;
            const int fits = r >= 1 && r <= 23;
            for (e = 0; e <= n_edges; e++) {
                const int32_t raw = e < n_edges ? edges[e] : (int32_t)next();
                /* keep x << left within int32, as tinyq/engine/ops/ proves for every layer */
                const int32_t x = (int32_t)((uint32_t)raw << (left + 1)) >> (left + 1);
                const int32_t want = reference_requantize(x, mult, shift);
                const int32_t got = tq_requantize(x, mult, shift);
                if (got != want || tq_multiply_by_quantized_multiplier(x, mult, shift) != want) {
                    printf("x=%ld mult=%ld shift=%ld: %ld, not %ld\n", (long)x, (long)mult, (long)shift, (long)got,
                           (long)want);
                    return 1;
                }
                if (fits) {
                    const int32_t f = tq_requantize_fused(x, mult, c, r - 1);
                    if (f != want + zp) {
                        printf("fused x=%ld mult=%ld shift=%ld zp=%ld: %ld, not %ld\n", (long)x, (long)mult,
                               (long)shift, (long)zp, (long)f, (long)(want + zp));
                        return 1;
                    }
                    fused++;
                }
                n++;
            }
        }
    }
    printf("%ld %ld\n", n, fused);
    return 0;
}
"""


@pytest.mark.integration
def test_division_free_requantization_equals_generic(tmp_path):
    src = tmp_path / "requant.c"
    src.write_text(REQUANT_HARNESS)
    exe = tmp_path / "requant"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-fsanitize=undefined",
                    "-fno-sanitize-recover=all", *RUNTIME_INCLUDES, str(src), str(RUNTIME / "tq_requant.c"), "-o",
                    str(exe)], check=True, capture_output=True, text=True)
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert [int(v) for v in run.stdout.split()] == [62 * 20000 * 19, 23 * 20000 * 19]


MM_HARNESS = r"""
#include <stdio.h>
#include <string.h>
#include "tq_conv.h"

static int32_t fields[21]; /* tq_conv_mm_params' 19 integers, then pointwise, fused */
static int8_t w_mm[8192], w[8192], sh[64], in[4096], out_mm[4096], out_ref[4096];
static int32_t rows[1024], bias[64], mult[64];
static int32_t scratch[1024];

#define READ(buf, n) (fread((buf), sizeof (buf)[0], (size_t)(n), stdin) == (size_t)(n))

int main(void)
{
    int32_t c, n_w, n_rows, n_out, out_c, k, n_in;
    while (READ(fields, 21)) {
        tq_conv_mm_params p;
        tq_conv_params g;
        memcpy(&p, fields, 19 * sizeof(int32_t));
        out_c = p.out_c;
        k = p.k_h * p.k_w * p.in_c;
        n_w = (out_c + 1) / 2 * 2 * p.k_padded;
        n_rows = (out_c + 1) / 2 * 2 * 6;
        n_in = p.in_h * p.in_w * p.in_c;
        n_out = p.out_h * p.out_w * out_c;
        if (n_w > (int32_t)sizeof w_mm || out_c * k > (int32_t)sizeof w || n_in > (int32_t)sizeof in
            || n_out > (int32_t)sizeof out_mm || n_rows > 1024 || out_c > 64) {
            printf("case too large for the harness's buffers\n");
            return 3;
        }
        if (!READ(w_mm, n_w) || !READ(rows, n_rows) || !READ(w, out_c * k) || !READ(bias, out_c)
            || !READ(mult, out_c) || !READ(sh, out_c) || !READ(in, n_in)) {
            return 1;
        }
        p.weights = w_mm;
        p.requant = rows;
        g.in_h = p.in_h; g.in_w = p.in_w; g.in_c = p.in_c; g.out_h = p.out_h; g.out_w = p.out_w; g.out_c = out_c;
        g.k_h = p.k_h; g.k_w = p.k_w; g.stride_h = p.stride_h; g.stride_w = p.stride_w; g.dil_h = p.dil_h;
        g.dil_w = p.dil_w; g.pad_h = p.pad_h; g.pad_w = p.pad_w; g.depth_multiplier = 1;
        g.input_offset = p.input_offset; g.output_offset = p.output_offset; g.act_min = p.act_min;
        g.act_max = p.act_max; g.weights = w; g.bias = bias; g.mult = mult; g.shift = sh;
        if (fields[19]) {
            (fields[20] ? tq_conv2d_1x1 : tq_conv2d_1x1_lr)(&p, in, out_mm, scratch);
        } else {
            (fields[20] ? tq_conv2d_im2col : tq_conv2d_im2col_lr)(&p, in, out_mm, scratch);
        }
        tq_conv2d(&g, in, out_ref);
        for (c = 0; c < n_out; c++) {
            if (out_mm[c] != out_ref[c]) {
                printf("case differs at %ld: %d, not %d\n", (long)c, out_mm[c], out_ref[c]);
                return 2;
            }
        }
        printf("ok\n");
    }
    return 0;
}
"""


def _mm_case(rng, pointwise: bool, fused: bool, full: bool, in_c: int, out_c: int) -> bytes:
    """One random layer for MM_HARNESS: its tq_conv_mm_params fields and arrays, the generic call's arrays, an
    input. Unfused rows get left and right shifts; a narrow activation range exercises the clamp."""
    k_h, k_w = (1, 1) if pointwise else (5, 3)
    in_h, in_w = 9 + (out_c % 2) * 2, 7 + (out_c % 2) * 2  # odd pixel counts too
    stride = 2 if not pointwise or out_c == 5 else 1  # 1x1: odd out_c with odd and even pixel counts
    dil = 1 if pointwise else 2
    pad = 0 if pointwise else 1
    out_h = (in_h + 2 * pad - dil * (k_h - 1) - 1) // stride + 1
    out_w = (in_w + 2 * pad - dil * (k_w - 1) - 1) // 1 + 1
    f = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h, k_w=k_w,
             stride_h=stride, stride_w=1, dil_h=dil, dil_w=dil, pad_h=pad, pad_w=pad,
             input_offset=0 if pointwise else 17, output_offset=int(rng.integers(-20, 20)),
             act_min=-128 if full else -100, act_max=127 if full else 90)
    weights = rng.integers(-127, 128, (out_c, k_h * k_w * in_c)).astype(np.int8)
    bias = rng.integers(-3000, 3000, out_c).astype(np.int32)
    mult = rng.integers(1 << 30, (1 << 31) - 1, out_c).astype(np.int32)
    shift = (rng.integers(-12, -6, out_c) if fused else rng.integers(-6, 3, out_c)).astype(np.int8)
    k_padded = conv.padded_depth(f)
    rows = (conv.shallow_requant(bias, mult, shift, f["output_offset"]) if fused
            else conv.requant_rows(bias, mult, shift))
    values = dict(f, k_padded=k_padded)
    x = rng.integers(-128, 128, in_h * in_w * in_c).astype(np.int8)
    head = np.array([values[k] for k in conv.FIELDS] + [int(pointwise), int(fused)], dtype=np.int32)
    return b"".join([head.tobytes(),
                     conv.pair_weights(weights, out_c, k_padded).tobytes(), rows.astype(np.int32).tobytes(),
                     weights.tobytes(), bias.tobytes(), mult.tobytes(), shift.tobytes(), x.tobytes()])


@pytest.mark.integration
@pytest.mark.parametrize("build", ["simd", "sse2", "portable", "emulated-asan-ubsan"])
def test_mm_requant_modes_equal_generic_kernel(build, tmp_path):
    """Every requantization mode of tq_conv2d_1x1 and tq_conv2d_im2col and of their _lr twins (converted models
    reach only the fused one over int8's whole range), odd and even out_c and pixel counts, small and large K, against the generic tq_conv2d: on the host's
    SIMD built for this machine (AVX2 where it has it) and for baseline x86-64 (SSE2), on the portable path, and
    on the plain-C twins of the DSP instructions."""
    src = tmp_path / "mm.c"
    src.write_text(MM_HARNESS)
    exe = tmp_path / "mm"
    native = subprocess.run(["gcc", "-march=native", "-E", "-x", "c", "/dev/null"], capture_output=True)
    flags = {"simd": ["-O2"] + (["-march=native"] if native.returncode == 0 else []), "sse2": ["-O2"],
             "portable": ["-O2", "-DTQ_PORTABLE"],
             "emulated-asan-ubsan": ["-O1", "-DTQ_EMULATE_DSP", "-fsanitize=address,undefined",
                                     "-fno-sanitize-recover=all"]}[build]
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", *flags, *RUNTIME_INCLUDES, str(src),
                    str(RUNTIME / "conv" / "tq_conv.c"), str(RUNTIME / "tq_requant.c"), "-o", str(exe)], check=True,
                   capture_output=True, text=True)
    rng = np.random.default_rng(5)
    cases = [_mm_case(rng, pw, fused, full, in_c, out_c) for pw in (True, False) for fused in (True, False)
             for full in (True, False) for in_c in (8, 16, 36, 5) for out_c in (5, 6, 7) if pw is False or in_c % 4 == 0]
    run = subprocess.run([str(exe)], input=b"".join(cases), capture_output=True, timeout=60)
    assert run.returncode == 0 and run.stdout.decode().split() == ["ok"] * len(cases), run.stdout + run.stderr
