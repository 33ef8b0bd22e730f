"""`tinyq diff`: one int8 model through every runtime with every op's output kept; where two runtimes' final
outputs differ, the first op whose output differs, and why (tinyq/engine/explain.py). Tracing is difftrace.py.

Runtimes: LiteRT with reference and default kernels and TFLM (each in its preserve-all-tensors mode), and the
generated C engine built with its trace hook (`make TRACE=1`) on the host and on a Cortex-M core in QEMU.
A trace is one int8 row per input: every op's output tensor, in op order (a RESHAPE's output is its input's bytes).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import tempfile
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Callable

import numpy as np

from .difftrace import (C_TARGETS, Layout, Runtime, TracedOp, build_trace_stub, parse_c_trace, run_c_trace,
                        trace_python_runtimes)
from .errors import TinyqError
from .data import load_mnist, preprocess
from .targets.firmware import build_library, run_library
from .outdir import check_manifest
from .quantize import QuantizedModel, inspect_tflite
from .verify import quantize_input
from .native import Runtime as NativeRuntime, Workers, session
from .engine import Graph, KernelCall, Lowered, Optimize, lower, read_graph
from .engine.explain import Explanation, RoundingUse, explain, rounding_followed

Progress = Callable[[str], None]
CHUNK = 1000  # inputs traced and compared at a time: bounds memory at CHUNK x (bytes of every op output)



@dataclass(frozen=True)
class OpPair:
    """One op for one pair of runtimes over all inputs: inputs where its output differs, elements, worst gap."""

    op_index: int
    pair: tuple[str, str]
    images: int
    elements: int
    max_lsb: int


@dataclass(frozen=True)
class PairSummary:
    """One pair of runtimes over all inputs: inputs with identical final outputs, worst final gap."""

    pair: tuple[str, str]
    images: int
    identical: int
    max_lsb: int


@dataclass(frozen=True)
class Divergence:
    """One input where a pair's final outputs differ: the first op whose output differs, and why."""

    image: int
    pair: tuple[str, str]
    op_index: int
    op_name: str
    tensor: str
    elements: int
    max_lsb: int
    explanation: Explanation


@dataclass(frozen=True)
class DiffResult:
    """Everything `tinyq diff` found: runtimes, test-set indices of the inputs, per-pair and per-op tables,
    the divergences, which generated files were edited by hand, and the wall time."""

    runtimes: tuple[Runtime, ...]
    images: tuple[int, ...]
    layout: Layout
    pairs: tuple[PairSummary, ...]
    ops: tuple[OpPair, ...]
    divergences: tuple[Divergence, ...]
    modified_files: tuple[str, ...]
    seconds: float

    @property
    def agree(self) -> bool:
        return all(p.identical == p.images for p in self.pairs)

    def twins(self) -> dict[str, str]:
        """Runtimes identical to an earlier one at every op on every input: later name -> earlier name."""
        same = {}
        for o in self.pairs:
            a, b = o.pair
            if b not in same and a not in same and not any(x.images for x in self.ops if x.pair == o.pair):
                same[b] = a
        return same

    def rounding(self) -> tuple[RoundingUse, ...]:
        """Which requantization rule (double or single rounding) each runtime followed, from the divergences."""
        return rounding_followed((d.op_name, d.explanation) for d in self.divergences)

    def op_row(self, op_index: int) -> tuple[OpPair, ...]:
        return tuple(o for o in self.ops if o.op_index == op_index)

    def to_json(self) -> dict:
        """diff.json: `divergences` (image, pair, op, tensor, elements, max_lsb, explanation) and `ops`;
        no wall time, so the same folder and inputs give the same bytes."""
        return {
            "runtimes": [r.value for r in self.runtimes],
            "images": len(self.images),
            "agree": self.agree,
            "modified_files": list(self.modified_files),
            "rounding": [{"runtime": u.runtime, "rule": u.rule, "ops": list(u.ops)} for u in self.rounding()],
            "pairs": [{"pair": list(p.pair), "images": p.images, "identical": p.identical, "max_lsb": p.max_lsb}
                      for p in self.pairs],
            "divergences": [{"image": d.image, "pair": list(d.pair), "op_index": d.op_index, "op_name": d.op_name,
                             "tensor": d.tensor, "elements": d.elements, "max_lsb": d.max_lsb,
                             "explanation": d.explanation.to_json()} for d in self.divergences],
            "ops": [{"op_index": op.index, "op_name": op.name, "tensor": op.tensor,
                     "pairs": [{"pair": list(o.pair), "images": o.images, "elements": o.elements,
                                "max_lsb": o.max_lsb} for o in self.op_row(op.index)]}
                    for op in self.layout.ops],
        }


