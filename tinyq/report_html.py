"""report.html: one static, self-contained page for the whole chain (plots embedded as PNG data URIs)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from . import __version__
from .analyze import most_sensitive, op_summary
from .data import Task
from .render import environment
from .report import ChainReport
from .verify import stage_agreement


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt  # heavy optional dependency: loaded only when a plot is drawn

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(width: float = 6.0, height: float = 3.5):
    import matplotlib  # heavy optional dependency: loaded only when a plot is drawn

    matplotlib.use("Agg")  # before pyplot: no display needed
    import matplotlib.pyplot as plt  # the same

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


def arena_plot(blocks, calls: int, arena_bytes: int, lower_bound: int) -> str:
    """Tensor lifetimes in the C engine's arena: each tensor a box from its first to its last kernel call (x)
    at its offset and size (y), with the arena size and the liveness lower bound as lines."""
    fig, ax = _figure(7.5, 3.6)
    colors = ("#4a7ab5", "#e08a3c", "#5aa469", "#b5524a", "#8a6bb5", "#b5a04a")
    for k, b in enumerate(blocks):
        ax.add_patch(_rect((b.first_call - 0.45, b.offset), b.last_call - b.first_call + 0.9, b.size,
                           colors[k % len(colors)]))
        if b.size >= arena_bytes * 0.08:
            ax.text((b.first_call + b.last_call) / 2, b.offset + b.size / 2, b.label, ha="center", va="center",
                    fontsize=7, color="white")
    ax.axhline(arena_bytes, color="#222", linewidth=1)
    ax.axhline(lower_bound, color="#b00", linewidth=1, linestyle="--")
    ax.set_xlim(-0.6, max(calls, 1) - 0.4)
    ax.set_xticks(range(max(calls, 1)))
    ax.set_ylim(0, max(arena_bytes, lower_bound, 1) * 1.08)
    ax.set_xlabel("kernel call")
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title(f"C engine arena: {arena_bytes} B (line), liveness lower bound {lower_bound} B (dashed)")
    return _png(fig)


def _rect(xy, width, height, color):
    from matplotlib.patches import Rectangle  # heavy optional dependency: loaded only when a plot is drawn

    return Rectangle(xy, width, height, facecolor=color, edgecolor="white", linewidth=0.8)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.2f} %"


def _stages(chain: ChainReport) -> list[tuple[str, str, str, str, str, str]]:
    """Every runtime of the chain: images, accuracy, same argmax as float, identical to TFLM, max difference."""
    v = chain.verified
    metric = _metric(v)
    rows = [(s.stage, str(v.test_images), metric(s.accuracy), _pct(s.argmax_vs_float),
             "-" if s.vs_tflm is None else _pct(s.vs_tflm.bitexact),
             "-" if s.vs_tflm is None else f"{s.vs_tflm.max_lsb} LSB") for s in stage_agreement(v)]
    c = chain.c_engine
    if c is not None:
        rows.append(("tinyq C engine, host" + (" (ASan+UBSan)" if c.sanitized else ""), str(c.images),
                     metric(c.accuracy), _pct(c.argmax_vs_float), _pct(c.bitexact_vs_tflm), f"{c.max_lsb_vs_tflm} LSB"))
    m = chain.cortex_m
    if m is not None:
        rows.append((f"tinyq C engine, {m.target} (QEMU, {m.opt})", str(m.images), "-", "-",
                     _pct(m.bitexact_images / m.images if m.images else None), "-"))
    return rows


def _metric(v):
    """How the verified task's metric is printed: a percentage for accuracy, else the number."""
    return _pct if v.task is Task.CLASSIFICATION else (lambda x: "n/a" if x is None else f"{x:.6g}")


