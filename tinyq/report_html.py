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
    summary = [
        ("Keras float accuracy", _pct(v.keras_float)),
        ("int8 accuracy (TFLM, the kernels a device runs)", _pct(v.tflm_int8)),
        ("int8 vs float", f"{100.0 * (v.tflm_int8 - v.keras_float):+.2f} pp"),
        ("model size, float / int8 .tflite", f"{v.float_tflite_bytes} / {v.int8_tflite_bytes} B "
                                            f"({v.float_tflite_bytes / v.int8_tflite_bytes:.2f}x smaller)"),
        ("TFLM arena", f"{v.tflm_arena_bytes} B"),
        ("parameters / MACs per inference", f"{v.params} / {v.macs}"),
        ("calibration", f"{len(q.calibration_indices)} samples, {q.config.calibration_method}, "
                        f"{q.config.granularity.value.replace('_', '-')} weights"),
    ]
    stages = [(s.stage, _pct(s.accuracy), _pct(s.argmax_vs_float),
               "-" if s.vs_tflm is None else _pct(s.vs_tflm.bitexact),
               "-" if s.vs_tflm is None else f"{s.vs_tflm.max_lsb} LSB") for s in analysis.stages]
    sweep = [(r.label, _pct(r.accuracy), "-" if r.model_bytes is None else str(r.model_bytes),
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
        confusion_float=confusion_plot(analysis.confusion_float, "Keras float"),
        confusion_int8=confusion_plot(analysis.confusion_int8, "int8 in TFLM"))


def fidelity_values(quick) -> dict:
    """Plain values for templates/_fidelity.html.j2 from a diff.QuickDiff: the runtime-pair matrix over the
    test set and the first divergent op of each traced disagreeing input."""
    names = list(dict.fromkeys(n for p in quick.pairs for n in p.pair))
    by_pair = {p.pair: p for p in quick.pairs}
    matrix = []
    for a in names:
        cells = []
        for b in names:
            p = by_pair.get((a, b)) or by_pair.get((b, a))
            cells.append("-" if p is None else f"{p.identical} / {p.images}" + (f" (max {p.max_lsb} LSB)"
                                                                                 if p.max_lsb else ""))
        matrix.append((a, cells))
    layers = {} if quick.diff is None else {op.index: op.layer for op in quick.diff.layout.ops}
    twins = {} if quick.diff is None else quick.diff.twins()
    divergences = [] if quick.diff is None else [
        (d.image, f"{d.pair[0]} vs {d.pair[1]}", f"#{d.op_index} {d.op_name}", layers[d.op_index], d.elements,
         d.max_lsb, d.explanation.text) for d in quick.diff.divergences
        if d.pair[0] not in twins and d.pair[1] not in twins]
    return dict(runtimes=names, matrix=matrix, disagreeing=quick.disagreeing, divergences=divergences,
                traced=0 if quick.diff is None else len(quick.diff.images),
                twins=[f"{a} equals {b} at every op of every traced input; its pairs are not repeated below."
                       for a, b in twins.items()])


def write_html(out_path: str | Path, analysis, fidelity=None) -> Path:
    """Render templates/report.html.j2 for an analysis to `out_path`, with the Fidelity section of a
    diff.QuickDiff when given."""
    path = Path(out_path)
    values = html_values(analysis, __version__)
    values["fidelity"] = fidelity_values(fidelity) if fidelity is not None else None
    path.write_text(environment().get_template("report.html.j2").render(**values))
    return path