@dataclass(frozen=True)
class _Model:
    """What every step needs about the model: bytes, graph, lowering (None if the C engine cannot run it)."""

    tflite: bytes
    graph: Graph
    lowered: Lowered | None
    layout: Layout


def _model(tflite: bytes, graph: Graph) -> _Model:
    try:  # the generic kernels: explain.py recomputes their arithmetic, which every specialised variant equals
        lowered = lower(graph, Optimize.SIZE)
    except TinyqError:
        lowered = None
    return _Model(tflite, graph, lowered, Layout.of(graph))


# ---- comparing ----

class _Tally:
    """Per-op and per-pair counts accumulated over chunks of inputs."""

    def __init__(self, pairs: list[tuple[Runtime, Runtime]], layout: Layout) -> None:
        self.layout = layout
        self.pairs = pairs
        self.images = 0
        self.identical = {p: 0 for p in pairs}
        self.final_lsb = {p: 0 for p in pairs}
        self.op_images = {(p, op.index): 0 for p in pairs for op in layout.ops}
        self.op_elements = dict.fromkeys(self.op_images, 0)
        self.op_lsb = dict.fromkeys(self.op_images, 0)


def _compare_chunk(m: _Model, tally: _Tally, traces: dict[Runtime, np.ndarray], inputs: np.ndarray,
                   indices: np.ndarray, divergences: list[Divergence]) -> None:
    layout = m.layout
    last = layout.output
    calls: dict = {}
    for c in m.lowered.calls if m.lowered is not None else ():  # an op's first call writes its output 0
        calls.setdefault(c.op_index, c)
    tally.images += len(indices)
    for a, b in tally.pairs:
        differ = traces[a] != traces[b]
        if not differ.any():
            tally.identical[(a, b)] += len(indices)
            continue
        gap = np.abs(np.subtract(traces[a], traces[b], dtype=np.int16))
        per_op = np.stack([differ[:, op.columns].view(np.uint8).sum(axis=1, dtype=np.int32) for op in layout.ops],
                          axis=1)
        lsb = np.stack([gap[:, op.columns].max(axis=1) for op in layout.ops], axis=1)
        for k, op in enumerate(layout.ops):
            key = ((a, b), op.index)
            tally.op_images[key] += int(np.count_nonzero(per_op[:, k]))
            tally.op_elements[key] += int(per_op[:, k].sum())
            tally.op_lsb[key] = max(tally.op_lsb[key], int(lsb[:, k].max(initial=0)))
        final = per_op[:, layout.final] > 0
        tally.identical[(a, b)] += int(np.count_nonzero(~final))
        tally.final_lsb[(a, b)] = max(tally.final_lsb[(a, b)], int(gap[:, last.columns].max(initial=0)))
        for row in np.flatnonzero(final):
            k = int(np.flatnonzero(per_op[row])[0])
            op = layout.ops[k]
            divergences.append(_divergence(m, op, calls.get(op.index), traces, a, b, inputs, row,
                                           int(indices[row]), int(per_op[row, k]), int(lsb[row, k])))


def _divergence(m: _Model, op: TracedOp, call: KernelCall | None, traces: dict[Runtime, np.ndarray], a: Runtime,
                b: Runtime, inputs: np.ndarray, row: int, image: int, elements: int, max_lsb: int) -> Divergence:
    graph_op = m.graph.operators[op.index]
    ta, tb = traces[a][row, op.columns], traces[b][row, op.columns]
    flat = int(np.flatnonzero(ta != tb)[0])
    values = {m.layout.input_tensor: inputs[row].reshape(-1)}
    for o in m.layout.ops:
        values[o.tensor_index] = traces[a][row, o.columns]
    for t in graph_op.inputs:
        if t >= 0 and m.graph.tensors[t].is_constant:
            values[t] = m.graph.tensors[t].data.reshape(-1)
    why = explain(m.graph, graph_op, call, values, flat, ((a.value, int(ta[flat])), (b.value, int(tb[flat]))))
    return Divergence(image, (a.value, b.value), op.index, op.name, op.tensor, elements, max_lsb, why)


# ---- the command ----