def _summary(chain: ChainReport) -> list[tuple[str, str]]:
    q, v, c, m = chain.quantized, chain.verified, chain.c_engine, chain.cortex_m
    metric = _metric(v)
    if v.task is Task.CLASSIFICATION and v.keras_float is not None:
        delta = ("int8 vs float", f"{100.0 * (v.tflm_int8 - v.keras_float):+.2f} pp")
    else:
        e = v.output_error
        delta = ("int8 vs float outputs", "n/a" if e is None else f"MSE {e.mse:.6g}, SQNR {e.sqnr_db:.1f} dB")
    size = (f"{v.float_tflite_bytes} / {v.int8_tflite_bytes} B ({v.float_tflite_bytes / v.int8_tflite_bytes:.2f}x "
            f"smaller)" if v.float_tflite_bytes else f"n/a / {v.int8_tflite_bytes} B")
    rows = [
        ("task", v.task.value),
        (f"Keras float {v.metric_name}", metric(v.keras_float)),
        (f"int8 {v.metric_name} (TFLM, the kernels a device runs)", metric(v.tflm_int8)),
        delta,
        ("model size, float / int8 .tflite", size),
        ("parameters / MACs per inference", f"{v.params} / {v.macs}"),
        ("calibration", f"{len(q.calibration_indices)} samples, {q.config.calibration_method}, "
                        f"{q.config.granularity.value.replace('_', '-')} weights" if q.calibration_indices
                        else "none here (the .tflite came already quantized)"),
    ]
    if c is not None:
        rows.append(("C engine requantization", f"{c.rounding} rounding" + (
            " (TFLITE_SINGLE_ROUNDING; golden vectors from the C engine built so)" if c.rounding == "single"
            else " (as pip TFLM)")))
        rows.append(("C engine vs TFLM, bit-exact", f"{round(c.bitexact_vs_tflm * c.images)} / {c.images} test inputs"))
        if c.bitexact_vs_litert_ref is not None:
            rows.append(("C engine vs LiteRT reference kernels, bit-exact",
                         f"{round(c.bitexact_vs_litert_ref * c.images)} / {c.images} test inputs"))
    if m is not None:
        golden = "golden vectors" if c is not None and c.rounding == "single" else "TFLM"
        rows.append((f"{m.target} (QEMU) vs {golden}, bit-exact", f"{m.bitexact_images} / {m.images} test inputs"))
        rows.append((f"{m.target} instructions per inference", f"{m.instructions_per_inference}"))
        if m.cycles_per_inference is not None:
            rows.append((f"{m.target} modelled cycles per inference ({m.cycle_model})", f"{m.cycles_per_inference}"))
    return rows


def _memory(chain: ChainReport) -> list[tuple[str, str]]:
    v, c, m = chain.verified, chain.c_engine, chain.cortex_m
    rows = [("TFLM tensor arena (measured, 64-bit host)", f"{v.tflm_arena_bytes} B")]
    if c is not None:
        rows += [("C engine arena", f"{c.arena_bytes} B"),
                 ("liveness lower bound (most bytes live across one op, kernel scratch included)",
                  f"{c.lower_bound_bytes} B"),
                 (f"largest kernel scratch, inside the arena ({c.optimize} kernels)", f"{c.scratch_bytes} B"),
                 ("C engine arena vs TFLM arena", f"{c.arena_bytes / v.tflm_arena_bytes:.2f}x")]
    if m is not None:
        rows += [(f"{m.target} RAM: {what}", f"{size} B") for what, size in m.ram_split]
        rows.append((f"{m.target} RAM of the engine in a product (arena, its data, its stack)",
                     f"{m.deployment_ram_bytes} B"))
        rows.append((f"{m.target} RAM in all, test harness included", f"{m.ram_bytes} B"))
    return rows


def _flash(chain: ChainReport) -> list[tuple[str, str]]:
    v, c, m = chain.verified, chain.c_engine, chain.cortex_m
    rows = [("TFLM: the .tflite array", f"{v.int8_tflite_bytes} B")]
    if c is not None:
        rows += [("C engine constants (weights, biases, multipliers)", f"{c.const_bytes} B"),
                 ("C engine code (kernels and model, host .text)", f"{c.code_bytes} B")]
    if m is not None:
        rows += [(f"{m.target} flash: {what}", f"{size} B") for what, size in m.flash_split]
        rows.append((f"{m.target} flash of the model and engine in a product ({m.opt})",
                     f"{m.deployment_flash_bytes} B"))
        rows.append((f"{m.target} flash in all, test harness included ({m.opt})", f"{m.flash_bytes} B"))
    return rows


def _ops(chain: ChainReport) -> list[tuple]:
    """Each op of the graph; instructions on the target and per MAC where the profiled build measured them
    ("-" for ops with no kernel call, such as RESHAPE, or when no profile was taken)."""
    costs = {} if chain.cortex_m is None else {o.op_index: o for o in chain.cortex_m.ops}
    kernels = {} if chain.c_engine is None else dict(chain.c_engine.kernels)
    rows = []
    for o in op_summary(chain.quantized.graph):
        cost = costs.get(o.index)
        rows.append((o.index, o.op, o.layer, kernels.get(o.index, "-"), "x".join(str(d) for d in o.output_shape),
                     o.output_bytes,
                     o.constant_bytes, o.macs, "-" if cost is None else f"{cost.instructions:.0f}",
                     "-" if cost is None or not cost.macs else f"{cost.instructions_per_mac:.2f}",
                     "-" if cost is None or cost.cycles is None else f"{cost.cycles:.0f}",
                     "-" if cost is None or cost.cycles_per_mac is None else f"{cost.cycles_per_mac:.2f}"))
    return rows


