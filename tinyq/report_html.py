"""report.html: one static self-contained page (plots embedded as PNG data URIs) from an analysis."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from . import __version__
from .emit import environment


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(width: float = 6.0, height: float = 3.5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def layer_error_plot(errors) -> str:
    """Bar chart of SQNR per layer: the lower, the more signal int8 loses there."""
    fig, ax = _figure()
    ax.bar([e.layer for e in errors], [e.sqnr_db for e in errors], color="#4a7ab5")
    ax.set_ylabel("SQNR (dB)")
    ax.set_title("float vs int8 activation, per layer")
    ax.tick_params(axis="x", rotation=45)
    return _png(fig)


def confusion_plot(matrix: np.ndarray, title: str) -> str:
    """A confusion matrix as an image with counts."""
    fig, ax = _figure(4.2, 4.0)
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=6, color="black" if v < matrix.max() / 2 else "white")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    return _png(fig)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.2f} %"


def html_values(analysis, version: str) -> dict:
    """Plain values (strings, numbers, data URIs) for templates/report.html.j2."""
    from .analyze import most_sensitive

    q, v = analysis.quantized, analysis.verified
    classify = analysis.task == "classification"
    metric = _pct if classify else (lambda x: "n/a" if x is None else f"{x:.6g}")
    sweep_metric = _pct if classify else (lambda x: "-" if x is None else f"{x:.1f} dB")
    if classify:
        delta = ("int8 vs float", f"{100.0 * (v.tflm_int8 - v.keras_float):+.2f} pp")
    else:
        e = v.output_error
        delta = ("int8 vs float outputs", "n/a" if e is None else f"MSE {e.mse:.6g}, SQNR {e.sqnr_db:.1f} dB")
    summary = [
        ("task", analysis.task),
        (f"Keras float {analysis.metric_name}", metric(v.keras_float)),
        (f"int8 {analysis.metric_name} (TFLM, the kernels a device runs)", metric(v.tflm_int8)),
        delta,
        ("model size, float / int8 .tflite", f"{v.float_tflite_bytes} / {v.int8_tflite_bytes} B "
                                            f"({v.float_tflite_bytes / v.int8_tflite_bytes:.2f}x smaller)"),
        ("TFLM arena", f"{v.tflm_arena_bytes} B"),
        ("parameters / MACs per inference", f"{v.params} / {v.macs}"),
        ("calibration", f"{len(q.calibration_indices)} samples, {q.config.calibration_method}, "
                        f"{q.config.granularity.value.replace('_', '-')} weights"),
    ]
    stages = [(s.stage, metric(s.accuracy), _pct(s.argmax_vs_float),
               "-" if s.vs_tflm is None else _pct(s.vs_tflm.bitexact),
               "-" if s.vs_tflm is None else f"{s.vs_tflm.max_lsb} LSB") for s in analysis.stages]
    sweep = [(r.label, sweep_metric(r.accuracy), "-" if r.model_bytes is None else str(r.model_bytes),
              "-" if r.tflm_arena_bytes is None else str(r.tflm_arena_bytes), "yes" if r.tflm_runs else "no",
              r.runtime, r.note) for r in analysis.sweep]
    ops = [(o.index, o.op, o.layer, "x".join(str(d) for d in o.output_shape), o.output_bytes, o.constant_bytes, o.macs)
           for o in analysis.ops]
    return dict(
        model_name=q.name, version=version, sha256=q.sha256, test_images=v.test_images, summary=summary,
        stages=stages, ops=ops, const_total=sum(o.constant_bytes for o in analysis.ops),
        arena=v.tflm_arena_bytes, sweep=sweep,
        layers=analysis.layers, sensitive=[f"{e.layer} ({e.sqnr_db:.1f} dB)" for e in most_sensitive(analysis.layers)],
        layer_plot=layer_error_plot(analysis.layers), weights=analysis.weights, findings=analysis.audit.findings,
        metric_name=analysis.metric_name, sweep_metric_name=analysis.sweep_metric_name, task=analysis.task,
        confusion_float=None if analysis.confusion_float is None else confusion_plot(analysis.confusion_float,
                                                                                       "Keras float"),
        confusion_int8=None if analysis.confusion_int8 is None else confusion_plot(analysis.confusion_int8,
                                                                                     "int8 in TFLM"))


def write_html(out_path: str | Path, analysis) -> Path:
    """Render templates/report.html.j2 for an analysis to `out_path`."""
    path = Path(out_path)
    path.write_text(environment().get_template("report.html.j2").render(**html_values(analysis, __version__)))
    return path
