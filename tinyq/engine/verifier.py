"""A byte-level verifier for .tflite flatbuffers, run before anything else reads the bytes (the reader calls it
first): the flatbuffers Python runtime trusts every offset it follows, so a malformed file would otherwise surface
as a struct or index error, or as a decode error deep inside unpacking.

It walks the buffer from the root as the TFLite schema describes it and checks what flatbuffers' own C++ verifier
checks: the root offset and file identifier; each table's vtable (inside the buffer, size even and >= 4) and table
size; every field's bytes inside its table's declared size and aligned; every reference (uoffset) non-zero, inside
the buffer and aligned (4 bytes; a vector of 8-byte scalars 8); vector lengths times element size inside the buffer;
strings NUL-terminated and UTF-8; union types within their enum and union values pointing to tables. Nesting is
bounded by MAX_DEPTH and the number of tables visited by the buffer size (each table owns a 4-byte header, so only
shared references could exceed it), so no file can make the walk explode. Semantics (is a shape sensible, is an
index in range) stay with the reader.

The schema is one data table, TABLES: the tables tinyq reads, with each field's vtable slot and type as the TFLite
schema (schema.fbs) declares them. The builtin options of the operator unions (and the other union members) are
verified generically from the field layouts of the generated schema module's accessors (`_derived_layouts`);
tests/test_verifier.py checks TABLES against those accessors.

Every finding raises InvalidModelError as `invalid .tflite: <table path>.<field>: <what>`, e.g.
`invalid .tflite: SubGraph[0].tensors[3].name: string of 12 bytes at offset 400 runs past the end of the 380-byte
buffer`.
"""

from __future__ import annotations

import functools
import re
import struct
from pathlib import Path

from ..errors import InvalidModelError
from .schema import schema

FILE_IDENTIFIER = b"TFL3"
MAX_DEPTH = 64
MAX_BYTES = (1 << 31) - 1  # flatbuffers' own limit: offsets are 32-bit and signed where they point back

SCALARS = {"bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "float32": 4,
           "int64": 8, "uint64": 8, "float64": 8}

# The part of the TFLite schema tinyq reads: table -> (field, vtable slot, type). Types: a scalar name, "string",
# "[scalar]" (vector of scalars), "[Table]" (vector of tables), "Table", or "union Enum" (whose "<field>_type" byte
# is the slot before it). Slots are 4 + 2 * (the field's position in schema.fbs).
TABLES: dict[str, tuple[tuple[str, int, str], ...]] = {
    "Model": (("version", 4, "uint32"), ("operator_codes", 6, "[OperatorCode]"), ("subgraphs", 8, "[SubGraph]"),
              ("description", 10, "string"), ("buffers", 12, "[Buffer]"), ("metadata_buffer", 14, "[int32]"),
              ("metadata", 16, "[Metadata]"), ("signature_defs", 18, "[SignatureDef]"),
              ("external_buffer_groups", 20, "[ExternalBufferGroup]"),
              ("external_buffers", 22, "[ExternalBuffer]")),
    "OperatorCode": (("deprecated_builtin_code", 4, "int8"), ("custom_code", 6, "string"), ("version", 8, "int32"),
                     ("builtin_code", 10, "int32")),
    "SubGraph": (("tensors", 4, "[Tensor]"), ("inputs", 6, "[int32]"), ("outputs", 8, "[int32]"),
                 ("operators", 10, "[Operator]"), ("name", 12, "string"), ("debug_metadata_index", 14, "int32")),
    "Tensor": (("shape", 4, "[int32]"), ("type", 6, "int8"), ("buffer", 8, "uint32"), ("name", 10, "string"),
               ("quantization", 12, "QuantizationParameters"), ("is_variable", 14, "bool"),
               ("sparsity", 16, "SparsityParameters"), ("shape_signature", 18, "[int32]"), ("has_rank", 20, "bool"),
               ("variant_tensors", 22, "[VariantSubType]"), ("external_buffer", 24, "uint32")),
    "QuantizationParameters": (("min", 4, "[float32]"), ("max", 6, "[float32]"), ("scale", 8, "[float32]"),
                               ("zero_point", 10, "[int64]"), ("details_type", 12, "uint8"),
                               ("details", 14, "union QuantizationDetails"), ("quantized_dimension", 16, "int32")),
    "CustomQuantization": (("custom", 4, "[uint8]"),),
    "SparsityParameters": (("traversal_order", 4, "[int32]"), ("block_map", 6, "[int32]"),
                           ("dim_metadata", 8, "[DimensionMetadata]")),
    "DimensionMetadata": (("format", 4, "int8"), ("dense_size", 6, "int32"), ("array_segments_type", 8, "uint8"),
                          ("array_segments", 10, "union SparseIndexVector"), ("array_indices_type", 12, "uint8"),
                          ("array_indices", 14, "union SparseIndexVector")),
    "Int32Vector": (("values", 4, "[int32]"),),
    "Uint16Vector": (("values", 4, "[uint16]"),),
    "Uint8Vector": (("values", 4, "[uint8]"),),
    "VariantSubType": (("shape", 4, "[int32]"), ("type", 6, "int8"), ("has_rank", 8, "bool")),
    "Operator": (("opcode_index", 4, "uint32"), ("inputs", 6, "[int32]"), ("outputs", 8, "[int32]"),
                 ("builtin_options_type", 10, "uint8"), ("builtin_options", 12, "union BuiltinOptions"),
                 ("custom_options", 14, "[uint8]"), ("custom_options_format", 16, "int8"),
                 ("mutating_variable_inputs", 18, "[bool]"), ("intermediates", 20, "[int32]"),
                 ("large_custom_options_offset", 22, "uint64"), ("large_custom_options_size", 24, "uint64"),
                 ("builtin_options_2_type", 26, "uint8"), ("builtin_options_2", 28, "union BuiltinOptions2"),
                 ("debug_metadata_index", 30, "int32")),
    "Buffer": (("data", 4, "[uint8]"), ("offset", 6, "uint64"), ("size", 8, "uint64")),
    "Metadata": (("name", 4, "string"), ("buffer", 6, "uint32")),
    "SignatureDef": (("inputs", 4, "[TensorMap]"), ("outputs", 6, "[TensorMap]"), ("signature_key", 8, "string"),
                     ("subgraph_index", 12, "uint32")),
    "TensorMap": (("name", 4, "string"), ("tensor_index", 6, "uint32")),
    "ExternalBufferGroup": (("name", 4, "string"),),
    "ExternalBuffer": (("id", 4, "uint32"), ("group", 6, "uint32"), ("offset", 8, "uint64"),
                       ("packing", 12, "string")),
}
ROOT = "Model"