def _ops_note(chain: ChainReport) -> str | None:
    """Where the per-op counts come from and how their sum compares with the unprofiled build's total."""
    m = chain.cortex_m
    if m is None or not m.ops:
        return None
    return (f"Instructions on {m.target} (QEMU, {m.opt}): means over {m.profile_images} inputs of a second build "
            f"with per-op marks (PROFILE=1; its outputs identical to TFLM's on {m.profile_bitexact_images} of "
            f"{m.profile_images}); each mark reads one SysTick tick. Their sum, {m.ops_instructions:.0f}, is "
            f"{100.0 * m.ops_instructions / m.instructions_per_inference:.3f} % of the "
            f"{m.instructions_per_inference} instructions per inference of the unprofiled build.")


def _analysis_values(analysis) -> dict:
    classify = analysis.verified.task is Task.CLASSIFICATION
    sweep_metric = _pct if classify else (lambda x: "-" if x is None else f"{x:.1f} dB")
    sweep = [(r.label, sweep_metric(r.accuracy), "-" if r.model_bytes is None else str(r.model_bytes),
              "-" if r.tflm_arena_bytes is None else str(r.tflm_arena_bytes), "yes" if r.tflm_runs else "no",
              r.runtime, r.note) for r in analysis.sweep]
    return dict(
        sweep=sweep, layers=analysis.layers,
        sensitive=[f"{e.layer} ({e.sqnr_db:.1f} dB)" for e in most_sensitive(analysis.layers)],
        layer_plot=layer_error_plot(analysis.layers), weights=analysis.weights, findings=analysis.audit.findings,
        sweep_metric_name=analysis.sweep_metric_name,
        confusion_float=None if analysis.confusion_float is None else confusion_plot(analysis.confusion_float,
                                                                                       "Keras float"),
        confusion_int8=None if analysis.confusion_int8 is None else confusion_plot(analysis.confusion_int8,
                                                                                     "int8 in TFLM"))


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


SECTIONS = (("summary", "Summary"), ("stages", "Stage agreement"), ("memory", "Memory"), ("flash", "Flash"),
            ("ops", "Ops"))
ANALYSIS_SECTIONS = (("sweep", "Quantization settings"), ("layers", "Per-layer error"),
                     ("weights", "Weights: round-trip error"), ("confusion", "Confusion matrices"),
                     ("audit", "Calibration audit"))


def html_values(chain: ChainReport, version: str) -> dict:
    """Plain values (strings, numbers, data URIs) for templates/report.html.j2."""
    q, v, c = chain.quantized, chain.verified, chain.c_engine
    sections = SECTIONS + (ANALYSIS_SECTIONS if chain.analysis is not None else ())
    if chain.analysis is not None and chain.analysis.confusion_float is None:
        sections = tuple(sec for sec in sections if sec[0] != "confusion")
    if chain.fidelity is not None:
        sections = sections[:len(SECTIONS)] + (("fidelity", "Fidelity"),) + sections[len(SECTIONS):]
    if chain.notes:
        sections += (("notes", "Notes"),)
    values = dict(
        model_name=q.name, version=version, sha256=q.sha256, test_images=v.test_images, task=v.task.value,
        metric_name=v.metric_name, sections=sections, summary=_summary(chain), stages=_stages(chain), memory=_memory(chain),
        flash=_flash(chain), ops=_ops(chain), ops_note=_ops_note(chain), notes=list(chain.notes), analysis=chain.analysis is not None,
        arena_plot=arena_plot(c.blocks, c.call_count, c.arena_bytes, c.lower_bound_bytes) if c and c.blocks else None,
        fidelity=fidelity_values(chain.fidelity) if chain.fidelity is not None else None,
    )
    if chain.analysis is not None:
        values.update(_analysis_values(chain.analysis))
    return values


def write_html(out_path: str | Path, chain: ChainReport) -> Path:
    """Render templates/report.html.j2 for one run to `out_path`."""
    path = Path(out_path)
    path.write_text(environment().get_template("report.html.j2").render(**html_values(chain, __version__)))
    return path
