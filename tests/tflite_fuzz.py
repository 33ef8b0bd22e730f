"""A seeded mutation fuzzer over .tflite flatbuffers, shared by tests/test_fuzz.py and benchmarks/fuzz_tflite.py.

The mutation engine: byte flips, truncation, structure-aware corruptions of one flatbuffer structure (a vtable,
a reference, a vector length, a string, a union type; positions from the verifier's walk of the seed), and
field-level mutations made on the flatbuffer object API (schema ModelT) and re-packed with a flatbuffers Builder
(shapes, quantization, options, operator inputs, buffers and their data, names incl. invalid UTF-8, the schema's
fields tinyq does not use). Seeds: the demo models, or every op family's synthetic model of tests/tflite_build.py
(`seed_models`). The runner pushes each mutant through tinyq's byte-level verifier, its reader, its op/tensor
listings and the C engine generator under a time limit and sorts the outcome into classes by stage; accepted
mutants can be built under ASan+UBSan and run.
"""

from __future__ import annotations

import collections
import hashlib
import random
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import flatbuffers
import numpy as np

from tinyq.engine.schema import schema

from tflite_mutants import (FLOAT_EDGES, INT_EDGES, layout_mutant, m_const_data, m_extras, m_layout_operands,
                            m_op_list, m_options_any, m_per_channel, m_scale_extreme, m_shared_buffer)


def _schema():
    return schema


@dataclass(frozen=True)
class Mutant:
    """One mutated model: where it came from, which mutation, and its bytes."""

    seed: str
    case: int
    kind: str
    detail: str
    data: bytes


def _pick_int(rng: random.Random, n: int) -> int:
    """An index-like value: in range, just outside it, or an edge value."""
    return rng.choice((rng.randrange(max(n, 1)), n, n + 1, -1, -2, rng.choice(INT_EDGES)))


def _pick_uint(rng: random.Random, n: int) -> int:
    return rng.choice((rng.randrange(max(n, 1)), n, n + 1, (1 << 32) - 1, 1 << 31, rng.randrange(1 << 16)))


def _tensors(m):
    return m.subgraphs[0].tensors


def _ops(m):
    return m.subgraphs[0].operators


def _m_opcode_index(m, rng):
    op = rng.choice(_ops(m))
    op.opcodeIndex = _pick_uint(rng, len(m.operatorCodes))
    return f"opcode_index={op.opcodeIndex}"


def _m_builtin_code(m, rng):
    oc = rng.choice(m.operatorCodes)
    value = rng.choice((rng.randrange(210), rng.choice((-1, 127, 255, 1000, 1 << 20)),
                        rng.choice((1, 2, 3, 9, 17, 22, 25, 32))))  # real codes: ADD, pools, conv, FC, ...
    oc.builtinCode = value
    oc.deprecatedBuiltinCode = max(-128, min(127, value))
    return f"builtin_code={value}"


def _m_version(m, rng):
    oc = rng.choice(m.operatorCodes)
    oc.version = rng.choice((0, -1, 1, 2, 7, (1 << 31) - 1))
    return f"version={oc.version}"


def _m_op_tensor_index(m, rng):
    op = rng.choice(_ops(m))
    field = rng.choice(("inputs", "outputs"))
    ids = list(getattr(op, field))
    n = len(_tensors(m))
    if not ids or rng.random() < 0.2:
        ids.append(_pick_int(rng, n))
    elif rng.random() < 0.1:
        ids.pop(rng.randrange(len(ids)))
    else:
        ids[rng.randrange(len(ids))] = rng.choice((_pick_int(rng, n), *ids, *getattr(op, "outputs" if field ==
                                                                                      "inputs" else "inputs")))
    setattr(op, field, ids)
    return f"op.{field}={ids}"


def _m_graph_io(m, rng):
    sg = m.subgraphs[0]
    field = rng.choice(("inputs", "outputs"))
    ids = list(getattr(sg, field))
    n = len(sg.tensors)
    choice = rng.random()
    if choice < 0.15:
        ids = ids + ids
    elif choice < 0.25:
        ids = []
    else:
        ids[rng.randrange(len(ids))] = _pick_int(rng, n)
    setattr(sg, field, ids)
    return f"subgraph.{field}={ids}"


