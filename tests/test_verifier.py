"""The byte-level flatbuffer verifier (tinyq/engine/verifier.py), fast and without TensorFlow: every model of
tests/tflite_build.py passes, and each check fires on bytes corrupted in exactly the place it guards, naming the
table and field. Positions are found with the generated schema module's accessors, not with the verifier."""

from __future__ import annotations

import struct

import flatbuffers
import pytest
import tflite_build as tb
from tflite_build import schema

from tinyq.engine import read_graph, reader, verifier
from tinyq.engine.verifier import verify_flatbuffer
from tinyq.errors import InvalidModelError

pytestmark = pytest.mark.fast


def _model(data):
    return schema.Model.GetRootAs(data, 0)


def _subgraph(data):
    return _model(data).Subgraphs(0)


def _tensor(data, i):
    return _subgraph(data).Tensors(i)


def _vtable(obj) -> int:
    return obj._tab.Pos - struct.unpack_from("<i", obj._tab.Bytes, obj._tab.Pos)[0]


def _field(obj, slot) -> int:
    """Absolute position of a present field."""
    o = obj._tab.Offset(slot)
    assert o, slot
    return obj._tab.Pos + o


def _target(obj, slot) -> int:
    """Where the reference in a field points (a vector's or string's length, a table's start)."""
    return obj._tab.Indirect(_field(obj, slot))


def _put(data, fmt, pos, value) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, pos, value)
    return bytes(out)


def _rejects(data, message, *more):
    with pytest.raises(InvalidModelError) as info:
        verify_flatbuffer(data)
    text = str(info.value)
    assert text.startswith("invalid .tflite: " + message), text
    for words in more:
        assert words in text, text
    return text


CHAIN = tb.case("chain")
N = len(CHAIN)


@pytest.mark.parametrize("case", sorted(tb.CASES))
def test_every_built_model_passes(case):
    verify_flatbuffer(tb.case(case))
    kinds = {what for what, _, _ in verifier.structure(tb.case(case))}
    assert kinds >= {"table", "vtable", "ref", "length", "string"}


def test_the_schema_table_matches_the_generated_accessors():
    """Every field of TABLES has the slot and type the generated module's accessor reads, and no field of those
    tables is missing; every table and union member the schema module has gets a layout."""
    derived = verifier._derived_layouts()
    for table, fields in verifier.TABLES.items():
        want = {slot: (name.replace("_", ""), "union" if typ.startswith("union") else typ)
                for name, slot, typ in fields}
        got = {slot: (name.replace("_", ""), typ) for name, slot, typ in derived[table]}
        assert want == got, table
    assert not [(t, f) for t, fs in derived.items() for f in fs if f[2] == "unknown"]
    for enum, members in verifier._unions().items():
        assert all(m in derived for m in members.values()), enum


# ---- the root ----

def test_short_buffer_and_file_identifier():
    _rejects(b"\x08\0\0\0TF", "Model: a 6-byte buffer is too short")
    _rejects(CHAIN[:4] + b"TFL2" + CHAIN[8:], "Model: file identifier b'TFL2', expected b'TFL3'")


def test_root_offset_past_the_end_misaligned_or_zero():
    _rejects(_put(CHAIN, "<I", 0, N + 16), f"Model: root table at offset {N + 16} (offset {N + 16} at 0) lies past "
                                           f"the end of the {N}-byte buffer")
    _rejects(_put(CHAIN, "<I", 0, 14), "Model: root table at offset 14 is not 4-byte aligned")
    _rejects(_put(CHAIN, "<I", 0, 0), "Model: offset 0 at 0 points at itself")
    _rejects(_put(CHAIN, "<I", 0, 4), "Model: root table at offset 4 overlaps the file identifier")


# ---- tables and vtables ----

def _op0(data=CHAIN):
    """The chain's first operator: the only table using its vtable (tables with equal vtables share one)."""
    return _subgraph(data).Operators(0)


def test_vtable_offset_outside_the_buffer():
    t = _op0()._tab.Pos
    where = f"SubGraph[0].operators[0]: Operator table at offset {t}: its vtable at offset"
    _rejects(_put(CHAIN, "<i", t, -(N + 8)), f"{where} {t + N + 8} lies outside the {N}-byte buffer")
    _rejects(_put(CHAIN, "<i", t, t + 4), f"{where} -4 lies outside")


def test_vtable_misaligned():
    t, vt = _op0()._tab.Pos, _vtable(_op0())
    _rejects(_put(CHAIN, "<i", t, t - vt + 1), f"SubGraph[0].operators[0]: Operator table at offset {t}: its vtable "
                                               f"at offset {vt - 1} is not 2-byte aligned")


