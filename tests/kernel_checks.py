"""The checks every specialised kernel family runs on its emitted test folders: the host builds (the packed path
with the host's own SIMD sums, built for this machine as the engine library is; the portable path of cores
without DSP; and the packed path on the plain-C twins of the DSP instructions, under ASan+UBSan) and QEMU on a
core with DSP and one without, each compared with TFLM byte for byte."""

import numpy as np
import pytest
import tensorflow as tf

from tinyq.targets import cortex_m, firmware
from tinyq.quantize import QuantizeConfig, quantize

QEMU_SAMPLES = 40
HOST_BUILDS = pytest.mark.parametrize(
    "opt,sanitize", [("-O3", False), ("-O2 -DTQ_PORTABLE", False),
                     pytest.param("-O1 -DTQ_EMULATE_DSP", True, marks=pytest.mark.slow)],
    ids=["simd-O3", "portable", "emulated-asan-ubsan"])
QEMU_TARGETS = pytest.mark.parametrize("target", ["cortex-m4", pytest.param("cortex-m3", marks=pytest.mark.slow)])


def assert_bitexact(outs: np.ndarray, tflm: np.ndarray) -> None:
    same = np.all(outs == tflm, axis=1)
    assert same.all(), f"{int((~same).sum())} of {len(same)} outputs differ, first at {np.flatnonzero(~same)[:5]}"


def check_host(folder, inputs: np.ndarray, tflm: np.ndarray, build_dir, opt: str = "-O3",
               sanitize: bool = False) -> None:
    """Golden vectors, then every input, through the stub built on the host."""
    exe = firmware.build_stub(folder, build_dir, opt=opt, sanitize=sanitize, extra=("NATIVE=1",))
    assert firmware.run_golden(exe).passed
    assert_bitexact(firmware.run_batch(exe, inputs, tflm.shape[1]), tflm)


def check_qemu(folder, inputs: np.ndarray, tflm: np.ndarray, build_dir, target: str,
               samples: int = QEMU_SAMPLES) -> None:
    """The first `samples` inputs through the stub on a Cortex-M core in QEMU."""
    elf = cortex_m.build_cortex_m(folder, build_dir, target=target)
    outs = cortex_m.run_qemu_batch_measured(elf, inputs[:samples], tflm.shape[1], target=target).outputs
    assert_bitexact(outs, tflm[:samples])


def convert_layers(name: str, layers, shape: tuple[int, ...], seed: int):
    """A synthetic Keras graph (`layers` applied to an input of `shape`) with random non-zero biases (the
    converter drops zero ones), quantized to int8 on 64 random samples in [-1, 1)."""
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input(shape)
    model = tf.keras.Model(inp, layers(inp), name=name)
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if v.path.endswith("bias"):
            v.assign(rng.normal(0.0, 0.2, v.shape).astype(np.float32))
    calib = rng.random((64,) + tuple(shape), dtype=np.float32) * 2 - 1
    return quantize(model, calib, QuantizeConfig(64, input_range=(-1.0, 1.0)))
