"""The one gate for model bytes: parse a .tflite and validate everything before anything else sees it, handing
out a Graph whose invariants its docstring lists. The per-op preconditions come from the op table (engine/ops)."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import flatbuffers
import numpy as np

from ..errors import InvalidModelError
from .graph import (DTYPES, INT_RANGES, MAX_DIM, MAX_RANK, MAX_TENSOR_BYTES, MAX_WINDOW, NUMPY_TYPES, SCALE_RANGE,
                    WINDOW_FIELD_PREFIXES, Graph, NoOptions, Operator, Tensor)
from .ops import definition
from .ops.base import OpSpec
from .schema import op_name, schema
from .verifier import verify_flatbuffer


def is_tflite(data: bytes) -> bool:
    """True when the bytes carry the TFLite flatbuffer file identifier ('TFL3' at offset 4), whatever the file name."""
    return len(data) >= 8 and bytes(data[4:8]) == b"TFL3"


def _file_kind(data: bytes) -> str:
    """What the leading bytes say a non-.tflite file is, for the error message."""
    head = bytes(data[:8])
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (a .keras model?)"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "an HDF5 file (a .h5 Keras model?)"
    if not head:
        return "empty"
    return f"file identifier {head[4:8]!r}, expected b'TFL3'"




def _fail(what: str) -> InvalidModelError:
    return InvalidModelError(f"invalid .tflite: {what}")


class _Gate:
    """The reader's checks, in the order a Graph is built: buffers and tensors, then operators, then the graph."""

    def __init__(self, model) -> None:
        self.model = model
        self.buffers = model.buffers or []
        self.schema = schema

    fail = staticmethod(_fail)

    def tensor(self, i: int, t) -> tuple[Tensor, bool]:
        """Tensor i and whether it is a variable; raises naming the tensor and field at fault."""
        try:
            name = (t.name or b"").decode("utf-8") if isinstance(t.name, (bytes, bytearray)) else str(t.name or "")
        except UnicodeDecodeError as exc:
            raise self.fail(f"tensor #{i}: field name is not UTF-8 ({exc.reason} at byte {exc.start})") from None
        where = f"tensor #{i} {name!r}"
        if t.type not in DTYPES:
            names = {v: k for k, v in vars(self.schema.TensorType).items() if not k.startswith("_")}
            raise self.fail(f"{where}: field type = {t.type} ({names.get(t.type, 'not a TensorType')}) is not "
                            f"supported (supported: {', '.join(DTYPES.values())})")
        dtype = DTYPES[t.type]
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        if len(shape) > MAX_RANK or any(not 1 <= d <= MAX_DIM for d in shape):
            raise self.fail(f"{where}: field shape = {list(shape)}: rank must be <= {MAX_RANK} and every "
                            f"dimension in [1, {MAX_DIM}]")
        itemsize = np.dtype(NUMPY_TYPES[dtype]).itemsize
        size = math.prod(shape)
        if size * itemsize > MAX_TENSOR_BYTES:
            raise self.fail(f"{where}: shape {list(shape)} of {dtype} is {size * itemsize} bytes, more than "
                            f"{MAX_TENSOR_BYTES}")
        if t.sparsity is not None:
            raise self.fail(f"{where}: sparse tensors are not supported")
        scales, zps, qdim = self.quantization(where, t.quantization, dtype, shape)
        if not 0 <= t.buffer < len(self.buffers):
            raise self.fail(f"{where}: field buffer = {t.buffer} is outside the model's {len(self.buffers)} buffers")
        buf = self.buffers[t.buffer]
        const = None
        if buf is not None and (getattr(buf, "offset", 0) or getattr(buf, "size", 0)):
            raise self.fail(f"{where}: data stored outside the flatbuffer (buffer {t.buffer} offset "
                            f"{buf.offset}) is not supported")
        if buf is not None and buf.data is not None and len(buf.data) > 0:
            if len(buf.data) != size * itemsize:
                raise self.fail(f"{where}: buffer {t.buffer} holds {len(buf.data)} bytes; shape {list(shape)} of "
                                f"{dtype} needs {size * itemsize}")
            raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
            const = np.frombuffer(raw, dtype=NUMPY_TYPES[dtype]).reshape(shape)
        return Tensor(i, name, shape, dtype, scales, zps, qdim, const), bool(t.isVariable)

    def quantization(self, where: str, q, dtype: str, shape: tuple[int, ...]):
        if q is None:
            return (), (), 0
        scales = tuple(float(s) for s in (q.scale if q.scale is not None else []))
        zps = tuple(int(z) for z in (q.zeroPoint if q.zeroPoint is not None else []))
        qdim = int(q.quantizedDimension)
        if not scales and not zps:
            return (), (), qdim
        if len(zps) != len(scales):
            raise self.fail(f"{where}: field quantization has {len(scales)} scales and {len(zps)} zero points")
        bad = [s for s in scales if not (math.isfinite(s) and SCALE_RANGE[0] <= s <= SCALE_RANGE[1])]
        if bad:
            raise self.fail(f"{where}: field quantization.scale = {bad[0]!r}: scales must be finite and in "
                            f"[{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}]")
        lo, hi = INT_RANGES.get(dtype, (-(1 << 63), (1 << 63) - 1))
        bad_zp = [z for z in zps if not lo <= z <= hi]
        if bad_zp:
            raise self.fail(f"{where}: field quantization.zero_point = {bad_zp[0]} is outside {dtype}'s "
                            f"range [{lo}, {hi}]")
        if len(scales) > 1 and not (0 <= qdim < len(shape) and shape[qdim] == len(scales)):
            raise self.fail(f"{where}: field quantization.quantized_dimension = {qdim}: {len(scales)} scales do "
                            f"not match that axis of shape {list(shape)}")
        if not 0 <= qdim < max(1, len(shape)):
            raise self.fail(f"{where}: field quantization.quantized_dimension = {qdim} is outside rank "
                            f"{len(shape)}")
        return scales, zps, qdim

    def operator(self, i: int, o, tensors: list[Tensor]) -> Operator:
        codes = self.model.operatorCodes or []
        if not 0 <= o.opcodeIndex < len(codes):
            raise self.fail(f"op #{i}: field opcode_index = {o.opcodeIndex} is outside the model's {len(codes)} "
                            f"operator codes")
        oc = codes[o.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        name = op_name(code)
        if name.startswith("BUILTIN_"):
            raise self.fail(f"op #{i}: operator code {code} is not a BuiltinOperator of the TFLite schema")
        where = f"op #{i} {name}"
        if int(oc.version) < 1:
            raise self.fail(f"{where}: field version = {oc.version} must be >= 1")
        inputs = tuple(int(x) for x in (o.inputs if o.inputs is not None else []))
        outputs = tuple(int(x) for x in (o.outputs if o.outputs is not None else []))
        n = len(tensors)
        for role, ids, lowest in (("inputs", inputs, -1), ("outputs", outputs, 0)):
            for pos, t in enumerate(ids):
                if not lowest <= t < n:
                    raise self.fail(f"{where}: field {role}[{pos}] = {t} is outside [{lowest}, {n}) "
                                    f"({n} tensors{', -1 for an absent optional input' if lowest < 0 else ''})")
        if not outputs:
            raise self.fail(f"{where}: field outputs is empty")
        if len(set(outputs)) != len(outputs):
            raise self.fail(f"{where}: field outputs = {list(outputs)} names a tensor twice")
        where = f"op #{i} {name} (output {tensors[outputs[0]].name!r})"
        d = definition(code)
        spec = d.spec if d is not None else None
        raw = o.builtinOptions
        expected = getattr(self.schema, spec.options) if spec is not None and spec.options else None
        if raw is not None and expected is not None and not isinstance(raw, expected):
            raise self.fail(f"{where}: field builtin_options is {type(raw).__name__.removesuffix('T')}, expected "
                            f"{expected.__name__.removesuffix('T')}")
        if raw is None and spec is not None and spec.options_required:
            raise self.fail(f"{where}: field builtin_options is missing (expected "
                            f"{expected.__name__.removesuffix('T')})")
        if raw is None and expected is not None:
            raw = expected()
        try:
            if d is None:
                options = raw  # an op the C engine does not know keeps the schema's options object
            elif d.options is None or raw is None:
                options = NoOptions()
            else:
                options = d.options(raw)
        except (AttributeError, TypeError, ValueError) as exc:
            raise self.fail(f"{where}: options {type(raw).__name__.removesuffix('T')}: "
                            f"{exc}") from None
        if dataclasses.is_dataclass(options):
            for f in dataclasses.fields(options):
                value = getattr(options, f.name)
                if f.name.startswith(WINDOW_FIELD_PREFIXES) and not 1 <= value <= MAX_WINDOW:
                    raise self.fail(f"{where}: field {f.name} = {value} is outside [1, {MAX_WINDOW}]")
        return Operator(i, code, name, int(oc.version), inputs, outputs, options)

    def io(self, field: str, ids, n: int) -> tuple[int, ...]:
        ids = tuple(int(x) for x in (ids if ids is not None else []))
        if not ids:
            raise self.fail(f"subgraph field {field} is empty")
        for pos, t in enumerate(ids):
            if not 0 <= t < n:
                raise self.fail(f"subgraph field {field}[{pos}] = {t} is outside [0, {n}) ({n} tensors)")
        if len(set(ids)) != len(ids):
            raise self.fail(f"subgraph field {field} = {list(ids)} names a tensor twice")
        return ids


def _op_preconditions(g: Graph, op: Operator, spec: OpSpec) -> None:
    """The op's operand counts, ranks, dtypes and its family's shape and option checks."""
    where = g.where(op)
    lo, hi = spec.inputs
    out_lo, out_hi = (spec.outputs, spec.outputs) if isinstance(spec.outputs, int) else spec.outputs
    if not lo <= len(op.inputs) <= hi or not out_lo <= len(op.outputs) <= out_hi:
        raise _fail(f"{where}: has {len(op.inputs)} inputs and {len(op.outputs)} outputs, expected "
                        f"{lo}{'' if lo == hi else f'..{hi}'} and {out_lo}{'' if out_lo == out_hi else f'..{out_hi}'}")
    if any(t < 0 for t in op.inputs[:lo]):
        raise _fail(f"{where}: a required input is absent (-1): {list(op.inputs)}")
    for pos, ranks in enumerate(spec.input_ranks):
        if pos < len(op.inputs) and op.inputs[pos] >= 0 and ranks is not None:
            t = g.tensors[op.inputs[pos]]
            if len(t.shape) not in ranks:
                raise _fail(f"{where}: input {pos} tensor {t.name!r} has shape {list(t.shape)}, expected "
                                f"rank {' or '.join(map(str, ranks))}")
    out = g.tensors[op.outputs[0]]
    if spec.output_ranks is not None and len(out.shape) not in spec.output_ranks:
        raise _fail(f"{where}: output tensor {out.name!r} has shape {list(out.shape)}, expected rank "
                        f"{' or '.join(map(str, spec.output_ranks))}")
    for pos in spec.same_dtype:
        t = g.tensors[op.inputs[pos]]
        if t.dtype != out.dtype:
            raise _fail(f"{where}: input {pos} tensor {t.name!r} is {t.dtype}, output {out.name!r} is "
                            f"{out.dtype}")
    problem = spec.check(g, op) if spec.check is not None else None
    if problem:
        raise _fail(f"{where}: {problem}")

def _dataflow(g: Graph, variables: set[int]) -> None:
    """Ops in execution order: every activation an op reads exists by then, every tensor is written once."""
    written: dict[int, str] = {t: "a graph input" for t in g.inputs}
    for op in g.operators:
        for pos, t in enumerate(op.inputs):
            if t >= 0 and t not in written and not g.tensors[t].is_constant and t not in variables:
                raise _fail(f"{g.where(op)}: input {pos} tensor {g.tensors[t].name!r} (#{t}) is read before "
                                f"any op writes it (ops must be in execution order)")
        for t in op.outputs:
            if t in written or g.tensors[t].is_constant:
                by = written.get(t, "constant data")
                raise _fail(f"{g.where(op)}: output tensor {g.tensors[t].name!r} (#{t}) is already "
                                f"{by if by.startswith(('a ', 'constant')) else 'written by ' + by}")
            written[t] = f"op #{op.index} {op.name}"
    for pos, t in enumerate(g.outputs):
        if t not in written:
            raise _fail(f"graph output {pos} tensor {g.tensors[t].name!r} (#{t}) is never written by an op")


def _string_bytes(obj, slot: int) -> int:
    """Length of a string field read from its flatbuffer header, without copying the string."""
    o = obj._tab.Offset(slot)  # noqa: SLF001 - the generated accessors would copy the whole string
    if o == 0:
        return 0
    start = obj._tab.Indirect(o + obj._tab.Pos)  # noqa: SLF001
    return int(flatbuffers.encode.Get(flatbuffers.packer.uoffset, obj._tab.Bytes, start))  # noqa: SLF001


def check_unpack_budget(data: bytes) -> None:
    """Bound what unpacking will build before it builds it: tables and strings the object API copies. Flatbuffers
    may share one table or string among many references, so a small file could otherwise unpack into gigabytes.
    Numeric vectors are numpy views and cost nothing."""
    budget = 16 * len(data) + (1 << 20)
    spent = 0

    def spend(n: int, what: str) -> int:
        nonlocal spent
        spent += n
        if spent > budget:
            raise InvalidModelError(f"invalid .tflite: {what} would unpack into more than {budget} bytes from a "
                                    f"{len(data)}-byte file (shared or overlapping tables)")
        return n

    m = schema.Model.GetRootAs(data, 0)
    spend(_string_bytes(m, 10), "field description")
    for i in range(spend(m.OperatorCodesLength(), "operator_codes")):
        spend(_string_bytes(m.OperatorCodes(i), 6), f"operator_codes[{i}].custom_code")
    spend(m.BuffersLength(), "buffers")
    for i in range(spend(m.MetadataLength(), "metadata")):
        spend(_string_bytes(m.Metadata(i), 4), f"metadata[{i}].name")
    for i in range(spend(m.SignatureDefsLength(), "signature_defs")):
        sig = m.SignatureDefs(i)
        spend(_string_bytes(sig, 8), f"signature_defs[{i}].signature_key")
        for field, n, get in (("inputs", sig.InputsLength(), sig.Inputs),
                              ("outputs", sig.OutputsLength(), sig.Outputs)):
            for j in range(spend(n, f"signature_defs[{i}].{field}")):
                spend(_string_bytes(get(j), 4), f"signature_defs[{i}].{field}[{j}].name")
    for g in range(spend(m.SubgraphsLength(), "subgraphs")):
        sg = m.Subgraphs(g)
        spend(_string_bytes(sg, 12), f"subgraphs[{g}].name")
        spend(sg.OperatorsLength(), f"subgraphs[{g}].operators")
        for i in range(spend(sg.TensorsLength(), f"subgraphs[{g}].tensors")):
            t = sg.Tensors(i)
            spend(_string_bytes(t, 10), f"tensor #{i} name")
            if t.Sparsity() is not None or t.VariantTensorsLength():
                raise InvalidModelError(f"invalid .tflite: tensor #{i}: sparse and variant tensors are not supported")


def read_graph(tflite: bytes) -> Graph:
    """Parse and validate a .tflite (the one gate for model bytes); anything malformed raises InvalidModelError
    naming the op, tensor and field at fault. The Graph returned holds the invariants its docstring lists."""
    data = bytes(tflite)
    if not is_tflite(data):
        raise InvalidModelError(f"not a .tflite flatbuffer ({len(data)} bytes): {_file_kind(data)}")
    verify_flatbuffer(data)  # every offset, length and string checked before the flatbuffers runtime follows one
    try:
        return _read(data)
    except UnicodeError as exc:  # the verifier checked the schema's strings; anything else undecodable is the file's
        raise InvalidModelError(f"invalid .tflite: undecodable text ({exc})") from None


def _read(data: bytes) -> Graph:
    try:
        check_unpack_budget(data)
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except InvalidModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - the flatbuffer runtime raises struct/index errors on bad data
        raise InvalidModelError(f"corrupt or truncated .tflite ({len(data)} bytes): {type(exc).__name__}: "
                                f"{exc}") from None
    gate = _Gate(model)
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise InvalidModelError(f".tflite has {len(model.subgraphs or [])} subgraphs; tinyq supports exactly one")
    sg = model.subgraphs[0]
    read = [gate.tensor(i, t) for i, t in enumerate(sg.tensors or [])]
    tensors = [t for t, _ in read]
    variables = {t.index for t, var in read if var}
    inputs = gate.io("inputs", sg.inputs, len(tensors))
    outputs = gate.io("outputs", sg.outputs, len(tensors))
    ops = tuple(gate.operator(i, o, tensors) for i, o in enumerate(sg.operators or []))
    graph = Graph(tuple(tensors), ops, inputs, outputs, hashlib.sha256(data).hexdigest())
    for op in ops:
        d = definition(op.code)
        if d is not None and d.spec is not None:
            _op_preconditions(graph, op, d.spec)
    _dataflow(graph, variables)
    return graph