@pytest.mark.parametrize("vsize, words", [(7, "vtable size 7 must be even and at least 4"),
                                          (2, "vtable size 2 must be even and at least 4"),
                                          (0xFFFE, "vtable of 65534 bytes at offset")])
def test_vtable_size(vsize, words):
    op = _op0()
    _rejects(_put(CHAIN, "<H", _vtable(op), vsize), f"SubGraph[0].operators[0]: Operator table at offset "
                                                    f"{op._tab.Pos}: {words}")


@pytest.mark.parametrize("tsize", [0xFFFF, 2])
def test_table_size(tsize):
    op = _op0()
    _rejects(_put(CHAIN, "<H", _vtable(op) + 2, tsize),
             f"SubGraph[0].operators[0]: Operator table at offset {op._tab.Pos}: table size {tsize} must be at least 4")


def test_field_offset_outside_the_table():
    op = _op0()
    vt = _vtable(op)
    tsize = struct.unpack_from("<H", CHAIN, vt + 2)[0]
    _rejects(_put(CHAIN, "<H", vt + 6, tsize), f"SubGraph[0].operators[0].inputs: Operator table at offset "
                                               f"{op._tab.Pos}: vtable slot 6 gives field offset {tsize}, outside the "
                                               f"table's {tsize} bytes")
    _rejects(_put(CHAIN, "<H", vt + 6, 2), "SubGraph[0].operators[0].inputs: Operator table", "gives field offset 2")


def test_field_bytes_past_the_table_and_misaligned():
    m = _model(CHAIN)
    vt = _vtable(m)
    tsize = struct.unpack_from("<H", CHAIN, vt + 2)[0]
    _rejects(_put(CHAIN, "<H", vt + 8, tsize - 2), "Model.subgraphs: field of 4 bytes at table offset "
                                                   f"{tsize - 2} runs past the table's {tsize} bytes")
    fo = m._tab.Offset(8)
    _rejects(_put(CHAIN, "<H", vt + 8, fo + 1), f"Model.subgraphs: 4-byte field at offset {m._tab.Pos + fo + 1} is "
                                                "not 4-byte aligned")


# ---- references, vectors, strings ----

def test_reference_past_the_end_misaligned_or_zero():
    t = _tensor(CHAIN, 3)
    pos = _field(t, 10)
    _rejects(_put(CHAIN, "<I", pos, N), f"SubGraph[0].tensors[3].name: string at offset {pos + N} (offset {N} at "
                                        f"{pos}) lies past the end of the {N}-byte buffer")
    old = struct.unpack_from("<I", CHAIN, pos)[0]
    _rejects(_put(CHAIN, "<I", pos, old + 2), f"SubGraph[0].tensors[3].name: string at offset {pos + old + 2} is not "
                                              "4-byte aligned")
    _rejects(_put(CHAIN, "<I", pos, 0), f"SubGraph[0].tensors[3].name: offset 0 at {pos} points at itself")


def test_table_reference_in_a_vector_past_the_end():
    sg = _subgraph(CHAIN)
    element = _target(sg, 4) + 4 + 4 * 3
    _rejects(_put(CHAIN, "<I", element, N), "SubGraph[0].tensors[3]: Tensor table at offset", "lies past the end")


def test_vector_length_past_the_end():
    t = _tensor(CHAIN, 3)
    v = _target(t, 4)
    _rejects(_put(CHAIN, "<I", v, 1 << 30), f"SubGraph[0].tensors[3].shape: vector of {1 << 30} elements of 4 bytes "
                                            f"at offset {v} runs past the end of the {N}-byte buffer")
    buffers = _model(CHAIN).Buffers
    k = next(k for k in range(_model(CHAIN).BuffersLength()) if buffers(k).DataLength())
    data = _target(buffers(k), 4)
    _rejects(_put(CHAIN, "<I", data, N), f"Buffer[{k}].data: vector of {N} elements of 1 bytes")


def test_int64_vector_must_be_8_byte_aligned():
    t = _tensor(CHAIN, 0)
    q = t.Quantization()
    pos = _field(q, 10)
    v = _target(q, 10)
    assert (v + 4) % 8 == 0
    _rejects(_put(CHAIN, "<I", pos, v - 4 - pos), f"SubGraph[0].tensors[0].quantization.zero_point: vector of 8-byte "
                                                  f"elements at offset {v - 4} is not 8-byte aligned")


def test_string_past_the_end_unterminated_and_not_utf8():
    t = _tensor(CHAIN, 3)
    s = _target(t, 10)
    length = struct.unpack_from("<I", CHAIN, s)[0]
    _rejects(_put(CHAIN, "<I", s, N), f"SubGraph[0].tensors[3].name: string of {N} bytes at offset {s} runs past the "
                                      f"end of the {N}-byte buffer")
    _rejects(_put(CHAIN, "<B", s + 4 + length, ord("x")), f"SubGraph[0].tensors[3].name: string of {length} bytes "
                                                          f"at offset {s} is not NUL-terminated")
    _rejects(_put(CHAIN, "<B", s + 5, 0xFF), f"SubGraph[0].tensors[3].name: string of {length} bytes at offset {s} "
                                             "is not valid UTF-8 (invalid start byte at byte 1)")


