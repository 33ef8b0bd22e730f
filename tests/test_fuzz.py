"""The reader is one gate for model bytes: hand-made and mutated .tflite files get one typed error naming the op,
tensor and field, nothing hangs, and whatever passes generates C that runs clean under ASan+UBSan."""

import math
from dataclasses import replace

import pytest

import tflite_fuzz as fz
from tinyq import analyze, cli, tflm
from tinyq.engine import cengine, is_tflite, lower, macs, plan, read_graph
from tinyq.errors import InvalidModelError, UnsupportedOpError
from tinyq.render import Banner
from tinyq.quantize import inspect_tflite

CASES_PER_SEED = 120
CASE_SECONDS = 10.0


@pytest.fixture(scope="module")
def seeds(cnn_q, mlp_q, dsres_q):
    return {"cnn": cnn_q.tflite, "mlp": mlp_q.tflite, "dsres": dsres_q.tflite}


@pytest.fixture(scope="module")
def outcomes(seeds):
    """CASES_PER_SEED mutants of each demo model through the reader, the listings and the generator."""
    return [fz.run_case(m, CASE_SECONDS) for name, seed in seeds.items()
            for m in fz.mutants(seed, name, CASES_PER_SEED, rng_seed=14)]


def _op(model, name):
    schema = fz._schema()
    code = getattr(schema.BuiltinOperator, name)
    return next(op for op in model.subgraphs[0].operators
                if max(model.operatorCodes[op.opcodeIndex].builtinCode,
                       model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode) == code)


def test_fuzzed_models_give_typed_errors_and_never_hang(outcomes):
    bad = [o for o in outcomes if o.bad]
    assert not bad, "\n".join(f"{o.klass} {o.mutant.seed} #{o.mutant.case} {o.mutant.kind} {o.mutant.detail}: "
                              f"{o.message}" for o in bad[:10])
    counts = dict(fz.summary(outcomes))
    assert len(outcomes) == 3 * CASES_PER_SEED
    refused = counts.get("rejected by verifier: InvalidModelError", 0) + counts.get(
        "rejected by reader: InvalidModelError", 0)
    assert counts.get("accepted", 0) > 20 and refused > 150, counts
    kinds = {o.mutant.kind.split("+")[0] for o in outcomes}
    layout_only = {"layout_operands"}  # the demo models have no layout op; tests/test_ops_layout.py fuzzes those
    assert kinds >= set(fz.FIELD_MUTATORS) - layout_only | {"byte_flip", "truncation"}, kinds
    assert max(o.seconds for o in outcomes) < CASE_SECONDS


SYNTHETIC_CASES = 8 * len(fz.seed_models())  # 8 structure-aware mutants of each op family's synthetic model


@pytest.fixture(scope="module")
def synthetic_outcomes():
    """Mutants of every op family's synthetic model (tests/tflite_build.py CASES) through the verifier, the
    reader, the listings and the generator: CI's small share of `benchmarks/fuzz_tflite.py --seed 14`."""
    return [fz.run_case(m, CASE_SECONDS) for m in fz.spread(fz.seed_models(), SYNTHETIC_CASES, 14)]


def test_structure_aware_mutants_of_every_op_family_give_typed_errors(synthetic_outcomes):
    bad = [o for o in synthetic_outcomes if o.bad]
    assert not bad, "\n".join(f"{o.klass} {o.mutant.seed} #{o.mutant.case} {o.mutant.kind} {o.mutant.detail}: "
                              f"{o.message}" for o in bad[:10])
    counts = dict(fz.summary(synthetic_outcomes))
    assert counts.get("accepted", 0) > 20 and counts.get("rejected by verifier: InvalidModelError", 0) > 50, counts
    assert counts.get("rejected by reader: InvalidModelError", 0) > 50, counts
    kinds = {o.mutant.kind.split("+")[0] for o in synthetic_outcomes}
    layout = {"layout_table", "layout_vtable", "layout_ref", "layout_length", "layout_string", "layout_union"}
    assert kinds >= set(fz.FIELD_MUTATORS) | layout | {"byte_flip", "truncation"}, kinds
    assert {o.mutant.seed for o in synthetic_outcomes} == set(fz.seed_models())
    table = fz.stage_table(synthetic_outcomes)
    assert "| cases" in table and "rejected by engine (lowering/engine)" in table


