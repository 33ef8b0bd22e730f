"""Instructions per inference and per MAC, flash and RAM of every model on every Cortex-M core in QEMU: tinyq's
engine with the portable kernels (Optimize.SIZE) and with the specialized ones (Optimize.SPEED), and, when the
user points at their source trees, TFLM with its reference kernels and TFLM with Arm's CMSIS-NN kernels.

    TINYQ_MNIST=../shared/data/mnist python3 benchmarks/cortex_m.py [--targets cortex-m4 ...] [--models mnist_cnn ...]
        [--images 1000] [--big-images 100] [--opt -O2] [--workdir DIR]
    TFLM_DIR=<tflite-micro> CMSIS_NN_DIR=<CMSIS-NN> TFLM_THIRD_PARTY_INCLUDES="<flatbuffers>/include
        /usr/include/gemmlowp <ruy>" python3 benchmarks/cortex_m.py ...   (README: "TFLM on the Cortex-M cores")

Models: the demo models (MNIST) and the stand-ins of tests/standins.py (ResNet-8 32x32x3, DS-CNN 49x10x1,
MobileNetV1-0.25 96x96x3, the 640-input FC autoencoder) trained briefly on their synthetic data. Every figure
is measured in this run: each model is quantized, checked in TFLM (pip tflite-micro) on the test inputs,
emitted once per optimize setting, cross-compiled per core and run in QEMU with -icount shift=0: golden vectors
first, then --images inputs (--big-images for ResNet-8, DS-CNN and MobileNet). Instructions per inference is the
mean over those inputs (counter overhead removed; one reading resolves one SysTick tick, 31-63 instructions);
bit-exact counts inputs whose int8 output equals pip TFLM's. Flash and RAM are deployment figures
(tinyq.targets.cortex_m.FlashSplit/RamSplit): flash = model constants + engine code (TFLM's framework and kernels count
as engine code), RAM = arena + the engine's static data (TFLM: its arena, interpreter, resolver) + the stack of
one inference. A core whose memory a build does not fit (the micro:bit's 16 KB RAM) gets its error, not a row.
--workdir keeps trained stand-ins and TFLM's objects (per core and kernel set) for the next run. Modelled cycles
(tinyq.targets.cycles, M0/M4/M7 tables, zero-wait memory) come from the golden run once more under QEMU's block
log, for every engine measured; --no-cycles skips them.
"""

from __future__ import annotations

import argparse
import enum
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tinyq import data, emit, models, quantize, tflm, verify  # noqa: E402
from tinyq.targets import cortex_m, firmware, registry  # noqa: E402
from tinyq.data import Preprocessing, Task  # noqa: E402
from tinyq.errors import TinyqError  # noqa: E402
from tinyq.engine import Optimize, read_graph  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import standins  # noqa: E402

DEMO_MODELS = ("mnist_cnn", "mnist_mlp")
STANDIN_MODELS = ("resnet8", "ds_cnn", "mobilenet_v1_025", "fc_autoencoder")
BIG_MODELS = ("resnet8", "ds_cnn", "mobilenet_v1_025")
# TFLM kernel files (tensorflow/lite/micro/kernels/<name>.cc, and cmsis_nn/<name>.cc) of each resolver method the
# models use; a model with any other op compiles every kernel.
TFLM_KERNEL_FILES = {
    "AddConv2D": "conv", "AddDepthwiseConv2D": "depthwise_conv", "AddFullyConnected": "fully_connected",
    "AddSoftmax": "softmax", "AddMaxPool2D": "pooling", "AddAveragePool2D": "pooling", "AddReshape": "reshape",
    "AddAdd": "add", "AddMean": "reduce", "AddMul": "mul", "AddPad": "pad", "AddRelu": "activations",
    "AddRelu6": "activations", "AddLogistic": "logistic", "AddTanh": "tanh", "AddConcatenation": "concatenation",
}


class Engine(enum.Enum):
    """What runs the model on the core."""

    SIZE = "tinyq size"  # tinyq's engine, portable kernels
    SPEED = "tinyq speed"  # tinyq's engine, specialized kernels (the default)
    TFLM = "TFLM ref"  # TFLM, reference kernels
    CMSIS_NN = "TFLM+CMSIS-NN"  # TFLM, CMSIS-NN kernels


@dataclass(frozen=True)
class Workload:
    """One quantized model, checked in pip TFLM, with the inputs streamed through QEMU and TFLM's outputs."""

    name: str
    macs: int
    fw_size: Path  # emitted with Optimize.SIZE
    fw_speed: Path  # emitted with Optimize.SPEED (TFLM builds use it too: the model array is the same)
    tflite: bytes
    inputs: np.ndarray  # (n, input_bytes) int8
    expected: np.ndarray  # (n, output_bytes) int8, pip TFLM's
    host_exact: tuple[int, int] = (0, 0)  # inputs whose host engine output (-O3 library) equals TFLM's: size, speed