@dataclass(frozen=True)
class DiffConfig:
    """Which inputs (test-set indices; None: all), which C targets besides the Python runtimes, and whether
    hand-edited generated files are accepted."""

    images: tuple[int, ...] | None = None
    c_targets: tuple[str, ...] = ("host",)
    allow_modified: bool = False
    python_runtimes: tuple[Runtime, ...] = (Runtime.LITERT_REF, Runtime.LITERT, Runtime.TFLM)

    def __post_init__(self) -> None:
        unknown = [t for t in self.c_targets if t not in C_TARGETS]
        if unknown:
            raise TinyqError(f"unknown C target(s) {unknown}; known: {', '.join(C_TARGETS)}")


def modified_files(fw_dir: str | os.PathLike) -> tuple[str, ...]:
    """Files of the folder that differ from firmware/manifest.json (edited, missing or added by hand), sorted;
    the same check `tinyq firmware` makes (tinyq.outdir.check_manifest)."""
    return tuple(sorted(c.name for c in check_manifest(Path(fw_dir).parent)))


def diff_model(tflite: bytes, inputs: np.ndarray, indices: tuple[int, ...], fw_dir: str | os.PathLike | None,
               config: DiffConfig, modified: tuple[str, ...] = (), progress: Progress | None = None,
               build_dir: str | os.PathLike | None = None, graph: Graph | None = None,
               workers: Workers | None = None) -> DiffResult:
    """Trace `inputs` (int8, test-set `indices`) through every runtime of `config`, compare every pair;
    trace builds go to `build_dir` (default: a temporary folder). `graph`: the Graph already read from
    `tflite`, if any; `workers`: the caller's native-runtime session (else a fresh one)."""
    say = progress or (lambda _msg: None)
    start = time.monotonic()
    m = _model(tflite, read_graph(tflite) if graph is None else graph)
    inputs = np.asarray(inputs, np.int8)
    c_targets = config.c_targets if fw_dir is not None else ()
    if c_targets and m.lowered is None:
        raise TinyqError("the C engine cannot run this model (tinyq diff needs its lowering to read the C trace)")
    runtimes = tuple(config.python_runtimes) + tuple(C_TARGETS[t] for t in c_targets)
    pairs = list(combinations(runtimes, 2))
    tally = _Tally(pairs, m.layout)
    divergences: list[Divergence] = []
    with tempfile.TemporaryDirectory(prefix="tinyq_diff_") as tmp, session(workers) as workers, \
            concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        workers.prepare(NativeRuntime.TFLM, NativeRuntime.LITERT)
        exes = {}
        for t in c_targets:
            say(f"building the C engine with its trace hook ({t})")
            exes[t] = build_trace_stub(fw_dir, Path(build_dir or tmp) / f"trace-{t}", t)
        for lo in range(0, len(inputs), CHUNK):
            x = inputs[lo:lo + CHUNK]
            say(f"tracing inputs {lo + 1}..{lo + len(x)} of {len(inputs)} through {len(runtimes)} runtimes")
            pending = {C_TARGETS[t]: pool.submit(run_c_trace, exe, t, x, Path(tmp) / f"run-{t}")
                       for t, exe in exes.items()}
            python = trace_python_runtimes(pool, workers, config.python_runtimes, tflite, x, m.layout)
            traces = {}
            for fut in python:
                traces.update(fut.result())
            for r, fut in pending.items():
                traces[r] = parse_c_trace(fut.result(), len(x), m.graph, m.lowered, m.layout, x, r.value)
            _compare_chunk(m, tally, traces, x, np.asarray(indices[lo:lo + CHUNK]), divergences)
    pair_names = {p: (p[0].value, p[1].value) for p in pairs}
    return DiffResult(
        runtimes=runtimes, images=tuple(indices), layout=m.layout,
        pairs=tuple(PairSummary(pair_names[p], tally.images, tally.identical[p], tally.final_lsb[p]) for p in pairs),
        ops=tuple(OpPair(op.index, pair_names[p], tally.op_images[(p, op.index)], tally.op_elements[(p, op.index)],
                         tally.op_lsb[(p, op.index)]) for op in m.layout.ops for p in pairs),
        divergences=tuple(sorted(divergences, key=lambda d: (d.image, d.pair))),
        modified_files=modified, seconds=time.monotonic() - start)


def folder_inputs(q: QuantizedModel, data_path: str | None,
                  images: tuple[int, ...] | None) -> tuple[np.ndarray, tuple[int, ...]]:
    """The int8 test inputs of a folder's model (MNIST test set, quantized as verify does) and their indices."""
    ds = load_mnist(data_path)
    n = len(ds.test_x)
    idx = tuple(range(n)) if images is None else tuple(images)
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise TinyqError(f"image index {bad[0]} is outside the test set (0..{n - 1})")
    x = quantize_input(preprocess(ds.test_x[list(idx)], q.input.shape[1:]), q.input)
    return x, idx


