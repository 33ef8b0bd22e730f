"""The `tinyq` command: a thin layer over the API that prints progress, a summary, and one line per error."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback

from . import __version__
from .errors import TinyqError

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
        from .progress import Count

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
                from tqdm import tqdm

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


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (refused if it exists and is not empty)")
    p.add_argument("--data", help="MNIST: IDX folder or mnist.npz (default: $TINYQ_MNIST, else keras download)")
    p.add_argument("--name", default="mnist", help="C identifier prefix of the generated files")
    p.add_argument("--calibration-samples", type=int, default=300)
    p.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales (default per-channel)")
    p.add_argument("--percentile", type=float, metavar="P",
                   help="clip activation ranges to the P-th percentile of the calibration values (default min-max)")
    p.add_argument("--golden", type=int, default=10, help="golden test vectors in the firmware files")
    p.add_argument("--no-c-engine", action="store_true", help="emit TFLM files only, skip the C engine")
    p.add_argument("--no-cortex-m", action="store_true", help="skip the Cortex-M4 QEMU run")
    p.add_argument("--sanitize", action="store_true", help="host C engine under -fsanitize=address,undefined")
    p.add_argument("--no-analysis", action="store_true",
                   help="skip the quantization analysis (report.html: settings sweep, per-layer error)")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def _terminated(_signum, _frame):
    raise Terminated()


def _check_arguments(args) -> None:
    """Checks on plain option values, before anything slow is imported or loaded."""
    from .emit import check_name

    if getattr(args, "name", None) is not None:
        check_name(args.name)


def build_parser() -> argparse.ArgumentParser:
    """All subcommands and their options."""
    from .cortex_m import QEMU_MACHINES

    parser = argparse.ArgumentParser(prog="tinyq", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tinyq {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train (or reuse) an MNIST demo model and run the whole chain")
    _common(demo)
    demo.add_argument("--model", default="mnist_cnn", help="mnist_cnn (default), mnist_mlp or mnist_dsres")
    demo.add_argument("--no-cache", action="store_true", help="retrain instead of reusing a cached model")
    conv = sub.add_parser("convert", help="run the whole chain on your own Keras model")
    conv.add_argument("model", help="a .keras (or .h5) model taking MNIST-shaped input scaled to 0..1")
    _common(conv)
    fw = sub.add_parser("firmware", help="cross-compile an emitted model for a target, run it, measure it")
    fw.add_argument("--target", default="cortex-m4", choices=list(QEMU_MACHINES),
                    help="the core, run in QEMU: " + ", ".join(f"{t} ({m})" for t, m in QEMU_MACHINES.items()))
    fw.add_argument("--out", required=True, help="a folder written by `tinyq demo` or `tinyq convert`")
    fw.add_argument("--data", help="MNIST for the test images (default: $TINYQ_MNIST, else keras download)")
    fw.add_argument("--images", type=int, default=1000, help="test images streamed through the target")
    fw.add_argument("--opt", default="O2", choices=["O2", "Os", "O3"], help="optimisation level (default O2)")
    fw.add_argument("--allow-modified", action="store_true",
                    help="build even if files differ from firmware/manifest.json (recorded in report.json)")
    df = sub.add_parser("diff", help="first op where runtimes part, and why (exit 1 when any pair differs)")
    df.add_argument("out", metavar="OUT", help="a folder written by `tinyq demo` or `tinyq convert`")
    df.add_argument("--data", help="MNIST for the test images (default: $TINYQ_MNIST, else keras download)")
    pick = df.add_mutually_exclusive_group()
    pick.add_argument("--images", type=int, metavar="N", help="the first N test images (default: all)")
    pick.add_argument("--image", type=int, metavar="I", help="test image I only")
    df.add_argument("--target", action="append", choices=list(QEMU_MACHINES), default=[],
                    help="also run the C engine on this core in QEMU (then --images defaults to 10)")
    df.add_argument("--allow-modified", action="store_true",
                    help="diff generated files edited by hand (default: refuse them)")
    an = sub.add_parser("analyze", help="quantization analysis and report.html for a Keras model")
    an.add_argument("model", nargs="?", help="a .keras model (or use --demo)")
    an.add_argument("--demo", choices=["mnist_cnn", "mnist_mlp", "mnist_dsres"], help="analyse a demo model")
    an.add_argument("--data", help="MNIST: IDX folder or mnist.npz (default: $TINYQ_MNIST, else keras download)")
    an.add_argument("--out", required=True, help="output folder for report.html")
    an.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    return parser


def _workers():
    """The native runtimes' workers for a whole command, started now so their imports overlap with loading."""
    from .native import Runtime, Workers

    workers = Workers()
    workers.prepare(*Runtime)
    return workers


