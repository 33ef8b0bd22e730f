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
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import flatbuffers
import numpy as np

from tinyq.engine.schema import schema

INT_EDGES = (0, 1, -1, 2, -2, 3, 7, 127, 128, 255, 256, 1 << 15, 1 << 16, (1 << 16) + 1, (1 << 31) - 1,
             -(1 << 31), -14)
FLOAT_EDGES = (0.0, -0.0, -1.0, float("nan"), float("inf"), float("-inf"), 1e-45, 1e-38, 3.4e38, 1.0, 1 / 256, 1e-9)


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



def _m_options_any(m, rng):
    """Any field of an op's builtin options, not only the well-known ones (vectors such as new_shape too)."""
    ops = [op for op in _ops(m) if op.builtinOptions is not None]
    if not ops:
        return None
    o = rng.choice(ops).builtinOptions
    fields = [k for k, v in vars(o).items() if isinstance(v, (int, float, list, np.ndarray))]
    if not fields:
        return None
    field = rng.choice(fields)
    value = getattr(o, field)
    if isinstance(value, bool):
        new = not value
    elif isinstance(value, float):
        new = rng.choice(FLOAT_EDGES)
    elif isinstance(value, int):
        new = rng.choice((*INT_EDGES, value + 1, value - 1, -128, 255))
    else:
        new = [int(v) for v in value]
        if new and rng.random() < 0.7:
            new[rng.randrange(len(new))] = rng.choice(INT_EDGES)
        else:
            new = new[:-1] if new and rng.random() < 0.5 else new + [rng.choice(INT_EDGES)]
    setattr(o, field, new)
    return f"{type(o).__name__.removesuffix('T')}.{field}={str(new)[:40]}"


_ITEM = {0: np.int32, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}  # TensorType -> raw view