def _m_alias_cycle(m, rng):
    """A RESHAPE (or any op) whose output names its own input, or ops swapped out of execution order."""
    ops = _ops(m)
    if rng.random() < 0.5 or len(ops) < 2:
        op = rng.choice(ops)
        op.outputs = [int(op.inputs[0])]
        return f"op output := its input {op.inputs[0]}"
    i = rng.randrange(len(ops) - 1)
    ops[i], ops[i + 1] = ops[i + 1], ops[i]
    return f"ops {i} and {i + 1} swapped"


def _m_buffer_index(m, rng):
    t = rng.choice(_tensors(m))
    t.buffer = _pick_uint(rng, len(m.buffers))
    return f"tensor.buffer={t.buffer}"


def _m_shape(m, rng):
    t = rng.choice(_tensors(m))
    shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    choice = rng.random()
    if choice < 0.15 and shape:
        shape.pop(rng.randrange(len(shape)))
    elif choice < 0.3:
        shape.insert(rng.randrange(len(shape) + 1), rng.choice((1, 2, 3)))
    elif shape:
        i = rng.randrange(len(shape))
        shape[i] = rng.choice((0, -1, shape[i] - 1, shape[i] + 1, shape[i] * 2, max(1, shape[i] // 2),
                               rng.choice(INT_EDGES)))
    t.shape = shape
    return f"tensor {t.name!r} shape={shape}"


def _m_buffer_size(m, rng):
    bufs = [b for b in m.buffers if b.data is not None and len(b.data) > 0]
    if not bufs:
        return None
    b = rng.choice(bufs)
    data = np.asarray(b.data, dtype=np.uint8)
    cut = rng.choice((len(data) - 1, len(data) // 2, 1, len(data) + 1, len(data) * 2))
    b.data = data[:cut] if cut <= len(data) else np.concatenate([data, np.zeros(cut - len(data), np.uint8)])
    return f"buffer bytes {len(data)} -> {cut}"


def _m_dtype(m, rng):
    t = rng.choice(_tensors(m))
    t.type = rng.choice((0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 13, 17, 23, 100, 127))
    return f"tensor {t.name!r} type={t.type}"


def _m_quantization(m, rng):
    schema = _schema()
    t = rng.choice([t for t in _tensors(m) if t.quantization is not None and t.quantization.scale is not None]
                   or _tensors(m))
    q = t.quantization or schema.QuantizationParametersT()
    t.quantization = q
    scales = [float(s) for s in (q.scale if q.scale is not None else [1.0])]
    zps = [int(z) for z in (q.zeroPoint if q.zeroPoint is not None else [0])]
    what = rng.choice(("scale", "zero_point", "dimension", "lengths", "drop"))
    if what == "scale":
        scales[rng.randrange(len(scales))] = rng.choice(FLOAT_EDGES)
    elif what == "zero_point":
        zps[rng.randrange(len(zps))] = rng.choice((128, -129, 255, 256, -32769, 1 << 40, -(1 << 63), 1, -128))
    elif what == "dimension":
        q.quantizedDimension = rng.choice((-1, 1, 2, 3, 4, 7, 1 << 20))
    elif what == "lengths":
        (scales if rng.random() < 0.5 else zps).append(1)
    else:
        t.quantization = None
        return f"tensor {t.name!r} quantization dropped"
    q.scale, q.zeroPoint = scales, zps
    return f"tensor {t.name!r} quantization {what}: scale={scales[:3]} zp={zps[:3]} dim={q.quantizedDimension}"


_OPTION_FIELDS = ("strideH", "strideW", "dilationHFactor", "dilationWFactor", "filterHeight", "filterWidth",
                  "depthMultiplier", "padding", "fusedActivationFunction", "beta", "keepNumDims", "weightsFormat")


def _m_options(m, rng):
    schema = _schema()
    ops = [op for op in _ops(m) if op.builtinOptions is not None] or _ops(m)
    op = rng.choice(ops)
    choice = rng.random()
    if choice < 0.15:
        op.builtinOptions = None
        return "options dropped"
    if choice < 0.35:
        cls = rng.choice((schema.Conv2DOptionsT, schema.Pool2DOptionsT, schema.SoftmaxOptionsT,
                          schema.FullyConnectedOptionsT, schema.AddOptionsT, schema.ReshapeOptionsT,
                          schema.DepthwiseConv2DOptionsT, schema.ConcatenationOptionsT))
        types = {v: k for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_")}
        name = cls.__name__.removesuffix("T")
        op.builtinOptions = cls()
        op.builtinOptionsType = next(v for v, k in types.items() if k == name)
        return f"options replaced by {name}"
    fields = [f for f in _OPTION_FIELDS if hasattr(op.builtinOptions, f)]
    if not fields:
        return None
    field = rng.choice(fields)
    if field == "beta":
        value = rng.choice(FLOAT_EDGES)
    elif field in ("padding", "fusedActivationFunction", "weightsFormat", "keepNumDims"):
        value = rng.choice((0, 1, 2, 3, 4, 5, 6, 7, 127, -1)) if field != "keepNumDims" else rng.random() < 0.5
    else:
        value = rng.choice(INT_EDGES)
    setattr(op.builtinOptions, field, value)
    return f"options.{field}={value}"


def _m_name(m, rng):
    t = rng.choice(_tensors(m))
    name = bytes(t.name or b"")
    choice = rng.random()
    if choice < 0.4:
        t.name = name[:3] + rng.choice((b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80")) + name[3:]
    elif choice < 0.6:
        t.name = name + rng.choice((b" */ int injected; /* ", b"*/", b"/*", b"\n#error x\n", "\u00e9\u2028".encode()))
    elif choice < 0.7:
        t.name = b""
    else:
        t.name = name + b"/" + bytes(rng.randrange(32, 127) for _ in range(rng.choice((5, 300))))
    return f"tensor #{_tensors(m).index(t)} name={t.name[:20]!r}"



FIELD_MUTATORS: dict[str, Callable] = {
    "opcode_index": _m_opcode_index, "builtin_code": _m_builtin_code, "version": _m_version,
    "op_tensor_index": _m_op_tensor_index, "graph_io": _m_graph_io, "alias_cycle": _m_alias_cycle,
    "buffer_index": _m_buffer_index, "shape": _m_shape, "buffer_size": _m_buffer_size, "dtype": _m_dtype,
    "quantization": _m_quantization, "options": _m_options, "name": _m_name, "options_any": m_options_any,
    "const_data": m_const_data, "scale_extreme": m_scale_extreme, "per_channel": m_per_channel,
    "shared_buffer": m_shared_buffer, "op_list": m_op_list, "extras": m_extras,
    "layout_operands": m_layout_operands,
}


def pack(model) -> bytes:
    """Re-pack a ModelT as a .tflite (file identifier TFL3)."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _field_mutant(seed: bytes, rng: random.Random) -> tuple[str, str, bytes] | None:
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(seed, 0)
    for t in model.subgraphs[0].tensors:  # plain lists and bytes so that mutations can grow or shrink them
        t.shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    for op in model.subgraphs[0].operators:
        op.inputs = [int(x) for x in op.inputs]
        op.outputs = [int(x) for x in op.outputs]
    kinds = list(FIELD_MUTATORS)
    applied = []
    for _ in range(1 if rng.random() < 0.8 else rng.choice((2, 3))):
        kind = rng.choice(kinds)
        try:
            detail = FIELD_MUTATORS[kind](model, rng)
        except (IndexError, ValueError):  # nothing left to mutate there (an emptied list from an earlier mutation)
            detail = None
        if detail is not None:
            applied.append((kind, detail))
    if not applied:
        return None
    try:
        data = pack(model)
    except Exception:  # noqa: BLE001 - a value the field's type cannot hold (struct.error, OverflowError)
        return None
    return "+".join(k for k, _ in applied), "; ".join(d for _, d in applied), data


def mutants(seed: bytes, seed_name: str, count: int, rng_seed) -> Iterator[Mutant]:
    """`count` mutants of one model, reproducible from `rng_seed`: about 10 % byte flips, 5 % truncations, 25 %
    corruptions of one flatbuffer structure (vtables, offsets, lengths, strings, union types), the rest one to
    three field-level mutations."""
    from tinyq.engine.verifier import structure

    rng = random.Random(rng_seed)
    records = structure(seed)
    case = 0
    while case < count:
        roll = rng.random()
        if roll < 0.10:
            data = bytearray(seed)
            flips = [rng.randrange(len(data)) for _ in range(rng.choice((1, 2, 4, 16)))]
            for pos in flips:
                data[pos] = rng.choice((data[pos] ^ (1 << rng.randrange(8)), rng.randrange(256), 0, 0xFF))
            made = ("byte_flip", f"{len(flips)} bytes at {flips[:4]}", bytes(data))
        elif roll < 0.15:
            cut = rng.choice((rng.randrange(len(seed)), rng.randrange(64), len(seed) - rng.randrange(1, 64)))
            made = ("truncation", f"{cut} of {len(seed)} bytes", seed[:cut])
        elif roll < 0.40:
            made = layout_mutant(seed, records, rng)
        else:
            made = _field_mutant(seed, rng)
            if made is None:
                continue
        yield Mutant(seed_name, case, made[0], made[1], made[2])
        case += 1


def seed_models() -> dict[str, bytes]:
    """Every op family's synthetic int8 model of tests/tflite_build.py (no TensorFlow), by case name."""
    import tflite_build

    return {name: tflite_build.case(name) for name in sorted(tflite_build.CASES)}


def spread(seeds: dict[str, bytes], total: int, rng_seed: int) -> Iterator[Mutant]:
    """`total` mutants spread evenly over the seed models, each model's stream reproducible from
    (rng_seed, its name)."""
    names = list(seeds)
    for k, name in enumerate(names):
        count = total // len(names) + (1 if k < total % len(names) else 0)
        yield from mutants(seeds[name], name, count, f"{rng_seed}:{name}")


# ---- Running mutants through tinyq ----

class Hang(BaseException):
    """Raised by the timer when a case runs past its time limit (BaseException: no `except Exception` eats it)."""


@dataclass(frozen=True)
class Outcome:
    """What tinyq did with one mutant: its class ('accepted', 'rejected by verifier: InvalidModelError', 'rejected
    by reader: InvalidModelError', 'rejected by engine: UnsupportedOpError', 'untyped: ValueError', 'hang'), the
    message and the engine files if any."""

    mutant: Mutant
    klass: str
    message: str
    seconds: float
    files: tuple = ()

    @property
    def bad(self) -> bool:
        return self.klass.startswith(("untyped", "hang"))


def _alarm(_signum, _frame):
    raise Hang()


def run_case(m: Mutant, time_limit: float = 10.0) -> Outcome:
    """The reader, the op/tensor listings for reports (MACs, op summary, TFLM resolver) and the C engine
    generator on one mutant, under a time limit."""
    from tinyq import analyze, tflm
    from tinyq.engine import cengine
    from tinyq.render import Banner
    from tinyq.errors import TinyqError
    from tinyq.engine import macs, read_graph
    from tinyq.engine.verifier import verify_flatbuffer

    banner = Banner("fuzz", m.seed, hashlib.sha256(m.data).hexdigest(), "-", "-")
    start = time.perf_counter()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    stage, klass, message, files = "verifier", "accepted", "", ()
    try:
        verify_flatbuffer(m.data)
        stage = "reader"
        read_graph(m.data)
        stage = "listing"
        graph = read_graph(m.data)
        macs(graph)
        analyze.op_summary(graph)
        try:
            tflm.resolver_methods(read_graph(m.data))
        except TinyqError:
            pass  # an op TFLM has no resolver for is a typed refusal, and the C engine may still run it
        stage = "engine"
        files = cengine.generate(read_graph(m.data), "fz", banner).files
    except Hang:
        klass, message = "hang", f"still running after {time_limit:.0f} s in the {stage}"
    except TinyqError as exc:
        klass, message = f"rejected by {stage}: {type(exc).__name__}", str(exc)
    except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer counts
        klass, message = f"untyped: {type(exc).__name__}", f"{stage}: {exc!r}"[:500]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return Outcome(m, klass, message, time.perf_counter() - start, files)


def summary(outcomes: list[Outcome]) -> list[tuple[str, int]]:
    """Outcome classes and their counts, accepted first, then by count."""
    counts = collections.Counter(o.klass for o in outcomes)
    return sorted(counts.items(), key=lambda kv: (kv[0] != "accepted", -kv[1], kv[0]))


def table(rows: list[tuple[str, int]], total: int) -> str:
    width = max([len(k) for k, _ in rows] + [len("outcome")])
    lines = [f"| {'outcome'.ljust(width)} | {'cases':>6} | {'share':>6} |", f"|{'-' * (width + 2)}|{'-' * 8}|{'-' * 8}|"]
    lines += [f"| {k.ljust(width)} | {n:>6} | {100 * n / max(total, 1):>5.1f}% |" for k, n in rows]
    lines.append(f"| {'total'.ljust(width)} | {total:>6} |        |")
    return "\n".join(lines)


STAGES = ("verifier", "reader", "listing", "engine")


def stage_table(outcomes: list[Outcome]) -> str:
    """Cases, accepted, rejected per stage (the byte-level verifier, the reader's gate, the report listings, the
    C engine's lowering and generation), untyped exceptions and hangs."""
    rows = [("cases", len(outcomes)), ("accepted", sum(o.klass == "accepted" for o in outcomes))]
    rows += [(f"rejected by {stage}" + (" (lowering/engine)" if stage == "engine" else ""),
              sum(o.klass.startswith(f"rejected by {stage}:") for o in outcomes)) for stage in STAGES]
    rows += [("untyped exceptions", sum(o.klass.startswith("untyped") for o in outcomes)),
             ("hangs", sum(o.klass == "hang" for o in outcomes))]
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'stage'.ljust(width)} | {'cases':>6} |", f"|{'-' * (width + 2)}|{'-' * 8}|"]
    return "\n".join(lines + [f"| {k.ljust(width)} | {n:>6} |" for k, n in rows])


# ---- Accepted mutants under ASan+UBSan ----

@dataclass(frozen=True)
class SanitizedRun:
    """One accepted mutant's generated C built with -fsanitize=address,undefined and run on random inputs."""

    outcome: Outcome
    clean: bool
    detail: str


def engine_key(files) -> str:
    """Mutants whose generated engine is byte-identical need one build: the hash of the engine files."""
    return hashlib.sha256("".join(f.text for f in files).encode()).hexdigest()


def sanitized_run(outcome: Outcome, work: Path, inputs: int = 8, rng_seed: int = 0) -> SanitizedRun:
    """Emit the accepted mutant's firmware folder (golden vectors stand in: random inputs, no expected outputs),
    build the host stub with SANITIZE=1, push random int8 inputs through it; clean when it exits 0."""
    from tinyq import emit, verify
    from tinyq.targets import firmware
    from tinyq.errors import BuildError
    from tinyq.engine import read_graph
    from tinyq.quantize import OpInfo, QuantizeConfig, QuantizedModel, TensorQuant

    g = read_graph(outcome.mutant.data)

    def quant(index: int) -> TensorQuant:
        t = g.tensors[index]
        return TensorQuant(t.name, t.shape, t.dtype, t.scales[0], t.zero_points[0])

    q = QuantizedModel(f"fuzz_{outcome.mutant.seed}", outcome.mutant.data,
                       tuple(OpInfo(op.name, op.version) for op in g.operators), quant(g.inputs[0]),
                       quant(g.outputs[0]), QuantizeConfig(), g)
    rng = np.random.default_rng(rng_seed)
    in_bytes, out_bytes = g.tensors[g.inputs[0]].nbytes, g.tensors[g.outputs[0]].nbytes
    xs = rng.integers(-128, 128, (inputs, in_bytes), dtype=np.int8)
    xs[0], xs[1] = -128, 127
    result = verify.VerifyResult.tflm_only(q, xs, np.zeros((inputs, out_bytes), np.int8), np.zeros(inputs, int))
    with tempfile.TemporaryDirectory(prefix="fz_", dir=work) as tmp:
        fw = Path(tmp) / "fw"
        emit.emit(q, result, fw, name="fz", golden_count=2)
        try:
            exe = firmware.build_stub(fw, Path(tmp) / "build", sanitize=True)
            out = firmware.run_batch(exe, xs, out_bytes)
        except BuildError as exc:
            return SanitizedRun(outcome, False, str(exc)[:600])
    return SanitizedRun(outcome, True, f"{len(out)} inputs, {in_bytes} -> {out_bytes} bytes")


def edit(seed: bytes, change: Callable) -> bytes:
    """Unpack a .tflite, let `change(model)` edit the ModelT in place, re-pack it: for hand-made bad models."""
    model = _schema().ModelT.InitFromPackedBuf(seed, 0)
    change(model)
    return pack(model)