_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U8 = struct.Struct("<B").unpack_from

# compiled field kinds
_SCALAR, _STRING, _VECTOR, _TABLE, _TABLES, _UNION = range(6)


def _compile(fields) -> tuple[tuple[str, int, int, object, int], ...]:
    """(name, slot, kind, argument, bytes the field occupies in its table) for each field."""
    out = []
    for name, slot, typ in fields:
        if typ in SCALARS:
            out.append((name, slot, _SCALAR, None, SCALARS[typ]))
        elif typ == "string":
            out.append((name, slot, _STRING, None, 4))
        elif typ.startswith("union "):
            out.append((name, slot, _UNION, typ[6:], 4))
        elif typ.startswith("["):
            inner = typ[1:-1]
            out.append((name, slot, _VECTOR, SCALARS[inner], 4) if inner in SCALARS else (name, slot, _TABLES,
                                                                                            inner, 4))
        else:
            out.append((name, slot, _TABLE, typ, 4))
    return tuple(out)


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_FLAGS = {"Bool": "bool", "Int8": "int8", "Uint8": "uint8", "Int16": "int16", "Uint16": "uint16", "Int32": "int32",
          "Uint32": "uint32", "Int64": "int64", "Uint64": "uint64", "Float32": "float32", "Float64": "float64"}


def _accessor_type(code: str) -> str | None:
    """The schema type an accessor of the generated module reads, from its body."""
    obj = re.search(r"obj = (\w+)\(\)", code)
    if "_tab.String(" in code:
        return "string"
    if "_tab.Union(" in code:
        return "union"
    if "_tab.Vector(" in code:
        if "Indirect" in code:
            return f"[{obj.group(1)}]" if obj else None
        flags = re.search(r"number_types\.(\w+)Flags, a", code)
        return f"[{_FLAGS[flags.group(1)]}]" if flags and flags.group(1) in _FLAGS else None
    if "Indirect" in code:
        return obj.group(1) if obj else None
    flags = re.search(r"number_types\.(\w+)Flags, o \+", code)
    return _FLAGS.get(flags.group(1)) if flags else None


@functools.cache
def _derived_layouts() -> dict[str, tuple[tuple[str, int, str], ...]]:
    """Every table of the generated schema module as (field, slot, type), read from its accessors' code (a union
    value's type is left as "union"): the layouts of the union members that TABLES does not list."""
    source = Path(schema.__file__).read_text(encoding="utf-8")
    parts = re.split(r"^class (\w+)\(object\):\n", source, flags=re.M)
    layouts = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        fields = []
        for m in re.finditer(r"^    def (\w+)\(self(?:, j)?\):\n((?:        .*\n|\s*\n)*)", body, flags=re.M):
            accessor, code = m.groups()
            slot = re.search(r"_tab\.Offset\((\d+)\)", code)
            if slot is None or accessor.endswith(("AsNumpy", "Length", "IsNone")):
                continue
            typ = _accessor_type(code)
            fields.append((_CAMEL.sub("_", accessor).lower(), int(slot.group(1)), typ or "unknown"))
        if fields or "_tab" in body:
            layouts[name] = tuple(fields)
    return layouts