def run_diff(out_dir: str | os.PathLike, config: DiffConfig = DiffConfig(), data_path: str | None = None,
             progress: Progress | None = None, workers: Workers | None = None) -> DiffResult:
    """`tinyq diff OUT`: the folder's model over its test inputs through every runtime (in `workers`, else a
    fresh session); refuses hand-edited generated files unless config.allow_modified."""
    out = Path(out_dir)
    model_path, fw = out / "model_int8.tflite", out / "firmware"
    if not model_path.is_file():
        raise TinyqError(f"{model_path}: missing; OUT must name a folder written by `tinyq demo` or `tinyq convert`")
    modified = modified_files(fw)
    if modified and not config.allow_modified:
        raise TinyqError(f"{fw}: {', '.join(modified)} changed since tinyq wrote them (sha256 differs from "
                         f"manifest.json); pass --allow-modified to diff the files as they are")
    with session(workers) as w:
        q = inspect_tflite(model_path.read_bytes(), "model_int8", workers=w)
        inputs, idx = folder_inputs(q, data_path, config.images)
        has_c = bool(list(fw.glob("*_model.c")))
        return diff_model(q.tflite, inputs, idx, fw if has_c else None, config, modified, progress, graph=q.graph,
                          workers=w)


def write_diff_json(result: "DiffResult | QuickDiff", path: str | os.PathLike) -> Path:
    """Write diff.json (atomically: a temporary file renamed into place)."""
    p = Path(path)
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, p)
    return p


def summary_lines(result: DiffResult, per_pair: int = 3) -> list[str]:
    """The readable summary `tinyq diff` prints: pair matrix, per-op agreement, divergences (a few per pair)."""
    names = [r.value for r in result.runtimes]
    n = len(result.images)
    lines = [f"{n} inputs through {', '.join(names)} ({result.seconds:.1f} s)"]
    if result.modified_files:
        lines.append(f"generated files edited by hand (diffed as they are): {', '.join(result.modified_files)}")
    identical = {p.pair: p for p in result.pairs}
    width = max(len(x) for x in names)
    lines += ["", f"inputs with identical final outputs (of {n}):",
              " " * (width + 2) + "  ".join(f"{x:>{width}}" for x in names)]
    for a in names:
        cells = []
        for b in names:
            p = identical.get((a, b)) or identical.get((b, a))
            cells.append(f"{'-':>{width}}" if p is None else f"{p.identical:>{width}}")
        lines.append(f"{a:<{width}}  " + "  ".join(cells))
    agreeing = [op for op in result.layout.ops if not any(o.images for o in result.op_row(op.index))]
    lines += ["", f"per op: {len(agreeing)} of {len(result.layout.ops)} ops identical in every pair on every input"]
    for op in result.layout.ops:
        differing = [o for o in result.op_row(op.index) if o.images]
        cells = "; ".join(f"{o.pair[0]}/{o.pair[1]} {o.images} inputs, {o.elements} elements, max {o.max_lsb} LSB"
                          for o in differing) or "identical"
        lines.append(f"  #{op.index} {op.name} ({op.layer}): {cells}")
    twins = result.twins()
    for dup, same in twins.items():
        lines.append(f"{dup} is identical to {same} at every op on every input: its pairs are left out below")
    shown = [p for p in result.pairs if p.pair[0] not in twins and p.pair[1] not in twins]
    if any(d.pair in {p.pair for p in shown} for d in result.divergences):
        lines += ["", "first divergent op of each disagreeing input:"]
    for p in shown:
        mine = [d for d in result.divergences if d.pair == p.pair]
        if not mine:
            continue
        lines.append(f"  {p.pair[0]} vs {p.pair[1]}: {len(mine)} inputs differ (max {p.max_lsb} LSB at the output)")
        for d in mine[:per_pair]:
            layer = next(op.layer for op in result.layout.ops if op.index == d.op_index)
            lines.append(f"    image {d.image}: op #{d.op_index} {d.op_name} ({layer}), {d.elements} elements differ, "
                         f"max {d.max_lsb} LSB")
            lines.append(f"      {d.explanation.text}")
        if len(mine) > per_pair:
            lines.append(f"    ... and {len(mine) - per_pair} more (diff.json)")
    uses = result.rounding()
    if uses:
        lines += ["", "requantization rule each runtime followed where the two rules part:"]
        lines += [f"  {u.text()}" for u in uses]
    inside = len(result.layout.ops) - len(agreeing)
    if result.agree and inside:
        lines += ["", f"final outputs agree in every pair; {inside} of {len(result.layout.ops)} ops differ inside "
                      f"(table above)"]
    else:
        lines += ["", "every pair agrees" if result.agree else "runtimes disagree"]
    return lines