@pytest.mark.integration
@pytest.mark.slow
def test_accepted_structure_aware_mutants_run_clean_under_sanitizers(synthetic_outcomes, tmp_path):
    chosen = {}
    for o in synthetic_outcomes:
        if o.klass == "accepted" and len(chosen) < 3 and o.mutant.seed not in {c.mutant.seed for c in chosen.values()}:
            chosen.setdefault(fz.engine_key(o.files), o)
    assert len(chosen) == 3
    runs = [fz.sanitized_run(o, tmp_path) for o in chosen.values()]
    assert all(r.clean for r in runs), [(r.outcome.mutant.detail, r.detail) for r in runs if not r.clean]


def test_mutants_are_reproducible_from_their_seed(seeds):
    a = [m.data for m in fz.mutants(seeds["cnn"], "cnn", 20, rng_seed=5)]
    b = [m.data for m in fz.mutants(seeds["cnn"], "cnn", 20, rng_seed=5)]
    assert a == b and len(set(a)) > 15


@pytest.mark.integration
@pytest.mark.slow
def test_accepted_mutants_run_clean_under_address_and_ub_sanitizers(outcomes, tmp_path):
    """One build per distinct generated engine, for the first accepted mutants of each seed model."""
    chosen = {}
    for o in outcomes:
        per_seed = sum(1 for c in chosen.values() if c.mutant.seed == o.mutant.seed)
        if o.klass == "accepted" and per_seed < 3:
            chosen.setdefault(fz.engine_key(o.files), o)
    assert len(chosen) == 9
    runs = [fz.sanitized_run(o, tmp_path) for o in chosen.values()]
    dirty = [r for r in runs if not r.clean]
    assert not dirty, [(r.outcome.mutant.detail, r.detail) for r in dirty]


def _rejects(data, *patterns):
    with pytest.raises(InvalidModelError) as info:
        read_graph(data)
    for p in patterns:
        assert p in str(info.value), str(info.value)
    return str(info.value)


def test_reshape_aliasing_its_own_input_is_refused_not_a_hang(mlp_q):
    def cycle(m):
        op = _op(m, "RESHAPE")
        op.outputs = [int(op.inputs[0])]
    _rejects(fz.edit(mlp_q.tflite, cycle), "op #0 RESHAPE", "is already a graph input")


def test_softmax_output_smaller_than_its_input_is_refused(cnn_q):
    def shrink(m):
        m.subgraphs[0].tensors[_op(m, "SOFTMAX").outputs[0]].shape = [1, 5]
    _rejects(fz.edit(cnn_q.tflite, shrink), "SOFTMAX", "(1, 5) differs from input (1, 10)")


def _bad_name(m):
    m.subgraphs[0].tensors[3].name = b"bad\xffname"


def _alias_cycle(m):
    op = _op(m, "RESHAPE")
    op.outputs = [int(op.inputs[0])]


def _small_softmax(m):
    m.subgraphs[0].tensors[_op(m, "SOFTMAX").outputs[0]].shape = [1, 5]


@pytest.mark.parametrize("seed, edit, expected", [
    ("cnn", _bad_name, "SubGraph[0].tensors[3].name: string of 8 bytes at offset"),
    ("mlp", _alias_cycle, "op #0 RESHAPE"),
    ("cnn", _small_softmax, "(1, 5) differs from input (1, 10)"),
])
def test_convert_names_the_readers_finding_not_the_int8_check(seeds, tmp_path, capsys, seed, edit, expected):
    """`tinyq convert` on a malformed int8 file prints the reader's own finding, not "not a full-integer int8"."""
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(fz.edit(seeds[seed], edit))
    code = cli.main(["--quiet", "convert", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_ERROR and err[-1].startswith("tinyq: error: "), err
    assert expected in err[-1] and "full-integer" not in err[-1] and str(bad) in "\n".join(err), err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("stride", [(1 << 31) - 1, 0, -3])
def test_pool_stride_out_of_range_is_refused(cnn_q, stride):
    def set_stride(m):
        _op(m, "MAX_POOL_2D").builtinOptions.strideH = stride
    _rejects(fz.edit(cnn_q.tflite, set_stride), "MAX_POOL_2D", f"field stride_h = {stride} is outside [1, 65536]")


@pytest.mark.parametrize("index", [-14, -1, 15])
def test_graph_output_index_out_of_range_is_refused_not_wrapped(cnn_q, index):
    def set_output(m):
        m.subgraphs[0].outputs = [index]
    _rejects(fz.edit(cnn_q.tflite, set_output), f"subgraph field outputs[0] = {index} is outside [0, 15)")


def test_graph_input_read_with_mismatched_size_is_refused(cnn_q):
    def grow(m):
        m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]].shape = [1, 28, 29, 1]
    _rejects(fz.edit(cnn_q.tflite, grow), "op #0 CONV_2D", "has 26 on axis 2", "give 27")