@functools.cache
def _unions() -> dict[str, dict[int, str]]:
    return {u: {v: k for k, v in vars(getattr(schema, u)).items() if not k.startswith("_") and v != 0}
            for u in ("QuantizationDetails", "SparseIndexVector", "BuiltinOptions", "BuiltinOptions2")}


@functools.cache
def _layout(table: str):
    if table in TABLES:
        return _compile(TABLES[table])
    fields = []
    for name, slot, typ in _derived_layouts().get(table, ()):
        fields.append((name, slot, "uint8" if typ in ("union", "unknown") else typ))  # generic: bytes in table
    return _compile(fields)


class _Walk:
    """One verification pass; `record` (a list) collects (what, position, path) of every structure it visits, for
    tools that want to find a field's bytes (the fuzzer)."""

    def __init__(self, data: bytes, max_depth: int, max_tables: int | None, record: list | None) -> None:
        self.data, self.n = data, len(data)
        self.max_depth = max_depth
        self.max_tables = self.n // 4 + 16 if max_tables is None else max_tables
        self.tables = 0
        self.strings: set[int] = set()
        self.record = record

    def fail(self, path: str, what: str) -> InvalidModelError:
        return InvalidModelError(f"invalid .tflite: {path}: {what}")

    def ref(self, pos: int, path: str, what: str) -> int:
        """The position a uoffset at `pos` points to: non-zero, inside the buffer, 4-byte aligned."""
        u = _U32(self.data, pos)[0]
        target = pos + u
        if self.record is not None:
            self.record.append(("ref", pos, path))
        if u == 0:
            raise self.fail(path, f"offset 0 at {pos} points at itself, not to a {what}")
        if target + 4 > self.n:
            raise self.fail(path, f"{what} at offset {target} (offset {u} at {pos}) lies past the end of the "
                                  f"{self.n}-byte buffer")
        if target % 4:
            raise self.fail(path, f"{what} at offset {target} is not 4-byte aligned")
        return target

    def vector(self, v: int, elem: int, path: str, what: str = "vector") -> int:
        """The length of the vector at `v` whose elements are `elem` bytes, after checking they fit."""
        count = _U32(self.data, v)[0]
        if self.record is not None:
            self.record.append(("length", v, path))
        if elem > 4 and (v + 4) % elem:
            raise self.fail(path, f"{what} of {elem}-byte elements at offset {v} is not {elem}-byte aligned")
        end = v + 4 + count * elem
        if end > self.n:
            raise self.fail(path, f"{what} of {count} elements of {elem} bytes at offset {v} runs past the end of "
                                  f"the {self.n}-byte buffer")
        return count

    def string(self, s: int, path: str) -> None:
        if s in self.strings:
            return
        count = _U32(self.data, s)[0]
        if self.record is not None:
            self.record.append(("string", s, path))
        end = s + 4 + count
        if end >= self.n:
            raise self.fail(path, f"string of {count} bytes at offset {s} runs past the end of the {self.n}-byte "
                                  f"buffer")
        if self.data[end] != 0:
            raise self.fail(path, f"string of {count} bytes at offset {s} is not NUL-terminated")
        try:
            self.data[s + 4:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(path, f"string of {count} bytes at offset {s} is not valid UTF-8 ({exc.reason} at "
                                  f"byte {exc.start})") from None
        self.strings.add(s)

    def table(self, t: int, table: str, path: str, depth: int) -> None:
        if depth > self.max_depth:
            raise self.fail(path, f"{table} table nested {depth} deep, more than {self.max_depth}")
        self.tables += 1
        if self.tables > self.max_tables:
            raise self.fail(path, f"more than {self.max_tables} tables in a {self.n}-byte buffer (shared or "
                                  f"overlapping references)")
        data, n = self.data, self.n
        vt = t - _I32(data, t)[0]
        if self.record is not None:
            self.record.append(("table", t, path))
        if vt < 0 or vt + 4 > n:
            raise self.fail(path, f"{table} table at offset {t}: its vtable at offset {vt} lies outside the "
                                  f"{n}-byte buffer")
        if vt % 2:
            raise self.fail(path, f"{table} table at offset {t}: its vtable at offset {vt} is not 2-byte aligned")
        vsize, tsize = _U16(data, vt)[0], _U16(data, vt + 2)[0]
        if self.record is not None:
            self.record.append(("vtable", vt, path))
        if vsize < 4 or vsize % 2:
            raise self.fail(path, f"{table} table at offset {t}: vtable size {vsize} must be even and at least 4")
        if vt + vsize > n:
            raise self.fail(path, f"{table} table at offset {t}: vtable of {vsize} bytes at offset {vt} runs past "
                                  f"the end of the {n}-byte buffer")
        if tsize < 4 or t + tsize > n:
            raise self.fail(path, f"{table} table at offset {t}: table size {tsize} must be at least 4 and the "
                                  f"table inside the {n}-byte buffer")
        layout = _layout(table)
        for slot in range(4, vsize, 2):
            fo = _U16(data, vt + slot)[0]
            if fo and not 4 <= fo < tsize:
                name = next((f[0] for f in layout if f[1] == slot), None)
                raise self.fail(f"{path}.{name}" if name else path, f"{table} table at offset {t}: vtable slot "
                                f"{slot} gives field offset {fo}, outside the table's {tsize} bytes")
        for name, slot, kind, arg, size in layout:
            if slot >= vsize:
                continue
            fo = _U16(data, vt + slot)[0]
            if not fo:
                continue
            where = f"{path}.{name}"
            if fo + size > tsize:
                raise self.fail(where, f"field of {size} bytes at table offset {fo} runs past the table's {tsize} "
                                       f"bytes")
            pos = t + fo
            if pos % size:
                raise self.fail(where, f"{size}-byte field at offset {pos} is not {size}-byte aligned")
            if kind == _SCALAR:
                continue
            if kind == _UNION:
                self.union(t, vt, vsize, slot, pos, arg, where, depth)
                continue
            what = {_STRING: "string", _VECTOR: "vector", _TABLE: f"{arg} table", _TABLES: "vector"}[kind]
            target = self.ref(pos, where, what)
            if kind == _STRING:
                self.string(target, where)
            elif kind == _VECTOR:
                self.vector(target, arg, where)
            elif kind == _TABLE:
                self.table(target, arg, where, depth + 1)
            else:
                count = self.vector(target, 4, where, f"vector of {arg} tables")
                for i in range(count):
                    item = f"{arg}[{i}]" if depth == 0 else f"{where}[{i}]"
                    self.table(self.ref(target + 4 + 4 * i, item, f"{arg} table"), arg, item, depth + 1)

    def union(self, t: int, vt: int, vsize: int, slot: int, pos: int, enum: str, where: str, depth: int) -> None:
        """A union value at `pos` whose type byte is the field in the slot before it."""
        tfo = _U16(self.data, vt + slot - 2)[0] if slot - 2 < vsize else 0
        kind = _U8(self.data, t + tfo)[0] if tfo else 0
        if self.record is not None and tfo:
            self.record.append(("union_type", t + tfo, f"{where}_type"))
        if kind == 0:
            return  # NONE: readers ignore the value
        members = _unions()[enum]
        if kind not in members:
            raise self.fail(f"{where}_type", f"union type {kind} is not a member of {enum} (1..{max(members)})")
        member = members[kind]
        self.table(self.ref(pos, where, f"{member} table"), member, f"{where}({member})", depth + 1)


def _walk_from_root(w: _Walk) -> None:
    """The buffer's size and file identifier, then every table reachable from the root."""
    n = w.n
    if n < 8:
        raise w.fail(ROOT, f"a {n}-byte buffer is too short for a root offset and a file identifier")
    if n > MAX_BYTES:
        raise w.fail(ROOT, f"a {n}-byte buffer is larger than a flatbuffer can address ({MAX_BYTES} bytes)")
    if bytes(w.data[4:8]) != FILE_IDENTIFIER:
        raise w.fail(ROOT, f"file identifier {bytes(w.data[4:8])!r}, expected {FILE_IDENTIFIER!r}")
    root = w.ref(0, ROOT, "root table")
    if root < 8:
        raise w.fail(ROOT, f"root table at offset {root} overlaps the file identifier")
    w.table(root, ROOT, ROOT, 0)


def verify_flatbuffer(data: bytes, max_depth: int = MAX_DEPTH, max_tables: int | None = None) -> None:
    """Raise InvalidModelError naming the table and field when `data` is not a well-formed TFLite flatbuffer.
    `max_tables` defaults to a quarter of the buffer size (plus a little)."""
    _walk_from_root(_Walk(bytes(data), max_depth, max_tables, None))


def structure(data: bytes) -> list[tuple[str, int, str]]:
    """(what, position, path) of every structure of a valid flatbuffer: 'table' and 'vtable' starts, 'ref'
    (uoffset) and vector 'length' and 'string' positions, 'union_type' bytes. For tools that corrupt one field."""
    record: list = []
    _walk_from_root(_Walk(bytes(data), MAX_DEPTH, None, record))
    return record