@dataclass(frozen=True)
class QuickDiff:
    """The cheap diff `tinyq convert` runs: final-output agreement of every pair over the whole test set, and
    the full diff of the first few disagreeing inputs of each pair (None when every pair agrees everywhere)."""

    pairs: tuple[PairSummary, ...]
    disagreeing: int
    diff: DiffResult | None

    def to_json(self) -> dict:
        base = self.diff.to_json() if self.diff is not None else {"divergences": [], "ops": []}
        return {**base, "test_set_pairs": [{"pair": list(p.pair), "images": p.images, "identical": p.identical,
                                            "max_lsb": p.max_lsb} for p in self.pairs],
                "disagreeing_inputs": self.disagreeing,
                "traced_inputs": 0 if self.diff is None else len(self.diff.images)}


def quick_diff(tflite: bytes, inputs: np.ndarray, finals: dict[Runtime, np.ndarray], fw_dir: str | os.PathLike | None,
               c_matches_tflm: bool, build_dir: str | os.PathLike, per_pair: int = 5,
               progress: Progress | None = None, graph: Graph | None = None,
               workers: Workers | None = None) -> QuickDiff:
    """From final outputs a verification already has (and the C engine's, known equal to TFLM's or recomputed
    here), find the disagreeing inputs and trace the first `per_pair` of each pair through every runtime
    (native runtimes in `workers`, else a fresh session)."""
    n = len(inputs)
    outs = {r: np.asarray(f).reshape(n, -1) for r, f in finals.items()}
    if fw_dir is not None:
        if c_matches_tflm:
            outs[Runtime.C_HOST] = outs[Runtime.TFLM]
        else:
            lib = build_library(fw_dir, Path(build_dir) / "lib-host")
            outs[Runtime.C_HOST] = run_library(lib, inputs.reshape(n, -1), outs[Runtime.TFLM].shape[1], workers)
    disagree = np.zeros(n, bool)
    pairs, picked_set = [], set()
    for a, b in combinations(outs, 2):
        differ = np.any(outs[a] != outs[b], axis=1)
        disagree |= differ
        picked_set.update(int(i) for i in np.flatnonzero(differ)[:per_pair])
        gap = np.abs(outs[a].astype(np.int16) - outs[b].astype(np.int16))
        pairs.append(PairSummary((a.value, b.value), n, int(n - differ.sum()), int(gap.max(initial=0))))
    picked = tuple(sorted(picked_set))
    result = None
    if picked:
        config = DiffConfig(images=picked, c_targets=("host",) if fw_dir is not None else (),
                            python_runtimes=tuple(r for r in finals))
        result = diff_model(tflite, inputs[list(picked)], picked, fw_dir, config, progress=progress,
                            build_dir=build_dir, graph=graph, workers=workers)
    return QuickDiff(tuple(pairs), int(disagree.sum()), result)


def quick_note(q: QuickDiff) -> str | None:
    """One line for report.md: how many inputs disagree and the first divergent ops found, or None."""
    if q.diff is None:
        return None
    firsts: dict[tuple[int, str, str], set[int]] = {}
    twins = q.diff.twins()
    for d in q.diff.divergences:
        if d.pair[0] in twins or d.pair[1] in twins:
            continue
        firsts.setdefault((d.op_index, d.op_name, f"{d.pair[0]} vs {d.pair[1]}"), set()).add(d.image)
    parts = [f"op #{op} {name} for {pair} ({len(imgs)} input{'s' if len(imgs) > 1 else ''})"
             for (op, name, pair), imgs in sorted(firsts.items())]
    same = "".join(f"; {a} equals {b} at every op" for a, b in twins.items())
    same += "".join(f"; {u.text()}" for u in q.diff.rounding())
    return (f"diff: {q.disagreeing} test inputs disagree between some pair of runtimes; first divergent op in "
            f"{len(q.diff.images)} of them: {'; '.join(parts)}{same} (diff.json; `tinyq diff` for all inputs)")