@pytest.mark.parametrize("scale, zero_point, field", [
    (float("nan"), -128, "quantization.scale = nan"), (0.0, -128, "quantization.scale = 0.0"),
    (float("inf"), -128, "quantization.scale = inf"), (-0.5, -128, "quantization.scale = -0.5"),
    (0.1, 128, "quantization.zero_point = 128 is outside int8's range [-128, 127]"),
])
def test_bad_quantization_is_refused(cnn_q, scale, zero_point, field):
    def set_q(m):
        q = m.subgraphs[0].tensors[0].quantization
        q.scale, q.zeroPoint = [scale], [zero_point]
    _rejects(fz.edit(cnn_q.tflite, set_q), "tensor #0 'serving_default_input:0'", field)


def test_field_faults_are_named(cnn_q):
    def name(m):
        m.subgraphs[0].tensors[3].name = b"bad\xffname"
    _rejects(fz.edit(cnn_q.tflite, name), "invalid .tflite: SubGraph[0].tensors[3].name: string of 8 bytes at offset",
             "is not valid UTF-8 (invalid start byte at byte 3)")

    def opcode(m):
        m.subgraphs[0].operators[2].opcodeIndex = 99
    _rejects(fz.edit(cnn_q.tflite, opcode), "op #2: field opcode_index = 99 is outside")

    def tensor_index(m):
        m.subgraphs[0].operators[1].inputs = [-7]
    _rejects(fz.edit(cnn_q.tflite, tensor_index), "op #1 MAX_POOL_2D: field inputs[0] = -7 is outside [-1, 15)")

    def buffer_size(m):
        t = m.subgraphs[0].tensors[_op(m, "CONV_2D").inputs[1]]
        m.buffers[t.buffer].data = m.buffers[t.buffer].data[:-1]
    _rejects(fz.edit(cnn_q.tflite, buffer_size), "holds 143 bytes; shape [16, 3, 3, 1] of int8 needs 144")

    def options(m):
        schema = fz._schema()
        op = _op(m, "FULLY_CONNECTED")
        op.builtinOptions, op.builtinOptionsType = schema.ReshapeOptionsT(), schema.BuiltinOptions.ReshapeOptions
    _rejects(fz.edit(cnn_q.tflite, options), "FULLY_CONNECTED", "field builtin_options is ReshapeOptions, expected "
                                                                 "FullyConnectedOptions")

    def enum_value(m):
        _op(m, "CONV_2D").builtinOptions.fusedActivationFunction = 9
    _rejects(fz.edit(cnn_q.tflite, enum_value), "op #0 CONV_2D",
             "options Conv2DOptions: field fused_activation_function = 9 is not a valid Activation")

    def dtype(m):
        m.subgraphs[0].tensors[4].type = 13
    _rejects(fz.edit(cnn_q.tflite, dtype), "tensor #4", "field type = 13 (RESOURCE) is not supported")


def test_ops_out_of_execution_order_are_refused(dsres_q):
    def swap(m):
        ops = m.subgraphs[0].operators
        ops[2], ops[3] = ops[3], ops[2]
    _rejects(fz.edit(dsres_q.tflite, swap), "op #2 ADD", "is read before any op writes it")


def test_file_kind_by_content(cnn_q, tmp_path):
    assert is_tflite(cnn_q.tflite) and not is_tflite(b"PK\x03\x04" + bytes(60)) and not is_tflite(b"")
    _rejects(b"PK\x03\x04" + bytes(60), "not a .tflite flatbuffer", "a zip archive (a .keras model?)")
    _rejects(b"\x89HDF\r\n\x1a\n" + bytes(60), "an HDF5 file")


def test_listings_and_inspection_go_through_the_gate(cnn_q):
    bad = fz.edit(cnn_q.tflite, lambda m: setattr(m.subgraphs[0].operators[1], "opcodeIndex", 40))
    for listing in (lambda b: macs(read_graph(b)), lambda b: analyze.op_summary(read_graph(b)),
                    lambda b: tflm.resolver_methods(read_graph(b)),
                    lambda b: inspect_tflite(b, "bad"),
                    lambda b: cengine.generate(read_graph(b), "m", Banner("t", "m", "0", "-", "-"))):
        with pytest.raises(InvalidModelError, match="op #1: field opcode_index = 40"):
            listing(bad)