@dataclass(frozen=True)
class Cell:
    """One engine on one core for one model: its measurement, or why there is none."""

    target: str
    model: str
    engine: Engine
    result: cortex_m.CortexMResult | None
    error: str
    seconds: float


def _standin(name: str, n_test: int, cache: Path):
    """(Keras model, float calibration samples, labels or None, float test inputs, test labels, task)."""
    import tensorflow as tf

    keras = tf.keras
    if name == "resnet8":
        d = standins.image_classes((32, 32, 3), 10, 2000, n_test)
        prep, build, recon = (lambda x: x / 255.0), standins.resnet8, False
    elif name == "mobilenet_v1_025":
        d = standins.image_classes((96, 96, 3), 2, 1000, n_test, seed=3)
        prep, build, recon = (lambda x: x / 127.5 - 1.0), standins.mobilenet_v1, False
    elif name == "ds_cnn":
        d = standins.audio_features(12, 2000, n_test)
        mean, std = float(d.x_train.mean()), float(d.x_train.std())
        prep, build, recon = (lambda x: (x - mean) / std), standins.ds_cnn, False
    else:
        d = standins.machine_sounds(2000, n_test)
        prep, build, recon = (lambda x: x), standins.fc_autoencoder, True
    path = cache / f"{name}.keras"
    if path.is_file():
        model = keras.models.load_model(path)
    else:
        model = standins.train(build(keras), d, prep, epochs=3, reconstruction=recon)
        model.save(path)
    x_train = prep(d.x_train).astype(np.float32)
    x_test = prep(d.x_test).astype(np.float32)
    return model, x_train, d.y_train, x_test, d.y_test, Task.RECONSTRUCTION if recon else None


GOLDEN_BYTES = 64 * 1024  # flash the test harness's golden inputs may take (the mps3-an547's ITCM is 512 KB)


