"""The `tinyq` command: a thin layer over the API that prints progress, a summary, and one line per error."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from tqdm import tqdm

from . import __version__, pipeline
from .analyze import analyze
from .data import Preprocessing, Task, default_preprocessing, load_mnist
from .diff import DiffConfig, run_diff, summary_lines, write_diff_json
from .render import c_identifier, check_name
from .errors import TinyqError
from .findings import diagnose
from .targets.firmware_cmd import run_firmware
from .engine import Optimize, Rounding
from .models import c_name, demo_model, load_model
from .native import Runtime, Workers, native_quiet
from .outdir import claim, disk_error
from .pipeline import PipelineConfig
from .preflight import CEngineMode
from .progress import Count
from .quantize import QuantizeConfig, WeightGranularity
from .report import ChainReport, summary_rows
from .report_html import write_html
from .targets import DEFAULT_TARGET, TARGETS
from .userdata import NpzKeys, load_data

EXIT_ERROR = 2
EXIT_INTERNAL = 3


class _Progress:
    """Shows progress on stderr so stdout stays the summary: a line per step with the seconds since start, and for
    counted steps a bar with counts and time left when stderr is a terminal (plain lines otherwise)."""

    def __init__(self, quiet: bool, stream=None) -> None:
        self.start = time.monotonic()
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = None
        self.bar_message = None

    def _line(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:6.1f}s] {message}", file=self.stream, flush=True)

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = self.bar_message = None

    def __call__(self, event) -> None:
        if self.quiet:
            return
        if not isinstance(event, Count):
            self._close_bar()
            self._line(str(event))
            return
        if event.message != self.bar_message:
            self._close_bar()
            self._line(f"{event.message} ({event.total})")
            if self.tty:
                self.bar = tqdm(total=event.total, file=self.stream, leave=False, dynamic_ncols=True, mininterval=0,
                                unit="", bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")
                self.bar_message = event.message
            else:
                self.bar_message = event.message
        if self.bar is not None:
            self.bar.update(event.done - self.bar.n)
        if event.done == event.total:
            self._close_bar()
            self.bar_message = None

    def close(self) -> None:
        self._close_bar()


def _common(p: argparse.ArgumentParser, demo: bool = False) -> None:
    p.add_argument("--out", required=True, help="output folder (refused if it exists and is not empty)")
    if demo:
        p.add_argument("--data", help="MNIST: IDX folder or mnist.npz (default: $TINYQ_MNIST, else keras download)")
    else:
        _data_options(p)
    p.add_argument("--name", help="C identifier prefix of the generated files (default: the model file's name; "
                                  "'mnist' for the demo)")
    p.add_argument("--calibration-samples", type=int, default=300)
    p.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales (default per-channel)")
    p.add_argument("--percentile", type=float, metavar="P",
                   help="clip activation ranges to the P-th percentile of the calibration values (default min-max)")
    p.add_argument("--golden", type=int, default=10, help="golden test vectors in the firmware files")
    p.add_argument("--c-engine", choices=["require", "auto", "off"], default="auto",
                   help="tinyq's C engine: auto (default: generated when every op is supported, else TFLM files "
                        "only, saying which ops blocked it), require (an unsupported op is an error), off")
    p.add_argument("--no-c-engine", action="store_true", help="alias of --c-engine off")
    p.add_argument("--no-cortex-m", action="store_true", help="skip the Cortex-M4 QEMU run")
    p.add_argument("--cortex-m-images", type=int, default=1000, metavar="N",
                   help="test samples streamed through the Cortex-M4 in QEMU (default 1000)")
    p.add_argument("--optimize", choices=["speed", "size"], default="speed",
                   help="C engine kernels: specialised per layer (speed, default) or the generic ones (size)")
    p.add_argument("--rounding", choices=[r.value for r in Rounding], default=Rounding.DOUBLE.value,
                   help="requantization rule of the C engine and golden vectors: double (default: as pip TFLM and "
                        "TFLite's reference kernels) or single (as a TFLM or CMSIS-NN built with "
                        "TFLITE_SINGLE_ROUNDING; golden outputs from the C engine built so)")
    p.add_argument("--sanitize", action="store_true", help="host C engine under -fsanitize=address,undefined")
    p.add_argument("--no-analysis", action="store_true",
                   help="skip the quantization analysis (report.html: settings sweep, per-layer error)")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    _timeout_option(p)


def _timeout_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="time limit of each call into a native runtime (TF converter, LiteRT, TFLM, the C engine "
                        "library); past it the runtime's worker is killed and the run stops (default: per call, "
                        "from the model's size and the number of inputs, see tinyq.native.default_limit)")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def _terminated(_signum, _frame):
    raise Terminated()


def _check_arguments(args) -> None:
    """Checks on plain option values, before anything slow is imported or loaded."""
    if getattr(args, "name", None) is not None:
        check_name(args.name)
    timeout = getattr(args, "timeout", None)
    if timeout is not None and not 0 < timeout < float("inf"):
        raise TinyqError(f"--timeout must be a positive number of seconds, got {timeout:g}")


def _data_options(p: argparse.ArgumentParser) -> None:
    """Where the data comes from and how it maps onto the model's input."""
    p.add_argument("--data", help="MNIST IDX folder, .npz (x_train/y_train/x_test/y_test, or x/y), .npy of samples, "
                                  "or a folder of images with one sub-folder per class (default: MNIST from "
                                  "$TINYQ_MNIST, else keras download)")
    p.add_argument("--calibration-data", metavar="PATH", help="a separate calibration set (same formats as --data)")
    p.add_argument("--npz-keys", metavar="ROLE=NAME,...",
                   help="array names in the .npz, e.g. x_train=images,y_train=labels,x_test=val_x,y_test=val_y")
    p.add_argument("--labels", metavar="FILE", help="class names, one a line (index = output position); an image "
                                                    "folder's class folders take their index from it (default: "
                                                    "the folder names sorted)")
    p.add_argument("--task", choices=[t.value for t in Task],
                   help="classification, regression (vs float targets), reconstruction (output vs input, "
                        "e.g. an autoencoder) or none (agreement only); default: from the labels")
    pre = p.add_mutually_exclusive_group()
    pre.add_argument("--input-range", nargs=2, type=float, metavar=("LO", "HI"),
                     help="model input = raw 0..255 mapped linearly to LO..HI (default 0 1 for uint8 data)")
    pre.add_argument("--mean", nargs="+", type=float, help="model input = (raw - MEAN) / STD (one value, or one a "
                                                           "channel); needs --std")
    pre.add_argument("--as-stored", action="store_true",
                     help="the stored data is the model's float input (default for float data)")
    p.add_argument("--std", nargs="+", type=float, help="see --mean")