def test_demo_models_pass_the_gate_unchanged(cnn_q, mlp_q, dsres_q):
    for q in (cnn_q, mlp_q, dsres_q):
        g = read_graph(q.tflite)
        assert all(math.isfinite(s) and s > 0 for t in g.tensors for s in t.scales)
        assert inspect_tflite(q.tflite, "again").ops == q.ops


def test_planner_refuses_a_kernel_call_that_would_overrun_its_buffer(cnn_q):
    g = read_graph(cnn_q.tflite)
    lowered = lower(g)
    softmax = lowered.calls[-1]
    assert softmax.kernel == "tq_softmax" and softmax.writes == 10
    too_far = replace(lowered, calls=lowered.calls[:-1] + (replace(softmax, writes=11),))
    with pytest.raises(UnsupportedOpError, match=r"op #6 SOFTMAX .*writes 11 bytes to .* whose buffer holds 10"):
        plan(g, too_far)
    conv = lowered.calls[0]
    reads_more = replace(lowered, calls=(replace(conv, reads=(785,)),) + lowered.calls[1:])
    with pytest.raises(UnsupportedOpError, match=r"op #0 CONV_2D .*reads 785 bytes from input 0"):
        plan(g, reads_more)


def test_every_kernel_call_of_the_demo_models_is_proven_in_bounds(cnn_q, mlp_q, dsres_q):
    for q in (cnn_q, mlp_q, dsres_q):
        g = read_graph(q.tflite)
        lowered = lower(g)
        plan(g, lowered)
        for call in lowered.calls:
            assert call.writes == g.tensors[call.output].nbytes
            assert call.reads == tuple(g.tensors[t].nbytes for t in call.inputs)



def test_lowering_refuses_int32_overflow_in_the_generated_arithmetic(dsres_q):
    """A conv output scale of 1e-12 makes the requantization shift the accumulator left by 29 bits: signed
    overflow in C for some inputs, so the generator refuses instead of emitting undefined behaviour."""
    def tiny_scale(m):
        sg = m.subgraphs[0]
        sg.tensors[sg.operators[2].outputs[0]].quantization.scale = [1e-12]
    data = fz.edit(dsres_q.tflite, tiny_scale)
    read_graph(data)
    with pytest.raises(UnsupportedOpError, match=r"op #2 CONV_2D .*shifted left by 29 overflows int32; refusing"):
        cengine.generate(read_graph(data), "m", Banner("t", "m", "0", "-", "-"))


def _shared_name_bomb(tensors: int, name_bytes: int) -> bytes:
    """A valid flatbuffer whose tensors all point at one long name: small on disk, gigabytes once unpacked."""
    import flatbuffers

    s = fz._schema()
    b = flatbuffers.Builder(1024)
    name = b.CreateString("n" * name_bytes)
    offsets = []
    for _ in range(tensors):
        s.TensorStart(b)
        s.TensorAddName(b, name)
        offsets.append(s.TensorEnd(b))
    s.SubGraphStartTensorsVector(b, tensors)
    for t in reversed(offsets):
        b.PrependUOffsetTRelative(t)
    vec = b.EndVector()
    s.SubGraphStart(b)
    s.SubGraphAddTensors(b, vec)
    sg = s.SubGraphEnd(b)
    s.ModelStartSubgraphsVector(b, 1)
    b.PrependUOffsetTRelative(sg)
    sgs = b.EndVector()
    s.ModelStart(b)
    s.ModelAddVersion(b, 3)
    s.ModelAddSubgraphs(b, sgs)
    b.Finish(s.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_shared_tables_cannot_unpack_into_gigabytes():
    bomb = _shared_name_bomb(20000, 100_000)
    assert len(bomb) < 400_000
    _rejects(bomb, "tensor #", "name would unpack into more than")


@pytest.mark.integration
def test_tensor_names_cannot_close_a_comment_in_generated_c(cnn_q, tmp_path):
    def inject(m):
        sg = m.subgraphs[0]
        sg.tensors[sg.operators[2].outputs[0]].name = b"conv2 */ int injected = 1; /* \xc3\xa9\n#error x"
    data = fz.edit(cnn_q.tflite, inject)
    outcome = fz.run_case(fz.Mutant("cnn", 0, "name", "comment injection", data))
    assert outcome.klass == "accepted", outcome.message
    model_c = next(f.text for f in outcome.files if f.name.endswith("_model.c"))
    assert "int injected" in model_c and "*/ int injected" not in model_c and "#error" not in model_c
    run = fz.sanitized_run(outcome, tmp_path)
    assert run.clean, run.detail