def _pipeline_config(args):
    from .pipeline import PipelineConfig
    from .quantize import QuantizeConfig, WeightGranularity

    granularity = WeightGranularity.PER_TENSOR if args.per_tensor else WeightGranularity.PER_CHANNEL
    return PipelineConfig(
        name=args.name,
        quantize=QuantizeConfig(num_calibration_samples=args.calibration_samples, granularity=granularity,
                                percentile=args.percentile),
        golden_count=args.golden,
        c_engine=not args.no_c_engine,
        sanitize=args.sanitize,
        cortex_m=not args.no_cortex_m,
        analysis=not args.no_analysis,
        overwrite=args.force,
    )


def _run_chain(args, config, model, dataset, say, out=None, workers=None) -> int:
    from . import pipeline
    from .report import summary_rows

    result = pipeline.run(model, dataset, args.out if out is None else out, config, progress=say, workers=workers)
    rows = summary_rows(result.report)
    width = max(len(k) for k, _ in rows)
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
    from .data import load_mnist
    from .models import demo_model
    from .outdir import claim

    config = _pipeline_config(args)
    with claim(args.out, args.force) as out, _workers() as workers:  # lock and writability before any long step
        dataset = load_mnist(args.data)
        say(f"data: {len(dataset.train_x)} training and {len(dataset.test_x)} test images from {dataset.source}")
        say(f"training or loading {args.model}")
        model = demo_model(args.model, dataset, use_cache=not args.no_cache, progress=say)
        return _run_chain(args, config, model, dataset, say, out, workers)


def cmd_convert(args, say) -> int:
    from .data import load_mnist
    from .models import load_keras_model
    from .outdir import claim

    config = _pipeline_config(args)
    with claim(args.out, args.force) as out, _workers() as workers:  # lock and writability before any long step
        model = load_keras_model(args.model)
        dataset = load_mnist(args.data)
        return _run_chain(args, config, model, dataset, say, out, workers)


def cmd_firmware(args, say) -> int:
    from .firmware_cmd import run_firmware

    rows = run_firmware(args.out, args.target, args.data, args.images, f"-{args.opt}", say,
                        allow_modified=args.allow_modified)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_diff(args, say) -> int:
    from .diff import DiffConfig, run_diff, summary_lines, write_diff_json

    if args.images is not None and args.images < 1:
        raise TinyqError(f"--images must be >= 1, got {args.images}")
    images = (args.image,) if args.image is not None else None
    count = args.images if args.images is not None else (10 if args.target else None)
    if count is not None:
        images = tuple(range(count))
    config = DiffConfig(images=images, c_targets=("host", *args.target), allow_modified=args.allow_modified)
    result = run_diff(args.out, config, args.data, progress=say)
    for line in summary_lines(result):
        print(line)
    path = write_diff_json(result, os.path.join(args.out, "diff.json"))
    print(f"wrote {path}")
    return 0 if result.agree else 1


def cmd_analyze(args, say) -> int:
    from .analyze import analyze
    from .data import load_mnist
    from .models import demo_model, load_keras_model
    from .outdir import claim
    from .report import ChainReport
    from .report_html import write_html

    if bool(args.model) == bool(args.demo):
        raise TinyqError("analyze: give either a MODEL.keras or --demo NAME")
    with claim(args.out, args.force) as held:
        out = held.out
        dataset = load_mnist(args.data)
        model = demo_model(args.demo, dataset, progress=say) if args.demo else load_keras_model(args.model)
        say(f"analysing {model.name}: sweeps, per-layer error, weights, calibration audit")
        result = analyze(model, dataset, progress=say)
        with held.staged() as tmp:
            write_html(tmp / "report.html", ChainReport(result.quantized, result.verified, analysis=result))
    print(f"float {100 * result.float_accuracy:.2f} %, int8 (TFLM) {100 * result.int8_accuracy:.2f} %")
    for row in result.sweep:
        acc = "     -" if row.accuracy is None else f"{100 * row.accuracy:6.2f}"
        size = "-" if row.model_bytes is None else row.model_bytes
        print(f"  {row.label:<44} {acc} %  {size:>7} B  TFLM runs: {'yes' if row.tflm_runs else 'no'}")
    print(f"sweep: {len(result.sweep)} settings in {result.sweep_seconds:.0f} s")
    print("most sensitive layers: " + ", ".join(f"{e.layer} ({e.sqnr_db:.1f} dB)" for e in result.layers_sorted[:3]))
    print(f"wrote {out / 'report.html'}")
    return 0


def _import_tensorflow_quietly() -> None:
    """TensorFlow's native libraries announce oneDNN, CUDA and CPU features on stderr when they load, whatever
    TF_CPP_MIN_LOG_LEVEL says; load them once with stderr discarded (--debug shows them)."""
    from .native import native_quiet

    with native_quiet():
        import tensorflow  # noqa: F401


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
        from .outdir import disk_error

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