def _preprocessing(args):
    """The declared preprocessing from the command line; None: the default for the data's type."""
    if args.std is not None and args.mean is None:
        raise TinyqError("--std needs --mean")
    if args.input_range is not None:
        return Preprocessing.input_range(*args.input_range)
    if args.mean is not None:
        if args.std is None:
            raise TinyqError("--mean needs --std")
        return Preprocessing.standardize(args.mean, args.std)
    if args.as_stored:
        return Preprocessing.as_stored()
    return None


def _load_dataset(args, say):
    keys = NpzKeys.parse(args.npz_keys) if args.npz_keys else NpzKeys()
    ds = load_data(args.data, keys, args.calibration_data, args.labels)
    say(f"data: {len(ds.train_x)} calibration and {len(ds.test_x)} test samples of shape {ds.sample_shape} "
        f"({ds.test_x.dtype}) from {ds.source}")
    return ds


def build_parser() -> argparse.ArgumentParser:
    """All subcommands and their options."""
    parser = argparse.ArgumentParser(prog="tinyq", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tinyq {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train (or reuse) an MNIST demo model and run the whole chain")
    _common(demo, demo=True)
    demo.add_argument("--model", default="mnist_cnn", help="mnist_cnn (default), mnist_mlp or mnist_dsres")
    demo.add_argument("--no-cache", action="store_true", help="retrain instead of reusing a cached model")
    conv = sub.add_parser("convert", help="run the whole chain on your own model and data")
    conv.add_argument("model", help="a .keras, a Keras 2 .h5, a SavedModel folder, or a full-integer int8 .tflite")
    _common(conv)
    fw = sub.add_parser("firmware", help="cross-compile an emitted model for a target, run it, measure it")
    fw.add_argument("--target", default=DEFAULT_TARGET, choices=list(TARGETS),
                    help="the core, run in QEMU: " + ", ".join(f"{n} ({t.qemu_machine})" for n, t in TARGETS.items()))
    fw.add_argument("--out", required=True, help="a folder written by `tinyq demo` or `tinyq convert`")
    fw.add_argument("--data", help="test data (default: the int8 test inputs saved in the folder by demo/convert)")
    fw.add_argument("--images", type=int, default=1000, help="test images streamed through the target")
    fw.add_argument("--opt", default="O2", choices=["O2", "Os", "O3"], help="optimisation level (default O2)")
    fw.add_argument("--allow-modified", action="store_true",
                    help="build even if files differ from firmware/manifest.json (recorded in report.json)")
    _timeout_option(fw)
    df = sub.add_parser("diff", help="first op where runtimes part, and why (exit 1 when any pair differs)")
    df.add_argument("out", metavar="OUT", help="a folder written by `tinyq demo` or `tinyq convert`")
    df.add_argument("--data", help="MNIST for the test images (default: $TINYQ_MNIST, else keras download)")
    pick = df.add_mutually_exclusive_group()
    pick.add_argument("--images", type=int, metavar="N", help="the first N test images (default: all)")
    pick.add_argument("--image", type=int, metavar="I", help="test image I only")
    df.add_argument("--target", action="append", choices=list(TARGETS), default=[],
                    help="also run the C engine on this core in QEMU (then --images defaults to 10)")
    df.add_argument("--allow-modified", action="store_true",
                    help="diff generated files edited by hand (default: refuse them)")
    _timeout_option(df)
    an = sub.add_parser("analyze", help="quantization analysis and report.html for a Keras model")
    an.add_argument("model", nargs="?", help="a .keras, Keras 2 .h5 or SavedModel (or use --demo)")
    an.add_argument("--demo", choices=["mnist_cnn", "mnist_mlp", "mnist_dsres"], help="analyse a demo model")
    _data_options(an)
    an.add_argument("--out", required=True, help="output folder for report.html")
    an.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    _timeout_option(an)
    return parser


def _workers(args):
    """The native runtimes' workers for a whole command (with its --timeout), started now so their imports
    overlap with loading."""
    workers = Workers(args.timeout)
    workers.prepare(*Runtime)
    return workers


def _pipeline_config(args, default_name: str = "mnist"):
    granularity = WeightGranularity.PER_TENSOR if args.per_tensor else WeightGranularity.PER_CHANNEL
    return PipelineConfig(
        name=c_identifier(args.name or default_name),
        preprocessing=_preprocessing(args) if hasattr(args, "as_stored") else None,
        task=Task(args.task) if getattr(args, "task", None) else None,
        quantize=QuantizeConfig(num_calibration_samples=args.calibration_samples, granularity=granularity,
                                percentile=args.percentile),
        golden_count=args.golden,
        c_engine=CEngineMode.OFF if args.no_c_engine else CEngineMode(args.c_engine),
        sanitize=args.sanitize,
        cortex_m=not args.no_cortex_m,
        cortex_m_images=args.cortex_m_images,
        analysis=not args.no_analysis,
        overwrite=args.force,
        optimize=Optimize(args.optimize),
        rounding=Rounding(args.rounding),
        timeout=args.timeout,
    )


def _print_findings(found) -> None:
    """What the figures below mean, printed before them: each finding's first line marked, its details indented."""
    for line in found.lines():
        print(line if line.startswith(" ") else f"finding: {line}")


def _run_chain(args, config, model, dataset, say, out=None, workers=None) -> int:
    result = pipeline.run(model, dataset, args.out if out is None else out, config, progress=say, workers=workers)
    rows = summary_rows(result.report)
    width = max(len(k) for k, _ in rows)
    _print_findings(result.findings)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    for note in result.report["notes"]:
        print(f"note: {note}")
    print(f"wrote {result.out_dir}/ (report.html, report.json, report.md, model_int8.tflite, firmware/)")
    if result.analysis is not None:
        print(f"quantization analysis ({len(result.analysis.sweep)} settings swept in "
              f"{result.analysis.sweep_seconds:.0f} s): {result.out_dir / 'report.html'}")
    return 0


def cmd_demo(args, say) -> int:
    config = _pipeline_config(args)
    with claim(args.out, args.force) as out, _workers(args) as workers:  # lock, writability before any long step
        dataset = load_mnist(args.data)
        say(f"data: {len(dataset.train_x)} training and {len(dataset.test_x)} test images from {dataset.source}")
        say(f"training or loading {args.model}")
        model = demo_model(args.model, dataset, use_cache=not args.no_cache, progress=say)
        return _run_chain(args, config, model, dataset, say, out, workers)


def cmd_convert(args, say) -> int:
    config = _pipeline_config(args, c_name(Path(args.model)))
    with claim(args.out, args.force) as out, _workers(args) as workers:  # lock, writability before any long step
        loaded = load_model(args.model, say, workers)
        say(f"model: {loaded.path} ({loaded.kind.value}); C prefix {config.name}")
        dataset = _load_dataset(args, say)
        return _run_chain(args, config, loaded.model, dataset, say, out, workers)


def cmd_firmware(args, say) -> int:
    with Workers(args.timeout) as workers:
        rows = run_firmware(args.out, args.target, args.data, args.images, f"-{args.opt}", say,
                            allow_modified=args.allow_modified, workers=workers)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_diff(args, say) -> int:
    if args.images is not None and args.images < 1:
        raise TinyqError(f"--images must be >= 1, got {args.images}")
    images = (args.image,) if args.image is not None else None
    count = args.images if args.images is not None else (10 if args.target else None)
    if count is not None:
        images = tuple(range(count))
    config = DiffConfig(images=images, c_targets=("host", *args.target), allow_modified=args.allow_modified)
    with Workers(args.timeout) as workers:
        result = run_diff(args.out, config, args.data, progress=say, workers=workers)
    for line in summary_lines(result):
        print(line)
    path = write_diff_json(result, os.path.join(args.out, "diff.json"))
    print(f"wrote {path}")
    return 0 if result.agree else 1


def cmd_analyze(args, say) -> int:
    if bool(args.model) == bool(args.demo):
        raise TinyqError("analyze: give either a MODEL.keras or --demo NAME")
    with claim(args.out, args.force) as held, Workers(args.timeout) as workers:
        out = held.out
        dataset = _load_dataset(args, say)
        if args.demo:
            model = demo_model(args.demo, dataset, progress=say)
        else:
            loaded = load_model(args.model, say, workers)
            if loaded.keras is None:
                raise TinyqError(f"{args.model}: analyze needs the Keras model (the sweep re-quantizes it); "
                                 f"a .tflite is already quantized")
            model = loaded.keras
        say(f"analysing {model.name}: sweeps, per-layer error, weights, calibration audit")
        pre = _preprocessing(args) or default_preprocessing(dataset.train_x)
        result = analyze(model, dataset, progress=say, preprocessing=pre,
                         task=Task(args.task) if args.task else None, workers=workers)
        found = diagnose(model, dataset, result.quantized, result.verified, result, pre, workers)
        with held.staged() as tmp:
            write_html(tmp / "report.html", ChainReport(result.quantized, result.verified, analysis=result))
    _print_findings(found)
    classify = result.task == Task.CLASSIFICATION.value
    if classify:
        print(f"float {100 * result.float_accuracy:.2f} %, int8 (TFLM) {100 * result.int8_accuracy:.2f} %")
    else:
        e = result.verified.output_error
        print(f"{result.task}: int8 (TFLM) vs float outputs MSE {e.mse:.6g}, SQNR {e.sqnr_db:.1f} dB")
    for row in result.sweep:
        if classify:
            acc = "     -" if row.accuracy is None else f"{100 * row.accuracy:6.2f} %"
        else:
            acc = "     -" if row.accuracy is None else f"{row.accuracy:6.1f} dB"
        size = "-" if row.model_bytes is None else row.model_bytes
        print(f"  {row.label:<44} {acc}  {size:>7} B  TFLM runs: {'yes' if row.tflm_runs else 'no'}")
    print(f"sweep: {len(result.sweep)} settings in {result.sweep_seconds:.0f} s")
    print("most sensitive layers: " + ", ".join(f"{e.layer} ({e.sqnr_db:.1f} dB)" for e in result.layers_sorted[:3]))
    print(f"wrote {out / 'report.html'}")
    return 0


def _import_tensorflow_quietly() -> None:
    """TensorFlow's native libraries announce oneDNN, CUDA and CPU features on stderr when they load, whatever
    TF_CPP_MIN_LOG_LEVEL says; load them once with stderr discarded (--debug shows them)."""
    with native_quiet():
        import tensorflow  # noqa: F401 - heavy optional dependency: loaded here only to silence its banner


COMMANDS = {"demo": cmd_demo, "convert": cmd_convert, "firmware": cmd_firmware, "analyze": cmd_analyze,
            "diff": cmd_diff}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tinyq` console script."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    say = _Progress(args.quiet)
    # SIGTERM unwinds like Ctrl-C: children killed, staging folder removed, the old output kept
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        _check_arguments(args)
        if not args.debug:
            _import_tensorflow_quietly()
        return COMMANDS[args.command](args, say)
    except TinyqError as exc:
        say.close()
        if args.debug:
            traceback.print_exc()
        print(f"tinyq: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Terminated:
        say.close()
        print("tinyq: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        say.close()
        print("tinyq: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for anything unexpected, traceback with --debug
        say.close()
        if args.debug:
            traceback.print_exc()
        line = disk_error(exc) if isinstance(exc, OSError) else None
        if line is not None:  # a full disk or a read-only location, at whatever stage
            print(f"tinyq: error: {line}", file=sys.stderr)
            return EXIT_ERROR
        print(f"tinyq: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        say.close()
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