def golden_count(q) -> int:
    """Golden vectors in the harness: 10, fewer for large inputs (MobileNet's 96x96x3 takes 27 KB each)."""
    return max(2, min(10, GOLDEN_BYTES // int(np.prod(q.input.shape))))


def prepare(name: str, n: int, work: Path, mnist: data.Dataset | None) -> Workload:
    """Train (or load), quantize, verify on `n` inputs and emit one folder per optimize setting."""
    folders = {o: work / "fw" / name / o.value for o in (Optimize.SIZE, Optimize.SPEED)}
    if name in DEMO_MODELS:
        model = models.demo_model(name, mnist)
        q = quantize.quantize(model, data.preprocess(mnist.train_x, models.input_shape(model)), labels=mnist.train_y)
        result = verify.verify(model, q, mnist.test_x[:n], mnist.test_y[:n])
        for o, fw in folders.items():
            emit.emit(q, result, fw, name=name, overwrite=True, optimize=o, golden_count=golden_count(q))
    else:
        (work / "models").mkdir(parents=True, exist_ok=True)
        model, x_train, y_train, x_test, y_test, task = _standin(name, n, work / "models")
        calib = x_train[:300]
        config = quantize.QuantizeConfig(input_range=(float(calib.min()), float(calib.max())),
                                         balanced=y_train is not None)
        q = quantize.quantize(model, calib, config, labels=None if y_train is None else y_train[:300])
        pre = Preprocessing.as_stored()
        result = verify.verify(model, q, x_test, y_test, preprocessing=pre, task=task)
        for o, fw in folders.items():
            emit.emit(q, result, fw, name=name, overwrite=True, class_labels=None, preprocessing=pre,
                      golden_count=golden_count(q),
                      uint8_source=False, optimize=o)
    inputs, expected = result.int8_inputs.reshape(n, -1), result.tflm_outputs.reshape(n, -1)
    host = []
    for o, fw in folders.items():  # the same C on the host: the packed path emulates the DSP instructions
        lib = firmware.build_library(fw, work / "host" / name / o.value)
        outputs = firmware.run_library(lib, inputs, expected.shape[1])
        host.append(int(np.sum(np.all(outputs == expected, axis=1))))
    return Workload(name, result.macs, folders[Optimize.SIZE], folders[Optimize.SPEED], q.tflite, inputs, expected,
                    tuple(host))


def tflm_kernels(tflite: bytes) -> str:
    """TFLM_KERNELS for this model: its ops' kernel files, or "" (every kernel) for an op outside the table."""
    methods = tflm.resolver_methods(read_graph(tflite))
    if any(m not in TFLM_KERNEL_FILES for m in methods):
        return ""
    return " ".join(sorted({TFLM_KERNEL_FILES[m] for m in methods}))


def run_cell(w: Workload, engine: Engine, target: str, opt: str, work: Path, cycles: bool = True) -> Cell:
    """Build and measure one engine on one core; a build or run that fails becomes the cell's error."""
    start = time.perf_counter()
    build = work / "build" / target / w.name / engine.name.lower()
    try:
        if engine in (Engine.SIZE, Engine.SPEED):
            fw = w.fw_size if engine is Engine.SIZE else w.fw_speed
            result = cortex_m.measure_cortex_m(fw, build, w.inputs, w.expected, opt=opt, target=target,
                                               cycles=cycles)
        else:
            fw = w.fw_speed
            kernels = tflm_kernels(w.tflite)
            variant = "cmsis_nn" if engine is Engine.CMSIS_NN else "ref"
            objs = work / "tflm-obj" / f"{target}-{variant}{opt}"
            extra = [f"TFLM_DIR={os.environ['TFLM_DIR']}", f"TFLM_OBJ_DIR={objs}", f"TFLM_KERNELS={kernels}"]
            # Set on make's command line either way: make would otherwise take CMSIS_NN_DIR from the environment.
            extra.append(f"CMSIS_NN_DIR={os.environ['CMSIS_NN_DIR'] if engine is Engine.CMSIS_NN else ''}")
            elf = firmware.build_stub(fw, build, target=target, backend="tflm", opt=opt, extra=tuple(extra))
            result = cortex_m.measure_elf(elf, fw, w.inputs, w.expected, opt, target=target, cycles=cycles)
        return Cell(target, w.name, engine, result, "", time.perf_counter() - start)
    except TinyqError as exc:
        return Cell(target, w.name, engine, None, str(exc), time.perf_counter() - start)


def _fmt(value, spec: str = ",") -> str:
    return "-" if value is None else format(value, spec)


def _ratio(a: cortex_m.CortexMResult | None, b: cortex_m.CortexMResult | None) -> str:
    if a is None or b is None or not b.instructions_per_inference:
        return "-"
    return f"{a.instructions_per_inference / b.instructions_per_inference:.2f}"


def print_host(workloads: dict) -> None:
    """Host exactness of every model: the C engine as an -O3 library over all its test inputs, against TFLM."""
    print("Host C engine (-O3 library built for this machine; the speed kernels' packed path with the host's SIMD "
          "sums) vs pip TFLM, every test input")
    print("| model | inputs | size bit-exact | speed bit-exact |")
    print("|---|---|---|---|")
    for name, w in workloads.items():
        print(f"| {name} | {len(w.inputs)} | {w.host_exact[0]} | {w.host_exact[1]} |")
    print()


def print_tables(cells: list[Cell], workloads: dict, engines: tuple[Engine, ...], opt: str) -> None:
    """Per core and model: instructions, ratios and exactness; then per engine: flash, RAM and their split."""
    by = {(c.target, c.model, c.engine): c.result for c in cells}
    seconds = {(c.target, c.model, c.engine): c.seconds for c in cells}
    order = list(registry.TARGETS)
    rows = sorted({(c.target, c.model) for c in cells if c.result is not None},
                  key=lambda k: (order.index(k[0]), list(workloads).index(k[1])))
    short = {Engine.SIZE: "size", Engine.SPEED: "speed", Engine.TFLM: "TFLM", Engine.CMSIS_NN: "CMSIS-NN"}
    print(f"\nInstructions per inference (QEMU -icount shift=0, {opt}) and modelled cycles (tinyq.targets.cycles: "
          f"the core's timing table over the golden run, zero-wait memory; '-' for cores without a table); ratios "
          f"of the instruction means; bit-exact vs pip TFLM")
    head = (["core", "model", "MACs"] + [f"{short[e]} instr" for e in engines] + [f"{short[e]} /MAC" for e in engines]
            + [f"{short[e]} cycles" for e in engines] + [f"{short[e]} cyc/MAC" for e in engines]
            + ["speed/size"] + (["speed/CMSIS-NN"] if Engine.CMSIS_NN in engines else [])
            + ["bit-exact " + "/".join(short[e] for e in engines)])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for target, model in rows:
        w = workloads[model]
        res = [by.get((target, model, e)) for e in engines]
        line = [target, model, f"{w.macs:,}"]
        line += [_fmt(None if r is None else r.instructions_per_inference) for r in res]
        line += [_fmt(None if r is None else r.instructions_per_inference / w.macs, ".2f") for r in res]
        line += [_fmt(None if r is None or r.cycles_per_inference is None else round(r.cycles_per_inference))
                 for r in res]
        line += [_fmt(None if r is None or r.cycles_per_inference is None else r.cycles_per_inference / w.macs,
                      ".2f") for r in res]
        line.append(_ratio(by.get((target, model, Engine.SPEED)), by.get((target, model, Engine.SIZE))))
        if Engine.CMSIS_NN in engines:
            line.append(_ratio(by.get((target, model, Engine.SPEED)), by.get((target, model, Engine.CMSIS_NN))))
        line.append(" / ".join("-" if r is None else f"{r.bitexact_images}/{r.images}" for r in res))
        print("| " + " | ".join(line) + " |")
    print("\nDeployment flash and RAM (bytes): flash = model constants + engine code; "
          "RAM = arena + engine static data + stack of one inference")
    head = ["core", "model", "engine", "flash", "model", "code", "RAM", "arena", "engine static", "stack",
            "golden", "run s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for target, model in rows:
        for e in engines:
            r = by.get((target, model, e))
            if r is None:
                continue
            f, m = r.flash, r.ram
            print(f"| {target} | {model} | {e.value} | {f.deployment:,} | {f.model_constants:,} | "
                  f"{f.engine_code:,} | {m.deployment:,} | {m.arena:,} | {m.engine_static:,} | {m.stack_invoke:,} "
                  f"| {r.golden_count} {'pass' if r.golden_passed else 'FAIL'} | {seconds[target, model, e]:.0f} |")
    failed = [c for c in cells if c.result is None]
    if failed:
        print("\nNot measured:")
        for c in failed:
            where = " (does not link on the micro:bit: 16 KB RAM, 256 KB flash)" if c.target == "cortex-m0" else ""
            print(f"- {c.target} {c.model} {c.engine.value}{where}: {c.error[:300]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=list(registry.TARGETS), choices=list(registry.TARGETS))
    parser.add_argument("--models", nargs="+", default=list(DEMO_MODELS + STANDIN_MODELS),
                        choices=DEMO_MODELS + STANDIN_MODELS)
    parser.add_argument("--engines", nargs="+", default=[e.name.lower() for e in Engine],
                        choices=[e.name.lower() for e in Engine],
                        help="tflm and cmsis_nn need TFLM_DIR (and CMSIS_NN_DIR); without them they are left out")
    parser.add_argument("--images", type=int, default=1000, help="test inputs streamed through QEMU per cell")
    parser.add_argument("--big-images", type=int, default=None,
                        help=f"test inputs for {', '.join(BIG_MODELS)} (default: --images)")
    parser.add_argument("--opt", default="-O2", choices=["-O2", "-Os", "-O3"])
    parser.add_argument("--workdir", type=Path, default=None, help="keep trained stand-ins and TFLM objects here")
    parser.add_argument("--no-cycles", action="store_true",
                        help="skip the modelled cycles (a second golden run under QEMU's block log per cell)")
    args = parser.parse_args()
    cortex_m.check_toolchain()
    engines = tuple(Engine[e.upper()] for e in args.engines)
    if not os.environ.get("TFLM_DIR"):
        engines = tuple(e for e in engines if e not in (Engine.TFLM, Engine.CMSIS_NN))
    if not os.environ.get("CMSIS_NN_DIR"):
        engines = tuple(e for e in engines if e is not Engine.CMSIS_NN)
    big = args.big_images or args.images
    with tempfile.TemporaryDirectory(prefix="tinyq_bench_cm_") as tmp:
        work = (args.workdir or Path(tmp)).resolve()
        mnist = data.load_mnist() if set(args.models) & set(DEMO_MODELS) else None
        workloads = {}
        for name in args.models:
            t = time.perf_counter()
            workloads[name] = prepare(name, big if name in BIG_MODELS else args.images, work, mnist)
            w = workloads[name]
            print(f"[{name}] quantized, checked in TFLM on {len(w.inputs)} inputs, emitted; host C engine "
                  f"bit-exact size {w.host_exact[0]}/{len(w.inputs)}, speed {w.host_exact[1]}/{len(w.inputs)} "
                  f"({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
        cells = []
        for target in args.targets:
            for name, w in workloads.items():
                for e in engines:
                    cells.append(run_cell(w, e, target, args.opt, work, cycles=not args.no_cycles))
                    c = cells[-1]
                    what = (f"{c.result.instructions_per_inference:,} instr, "
                            f"{_fmt(c.result.cycles_per_inference, ',.0f')} modelled cycles, "
                            f"{c.result.bitexact_images}/{c.result.images} bit-exact") if c.result \
                        else f"not measured: {c.error[:120]}"
                    print(f"[{target} {name} {e.value}] {what} ({c.seconds:.0f} s)", file=sys.stderr, flush=True)
        print_host(workloads)
        print_tables(cells, workloads, engines, args.opt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