def test_invalid_utf8_tensor_name_gets_the_verifiers_message_from_the_reader():
    model = tb.unpack(tb.case("conv_same_s1"))
    model.subgraphs[0].tensors[1].name = b"bad\xffname"
    with pytest.raises(InvalidModelError, match=r"^invalid \.tflite: SubGraph\[0\]\.tensors\[1\]\.name: string of 8 "
                                                r"bytes at offset \d+ is not valid UTF-8 \(invalid start byte at "
                                                r"byte 3\)$"):
        read_graph(tb.pack(model))


def test_any_other_decode_error_in_the_reader_is_an_invalid_model(monkeypatch):
    def undecodable(self, i, t):
        return b"\xff".decode("utf-8")
    monkeypatch.setattr(reader._Gate, "tensor", undecodable)
    with pytest.raises(InvalidModelError, match="invalid .tflite: undecodable text"):
        read_graph(tb.case("fc"))


# ---- unions ----

def test_union_type_outside_its_enum():
    op = _subgraph(CHAIN).Operators(0)
    _rejects(_put(CHAIN, "<B", _field(op, 10), 200), "SubGraph[0].operators[0].builtin_options_type: union type 200 "
                                                     "is not a member of BuiltinOptions (1..")


def test_union_value_must_point_to_a_table():
    op = _subgraph(CHAIN).Operators(0)
    pos = _field(op, 12)
    _rejects(_put(CHAIN, "<I", pos, N), "SubGraph[0].operators[0].builtin_options: Conv2DOptions table at offset",
             "lies past the end")
    # pointed at the operator's inputs vector: its length read as a vtable offset leads outside the buffer
    inputs = _target(op, 6)
    _rejects(_put(CHAIN, "<I", pos, inputs - pos), "SubGraph[0].operators[0].builtin_options(Conv2DOptions): "
                                                   f"Conv2DOptions table at offset {inputs}")


def test_builtin_options_fields_are_checked_generically():
    op = _subgraph(CHAIN).Operators(0)
    options = schema.Conv2DOptions()
    options.Init(CHAIN, _target(op, 12))
    vt = _vtable(options)
    tsize = struct.unpack_from("<H", CHAIN, vt + 2)[0]
    assert options._tab.Offset(6)  # stride_w
    _rejects(_put(CHAIN, "<H", vt + 6, tsize - 1), "SubGraph[0].operators[0].builtin_options(Conv2DOptions).stride_w: "
                                                   f"field of 4 bytes at table offset {tsize - 1} runs past the "
                                                   f"table's {tsize} bytes")


# ---- bounds on the walk ----

def test_nesting_depth_is_bounded():
    with pytest.raises(InvalidModelError, match=r"^invalid \.tflite: SubGraph\[0\]\.tensors\[0\]\.quantization: "
                                                r"QuantizationParameters table nested 3 deep, more than 2$"):
        verify_flatbuffer(CHAIN, max_depth=2)
    verify_flatbuffer(CHAIN, max_depth=3)


def _shared_dag(k: int) -> bytes:
    """k subgraph references to one subgraph whose k tensor references share one tensor: k*k tables to visit."""
    b = flatbuffers.Builder(1024)
    schema.TensorStart(b)
    tensor = schema.TensorEnd(b)
    schema.SubGraphStartTensorsVector(b, k)
    for _ in range(k):
        b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    schema.SubGraphStart(b)
    schema.SubGraphAddTensors(b, tensors)
    sg = schema.SubGraphEnd(b)
    schema.ModelStartSubgraphsVector(b, k)
    for _ in range(k):
        b.PrependUOffsetTRelative(sg)
    sgs = b.EndVector()
    schema.ModelStart(b)
    schema.ModelAddSubgraphs(b, sgs)
    b.Finish(schema.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_table_count_is_bounded_so_shared_references_cannot_explode():
    bomb = _shared_dag(3000)
    assert len(bomb) < 30_000
    limit = len(bomb) // 4 + 16
    _rejects(bomb, "SubGraph[", f"more than {limit} tables in a {len(bomb)}-byte buffer (shared or overlapping "
                                "references)")
    verify_flatbuffer(_shared_dag(4))  # modest sharing passes
    with pytest.raises(InvalidModelError, match="more than 20 tables"):
        verify_flatbuffer(CHAIN, max_tables=20)