def _m_const_data(m, rng):
    """Constant data at its edges (weights all -128 or 127, biases at int32's extremes): the kernels' overflow
    and saturation paths, for the sanitizers."""
    used = [(t, m.buffers[t.buffer]) for t in _tensors(m) if 0 <= t.buffer < len(m.buffers)
            and m.buffers[t.buffer].data is not None and len(m.buffers[t.buffer].data)]
    if not used:
        return None
    t, b = rng.choice(used)
    raw = np.array(b.data, dtype=np.uint8)
    kind = np.dtype(_ITEM.get(t.type, np.uint8))
    if len(raw) % kind.itemsize:
        return None
    values = raw.view(kind).copy()
    info = np.iinfo(kind)
    what = rng.choice(("min", "max", "zero", "spikes", "random"))
    if what in ("min", "max", "zero"):
        values[:] = {"min": info.min, "max": info.max, "zero": 0}[what]
    elif what == "spikes":
        for _ in range(max(1, len(values) // 8)):
            values[rng.randrange(len(values))] = rng.choice((info.min, info.max))
    else:
        values[:] = np.random.default_rng(rng.randrange(1 << 30)).integers(info.min, int(info.max) + 1,
                                                                           len(values), dtype=kind)
    b.data = values.view(np.uint8)
    return f"tensor {t.name!r} constant data {what}"


def _m_scale_extreme(m, rng):
    """Scales at or past the reader's limits, and ratios that push the requantization multipliers to their
    edges."""
    qs = [t for t in _tensors(m) if t.quantization is not None and t.quantization.scale is not None
          and len(t.quantization.scale)]
    if not qs:
        return None
    t = rng.choice(qs)
    value = rng.choice((1e-30, 9e-31, 1e30, 1.1e30, 1e-12, 1e-6, 1e-3, 0.5, 0.99999, 1.0, 2.0, 64.0, 1e4, 1e9))
    scales = [float(s) for s in t.quantization.scale]
    if rng.random() < 0.5:
        scales = [value] * len(scales)
    else:
        scales[rng.randrange(len(scales))] = value
    t.quantization.scale = scales
    return f"tensor {t.name!r} scale={value}"


def _m_per_channel(m, rng):
    """Per-tensor quantization made per-channel on some axis, or per-channel collapsed to one scale."""
    t = rng.choice(_tensors(m))
    q = t.quantization
    if q is None or q.scale is None or not len(q.scale):
        return None
    shape = list(t.shape)
    if len(q.scale) > 1 or not shape:
        q.scale, q.zeroPoint = [float(q.scale[0])], [int(q.zeroPoint[0]) if q.zeroPoint is not None and
                                                     len(q.zeroPoint) else 0]
        return f"tensor {t.name!r} per-tensor"
    axis = rng.randrange(len(shape))
    n = max(1, min(int(shape[axis]), 4096))
    q.scale = [float(q.scale[0]) * (1 + 0.1 * k) for k in range(n)]
    q.zeroPoint = [int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0] * n
    q.quantizedDimension = rng.choice((axis, axis, axis + 1, 0))
    return f"tensor {t.name!r} per-channel on axis {axis} dim={q.quantizedDimension}"


def _m_shared_buffer(m, rng):
    """A tensor pointed at another tensor's constant data (or an activation at a constant's buffer)."""
    consts = [t.buffer for t in _tensors(m) if 0 < t.buffer < len(m.buffers) and m.buffers[t.buffer].data is not None
              and len(m.buffers[t.buffer].data)]
    if not consts:
        return None
    t = rng.choice(_tensors(m))
    t.buffer = rng.choice(consts)
    return f"tensor {t.name!r} buffer := {t.buffer}"


def _m_op_list(m, rng):
    """An op removed, duplicated or moved to the end of the list."""
    import copy

    ops = _ops(m)
    what = rng.choice(("remove", "duplicate", "move"))
    i = rng.randrange(len(ops))
    if what == "remove" and len(ops) > 1:
        ops.pop(i)
    elif what == "duplicate":
        ops.insert(i, copy.deepcopy(ops[i]))
    else:
        ops.append(ops.pop(i))
    return f"op #{i} {what}"


def _m_extras(m, rng):
    """The schema's fields tinyq does not use, set: sparsity, variant tensors, shape signature, data outside the
    flatbuffer, custom options and code (UTF-8 or not), description, metadata, signature defs, quantization
    details, variables, intermediates."""
    schema = _schema()
    t = rng.choice(_tensors(m))
    op = rng.choice(_ops(m))
    what = rng.choice(("sparsity", "variant", "shape_signature", "external", "custom_options", "custom_code",
                       "description", "metadata", "signature", "details", "variable", "intermediates"))
    if what == "sparsity":
        sp = schema.SparsityParametersT()
        sp.traversalOrder = list(range(len(t.shape)))
        dm = schema.DimensionMetadataT()
        dm.format, dm.denseSize = rng.choice((0, 1, 7)), rng.choice((1, 4, -1))
        dm.arraySegmentsType, dm.arraySegments = schema.SparseIndexVector.Int32Vector, schema.Int32VectorT()
        dm.arraySegments.values = [0, 1]
        sp.dimMetadata = [dm]
        t.sparsity = sp
    elif what == "variant":
        v = schema.VariantSubTypeT()
        v.shape, v.type = [1, 2], 9
        t.variantTensors = [v]
    elif what == "shape_signature":
        t.shapeSignature = [-1] + list(t.shape)[1:]
    elif what == "external":
        b = m.buffers[rng.randrange(len(m.buffers))]
        b.offset, b.size = rng.choice(((1 << 20, 16), (0, 16), (1, 0), ((1 << 64) - 1, 1)))
    elif what == "custom_options":
        op.customOptions = [rng.randrange(256) for _ in range(rng.choice((1, 8, 100)))]
        op.customOptionsFormat = rng.choice((0, 1, -1))
    elif what == "custom_code":
        m.operatorCodes[rng.randrange(len(m.operatorCodes))].customCode = rng.choice((b"MyOp", b"\xff\xfeop", b""))
    elif what == "description":
        m.description = rng.choice((b"tinyq fuzz", b"bad \xc3\x28 text", b"x" * 1000))
    elif what == "metadata":
        md = schema.MetadataT()
        md.name, md.buffer = rng.choice((b"min_runtime_version", b"\xed\xa0\x80")), rng.choice((0, 1, 1 << 20))
        m.metadata = [md]
    elif what == "signature":
        sig = schema.SignatureDefT()
        tm = schema.TensorMapT()
        tm.name, tm.tensorIndex = b"input_0", rng.choice((0, 1, 1 << 30))
        sig.inputs, sig.outputs, sig.signatureKey = [tm], [tm], rng.choice((b"serving_default", b"\x80"))
        m.signatureDefs = [sig]
    elif what == "details":
        q = t.quantization or schema.QuantizationParametersT()
        q.detailsType, q.details = schema.QuantizationDetails.CustomQuantization, schema.CustomQuantizationT()
        q.details.custom = [1, 2, 3]
        t.quantization = q
    elif what == "variable":
        t.isVariable = True
    else:
        op.intermediates = [rng.randrange(len(_tensors(m)) + 2)]
    return f"{what} set"


FIELD_MUTATORS: dict[str, Callable] = {
    "opcode_index": _m_opcode_index, "builtin_code": _m_builtin_code, "version": _m_version,
    "op_tensor_index": _m_op_tensor_index, "graph_io": _m_graph_io, "alias_cycle": _m_alias_cycle,
    "buffer_index": _m_buffer_index, "shape": _m_shape, "buffer_size": _m_buffer_size, "dtype": _m_dtype,
    "quantization": _m_quantization, "options": _m_options, "name": _m_name, "options_any": _m_options_any,
    "const_data": _m_const_data, "scale_extreme": _m_scale_extreme, "per_channel": _m_per_channel,
    "shared_buffer": _m_shared_buffer, "op_list": _m_op_list, "extras": _m_extras,
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


def _layout_mutant(seed: bytes, records: list, rng: random.Random) -> tuple[str, str, bytes]:
    """One structure of the flatbuffer corrupted in place (its position from the verifier's walk of the seed): a
    table's vtable offset, a vtable's size, table size or one field offset, a reference, a vector length, a
    string's length, terminator or bytes, a union type."""
    what, pos, path = rng.choice(records)
    data = bytearray(seed)
    n = len(data)
    others = [p for _, p, _ in records]
    if what == "table":
        old = struct.unpack_from("<i", data, pos)[0]
        new = rng.choice((old + 2, old - 2, old + 4, old - 4, -n, n, pos + 2, 1 << 30, -(1 << 31), 0,
                          pos - rng.choice(others)))
        struct.pack_into("<i", data, pos, max(-(1 << 31), min((1 << 31) - 1, new)))
        return "layout_table", f"{path}: soffset at {pos} {old} -> {new}", bytes(data)
    if what == "vtable":
        vsize, tsize = struct.unpack_from("<HH", data, pos)
        part = rng.choice(("vtable_size", "table_size", "field", "field", "field"))
        if part == "vtable_size":
            at, old, new = pos, vsize, rng.choice((0, 2, 3, vsize - 2, vsize + 1, vsize + 2, 0xFFFE))
        elif part == "table_size":
            at, old, new = pos + 2, tsize, rng.choice((0, 2, 3, tsize - 1, tsize - 4, tsize + 4, 0xFFFF))
        else:
            if vsize <= 4 or pos + vsize > n:
                return "layout_vtable", f"{path}: vtable at {pos} unchanged", bytes(data)
            at = pos + rng.randrange(4, vsize, 2)
            old = struct.unpack_from("<H", data, at)[0]
            fields = [struct.unpack_from("<H", data, pos + k)[0] for k in range(4, vsize, 2)]
            new = rng.choice((0, 1, 2, 3, old + 1, old - 1, old + 4, tsize, tsize - 1, rng.choice(fields), 0xFFFF))
        struct.pack_into("<H", data, at, new & 0xFFFF)
        return "layout_vtable", f"{path}: {part} at {at} {old} -> {new & 0xFFFF}", bytes(data)
    if what == "ref":
        old = struct.unpack_from("<I", data, pos)[0]
        new = rng.choice((0, old + 1, old + 2, old + 4, old - 4, n - pos, n, 0xFFFFFFFF, 1 << 31,
                          rng.choice(others) - pos, rng.choice(others) - pos))
        struct.pack_into("<I", data, pos, new & 0xFFFFFFFF)
        return "layout_ref", f"{path}: uoffset at {pos} {old} -> {new & 0xFFFFFFFF}", bytes(data)
    if what == "union_type":
        old = data[pos]
        data[pos] = rng.choice((0, 1, 2, 3, old + 1 & 0xFF, 126, 127, 200, 255, rng.randrange(256)))
        return "layout_union", f"{path}: type at {pos} {old} -> {data[pos]}", bytes(data)
    old = struct.unpack_from("<I", data, pos)[0]
    part = rng.choice(("length", "length", "terminator", "bytes")) if what == "string" else "length"
    if part == "length":
        new = rng.choice((0, old + 1, old - 1, old * 2, old + 4, 1 << 30, 0xFFFFFFFF, n))
        struct.pack_into("<I", data, pos, new & 0xFFFFFFFF)
        return f"layout_{what}", f"{path}: length at {pos} {old} -> {new & 0xFFFFFFFF}", bytes(data)
    if part == "terminator" and pos + 4 + old < n:
        data[pos + 4 + old] = rng.choice((ord("x"), 0xFF))
        return "layout_string", f"{path}: terminator at {pos + 4 + old} overwritten", bytes(data)
    if old:
        k = pos + 4 + rng.randrange(old)
        data[k] = rng.choice((0xFF, 0xC3, 0x80, 0xED, 0))
        return "layout_string", f"{path}: byte {k} := {data[k]:#x}", bytes(data)
    return "layout_string", f"{path}: empty string unchanged", bytes(data)


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
            made = _layout_mutant(seed, records, rng)
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
    from tinyq import analyze, tflm, verify
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
    from tinyq import emit, firmware, verify
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
