"""Structure-aware mutations for tests/tflite_fuzz.py: field-level mutations of a .tflite's object API (ModelT)
beyond the basic ones there (any options field, constant data at its edges, extreme scales, per-channel
quantization, shared buffers, op list edits, the schema's fields tinyq does not use), and corruptions of one
flatbuffer structure in place (a vtable, a reference, a vector length, a string, a union type)."""

from __future__ import annotations

import copy
import random
import struct

import numpy as np

from tinyq.engine.schema import schema

INT_EDGES = (0, 1, -1, 2, -2, 3, 7, 127, 128, 255, 256, 1 << 15, 1 << 16, (1 << 16) + 1, (1 << 31) - 1,
             -(1 << 31), -14)
FLOAT_EDGES = (0.0, -0.0, -1.0, float("nan"), float("inf"), float("-inf"), 1e-45, 1e-38, 3.4e38, 1.0, 1 / 256, 1e-9)


def _tensors(m):
    return m.subgraphs[0].tensors


def _ops(m):
    return m.subgraphs[0].operators


def m_options_any(m, rng):
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


def m_const_data(m, rng):
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


def m_scale_extreme(m, rng):
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


def m_per_channel(m, rng):
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


def m_shared_buffer(m, rng):
    """A tensor pointed at another tensor's constant data (or an activation at a constant's buffer)."""
    consts = [t.buffer for t in _tensors(m) if 0 < t.buffer < len(m.buffers) and m.buffers[t.buffer].data is not None
              and len(m.buffers[t.buffer].data)]
    if not consts:
        return None
    t = rng.choice(_tensors(m))
    t.buffer = rng.choice(consts)
    return f"tensor {t.name!r} buffer := {t.buffer}"


def m_op_list(m, rng):
    """An op removed, duplicated or moved to the end of the list."""
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


def m_extras(m, rng):
    """The schema's fields tinyq does not use, set: sparsity, variant tensors, shape signature, data outside the
    flatbuffer, custom options and code (UTF-8 or not), description, metadata, signature defs, quantization
    details, variables, intermediates."""
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


def layout_mutant(seed: bytes, records: list, rng: random.Random) -> tuple[str, str, bytes]:
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


_LAYOUT_OPS = {schema.BuiltinOperator.TRANSPOSE, schema.BuiltinOperator.SLICE, schema.BuiltinOperator.STRIDED_SLICE,
               schema.BuiltinOperator.SPLIT, schema.BuiltinOperator.SPLIT_V, schema.BuiltinOperator.TILE,
               schema.BuiltinOperator.GATHER}


def m_layout_operands(m, rng):
    """A layout op's integer operand (perm, begin/end/strides, size, indices, axis, multiples, size_splits) or
    STRIDED_SLICE's masks moved to an edge: a repeated or out-of-range axis, a negative or past-the-end index, a
    zero stride, every mask bit; the reader and the lowering must refuse or run it, never crash."""
    ops = [op for op in _ops(m) if op.opcodeIndex is not None and op.opcodeIndex < len(m.operatorCodes)
           and m.operatorCodes[op.opcodeIndex].builtinCode in _LAYOUT_OPS]
    if not ops:
        return None
    op = rng.choice(ops)
    tensors = _tensors(m)
    if isinstance(op.builtinOptions, schema.StridedSliceOptionsT) and rng.random() < 0.3:
        field = rng.choice(("beginMask", "endMask", "shrinkAxisMask", "ellipsisMask", "newAxisMask"))
        value = rng.choice((0, 1, 2, 5, 15, 31, -1, rng.randrange(16)))
        setattr(op.builtinOptions, field, value)
        return f"StridedSliceOptions.{field}={value}"
    consts = [t for t in op.inputs if 0 <= t < len(tensors) and tensors[t].type == schema.TensorType.INT32
              and 0 < tensors[t].buffer < len(m.buffers) and m.buffers[tensors[t].buffer].data is not None]
    if not consts:
        return None
    t = rng.choice(consts)
    values = np.frombuffer(bytes(bytearray(m.buffers[tensors[t].buffer].data)), np.int32).copy()
    if not values.size:
        return None
    k = rng.randrange(values.size)
    values[k] = rng.choice((0, 1, -1, 2, -2, 3, 4, 5, 6, 7, -5, -8, 8, 64, (1 << 31) - 1, -(1 << 31),
                            int(values[k]) + 1, int(values[k]) - 1, int(values[(k + 1) % values.size])))
    m.buffers[tensors[t].buffer].data = np.frombuffer(values.tobytes(), np.uint8)
    return f"{tensors[t].name}[{k}]={int(values[k])}"
