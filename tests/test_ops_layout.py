"""The layout ops (TRANSPOSE, SLICE, STRIDED_SLICE, SPLIT, SPLIT_V, TILE, GATHER) in the C engine.

The fast lane runs the synthetic cases (tests/tflite_build.py) in the generated C on the host, against numpy's
own indexing of the same graph (numpy slicing is what TF's begin/end/strides and masks mean), checks the
family's recomputation and what the reader and the lowering refuse. The integration tests compare with TFLM
itself over many random shapes and parameters, also under ASan+UBSan."""

from __future__ import annotations

import numpy as np
import pytest
import tflite_build as tb

import engine_host
from tinyq.engine import Optimize, lower, read_graph
from tinyq.engine.graph import Graph
from tinyq.errors import InvalidModelError, UnsupportedOpError

LAYOUT_OPS = {"TRANSPOSE", "SLICE", "STRIDED_SLICE", "SPLIT", "SPLIT_V", "TILE", "GATHER"}
CASES = [name for name in tb.CASES
         if LAYOUT_OPS & {op.name for op in read_graph(tb.case(name)).operators}]
SAMPLES = 64


def _const(g: Graph, t: int) -> np.ndarray:
    return g.tensors[t].data


def _strided(g: Graph, op, x: np.ndarray) -> np.ndarray:
    begin, end, strides = (_const(g, t).reshape(-1) for t in op.inputs[1:4])
    o = op.options
    index = []
    for k, (b, e, s) in enumerate(zip(begin.tolist(), end.tolist(), strides.tolist())):
        if o.shrink_axis_mask >> k & 1:
            index.append(b)
        else:
            index.append(slice(None if o.begin_mask >> k & 1 else b, None if o.end_mask >> k & 1 else e, s))
    return x[tuple(index)]


def _gather(g: Graph, op, x: np.ndarray) -> np.ndarray:
    idx = _const(g, op.inputs[1])
    bd = op.options.batch_dims + (idx.ndim if op.options.batch_dims < 0 else 0)
    return _take(x, idx, op.options.axis % x.ndim, bd)


def _take(x: np.ndarray, idx: np.ndarray, axis: int, batch_dims: int) -> np.ndarray:
    """np.take per batch over the leading `batch_dims` axes that input and indices share."""
    if batch_dims == 0:
        return np.take(x, idx, axis=axis)
    return np.stack([_take(x[b], idx[b], axis - 1, batch_dims - 1) for b in range(x.shape[0])])


def numpy_run(tflite: bytes, x: np.ndarray) -> np.ndarray:
    """The graph evaluated with numpy's indexing, op by op (the layout ops and CONCATENATION)."""
    g = read_graph(tflite)
    values = {g.inputs[0]: x.reshape(g.tensors[g.inputs[0]].shape)}
    for op in g.operators:
        ins = [values.get(t) for t in op.inputs]
        if op.name == "TRANSPOSE":
            outs = [np.transpose(ins[0], _const(g, op.inputs[1]).tolist())]
        elif op.name == "SLICE":
            begin, size = _const(g, op.inputs[1]).tolist(), _const(g, op.inputs[2]).tolist()
            outs = [ins[0][tuple(slice(b, None if n == -1 else b + n) for b, n in zip(begin, size))]]
        elif op.name == "STRIDED_SLICE":
            outs = [_strided(g, op, ins[0])]
        elif op.name in ("SPLIT", "SPLIT_V"):
            data, axis_t = (ins[1], op.inputs[0]) if op.name == "SPLIT" else (ins[0], op.inputs[2])
            axis = int(_const(g, axis_t).reshape(-1)[0])
            cuts = np.cumsum([g.tensors[t].shape[axis] for t in op.outputs])[:-1]
            outs = np.split(data, cuts, axis=axis)
        elif op.name == "TILE":
            outs = [np.tile(ins[0], _const(g, op.inputs[1]).tolist())]
        elif op.name == "GATHER":
            outs = [_gather(g, op, ins[0])]
        elif op.name == "RESHAPE":
            outs = [ins[0].reshape(g.tensors[op.outputs[0]].shape)]
        elif op.name == "CONCATENATION":
            outs = [np.concatenate([values[t] for t in op.inputs], axis=op.options.axis)]
        else:
            raise AssertionError(f"no numpy model of {op.name}")
        for t, v in zip(op.outputs, outs):
            assert v.shape == g.tensors[t].shape, (op.name, v.shape, g.tensors[t].shape)
            values[t] = v
    return values[g.outputs[0]].reshape(-1)


def _inputs(tflite: bytes, n: int, seed: int) -> np.ndarray:
    g = read_graph(tflite)
    shape = g.tensors[g.inputs[0]].shape
    return np.random.default_rng(seed).integers(-128, 128, (n, *shape)).astype(np.int8)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    return engine_host.build({name: tb.case(name) for name in CASES}, tmp_path_factory.mktemp("layout"))


@pytest.mark.fast
def test_every_layout_op_has_a_case():
    assert LAYOUT_OPS <= {op.name for name in CASES for op in read_graph(tb.case(name)).operators}


@pytest.mark.fast
@pytest.mark.parametrize("case", CASES)
def test_speed_and_size_lower_alike(case):
    g = read_graph(tb.case(case))
    def calls(optimize):
        return [(c.kernel, c.fields, c.inputs, c.output) for c in lower(g, optimize).calls]
    assert calls(Optimize.SPEED) == calls(Optimize.SIZE)


@pytest.mark.fast
@pytest.mark.parametrize("case", CASES)
def test_generated_c_matches_numpy(case, host):
    x = _inputs(tb.case(case), SAMPLES, 0)
    want = np.stack([numpy_run(tb.case(case), xi) for xi in x])
    for optimize in ("speed", "size"):
        got = host.run(f"{case}_{optimize}", x)
        assert np.array_equal(got, want), f"{optimize}: {int((got != want).sum())} of {want.size} bytes differ"


@pytest.mark.fast
@pytest.mark.parametrize("case", CASES)
def test_recomputation_names_the_input_byte(case):
    g = read_graph(tb.case(case))
    x = _inputs(tb.case(case), 1, 1)[0]
    values = {t.index: t.data for t in g.tensors if t.is_constant}
    values[g.inputs[0]] = x
    call = next(c for c in lower(g).calls if c.kernel in ("tq_strided_copy", "tq_gather"))
    op = g.operators[call.op_index]
    first = op.outputs.index(call.output)
    assert first == 0  # an op's first call writes its output 0, the one diff explains
    want = numpy_run_op_output(g, op, x)
    for flat in range(want.size):
        element = call.rule.recompute(g, op, call, values, flat)
        assert element.rules[0].value == want[flat]


def numpy_run_op_output(g: Graph, op, x: np.ndarray) -> np.ndarray:
    """Output 0 of the graph's first layout op (its input is the graph input in every case)."""
    sub = tb.unpack(tb.case(next(c for c in CASES if read_graph(tb.case(c)).source_sha256 == g.source_sha256)))
    sg = sub.subgraphs[0]
    sg.operators = sg.operators[:op.index + 1]
    sg.outputs = [op.outputs[0]]
    return numpy_run(tb.pack(sub), x)


def _edited(case: str, edit) -> bytes:
    model = tb.unpack(tb.case(case))
    edit(model.subgraphs[0], model)
    return tb.pack(model)


def _set_const(model, sg, tensor: int, values) -> None:
    arr = np.asarray(values, np.int32)
    model.buffers[sg.tensors[tensor].buffer].data = list(arr.tobytes())
    sg.tensors[tensor].shape = list(arr.shape)


REFUSED_BY_READER = {
    "perm not a permutation": ("transpose_nhwc_nchw", lambda sg, m: _set_const(m, sg, sg.operators[0].inputs[1],
                                                                             [0, 3, 3, 2]),
                               r"op #0 TRANSPOSE .*perm \[0, 3, 3, 2\] is not a permutation"),
    "transpose output shape": ("transpose_3d", lambda sg, m: setattr(sg.tensors[sg.operators[0].outputs[0]],
                                                                     "shape", [5, 2, 3][::-1]),
                               r"op #0 TRANSPOSE .*is not input \(2, 3, 5\) permuted"),
    "quantization changes": ("transpose_3d", lambda sg, m: setattr(
        sg.tensors[sg.operators[0].outputs[0]].quantization, "scale", [0.5]), r"a copy cannot rescale"),
    "stride 0": ("strided_slice_backwards", lambda sg, m: _set_const(m, sg, sg.operators[0].inputs[3],
                                                                     [1, 0, -2, 1]),
                 r"op #0 STRIDED_SLICE .*strides\[1\] is 0"),
    "strided slice shape": ("strided_slice_backwards", lambda sg, m: _set_const(m, sg, sg.operators[0].inputs[2],
                                                                               [1, 5, 0, 4]),
                            r"op #0 STRIDED_SLICE .*is not the slice's shape"),
    "slice past the axis": ("slice", lambda sg, m: _set_const(m, sg, sg.operators[0].inputs[1], [0, 3, 2, 1]),
                            r"op #0 SLICE .*size\[1\] = 3 does not fit axis 1 of size 5 from begin 3"),
    "gather index out of range": ("gather_axis1", lambda sg, m: _set_const(m, sg, sg.operators[0].inputs[1],
                                                                           [[4, 0, 5, 2]]),
                                  r"op #0 GATHER .*indices .*\[2\] = 5 is outside axis 1 of size 5"),
    "split num_splits": ("split", lambda sg, m: setattr(sg.operators[0].builtinOptions, "numSplits", 2),
                         r"op #0 SPLIT .*field num_splits = 2 but the op has 3 outputs"),
    "split_v sizes": ("split_v", lambda sg, m: _set_const(m, sg, sg.operators[0].inputs[1], [2, 3, 2]),
                      r"op #0 SPLIT_V .*size_splits \[2, 3, 2\] do not match"),
}


@pytest.mark.fast
@pytest.mark.parametrize("what", REFUSED_BY_READER)
def test_the_reader_refuses_what_tflm_refuses(what):
    case, edit, message = REFUSED_BY_READER[what]
    with pytest.raises(InvalidModelError, match=message):
        read_graph(_edited(case, edit))


@pytest.mark.fast
def test_masks_tflm_ignores_are_refused_by_the_c_engine():
    tflite = _edited("strided_slice_backwards", lambda sg, m: setattr(sg.operators[0].builtinOptions,
                                                                      "ellipsisMask", 1))
    with pytest.raises(UnsupportedOpError, match=r"op #0 STRIDED_SLICE .*field ellipsis_mask = 1"):
        lower(read_graph(tflite))


@pytest.mark.fast
def test_split_outputs_get_their_own_calls_and_buffers():
    from tinyq.engine.plan import plan
    g = read_graph(tb.case("split"))
    lowered = lower(g)
    splits = [c for c in lowered.calls if c.kernel == "tq_strided_copy"]
    assert [c.output for c in splits] == list(g.operators[0].outputs)
    p = plan(g, lowered)
    spans = sorted((p.location(c.output).offset, p.location(c.output).offset + g.tensors[c.output].nbytes)
                   for c in splits)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # all three live until the concatenation


# ---- against TFLM: random shapes and parameters ----

def _wrap(g: tb.GraphBuilder, shape, q) -> int:
    """The graph input (1, N) reshaped to `shape` (an alias in the C engine), so any rank and axis 0 can be
    tested while the graph keeps TFLM's batch of 1 at its edges."""
    n = int(np.prod(shape))
    x = g.input((1, n), *q)
    return _reshape(g, x, shape, q, "in")


def _reshape(g: tb.GraphBuilder, x: int, shape, q, name: str) -> int:
    y = g.activation(list(shape), *q, name=f"reshape_{name}")
    o = tb.schema.ReshapeOptionsT()
    o.newShape = [int(d) for d in shape]
    g.op("RESHAPE", [x, g.const_int32(np.array(shape, np.int32), name=f"shape_{name}")], [y], o)
    return y


def _finish(g: tb.GraphBuilder, y: int, shape, q) -> bytes:
    return g.output(_reshape(g, y, (1, int(np.prod(shape))), q, "out")).build()


def _random_shape(rng, max_rank: int) -> list[int]:
    return [int(d) for d in rng.integers(1, 6, int(rng.integers(1, max_rank + 1)))]


def _random_transpose(rng, q) -> bytes:
    shape = _random_shape(rng, 5)
    perm = [int(p) for p in rng.permutation(len(shape))]
    g = tb.GraphBuilder()
    x = _wrap(g, shape, q)
    out = [shape[p] for p in perm]
    y = g.activation(out, *q, name="transpose")
    g.op("TRANSPOSE", [x, g.const_int32(np.array(perm, np.int32), name="perm")], [y], tb.schema.TransposeOptionsT())
    return _finish(g, y, out, q)


def _random_slice(rng, q) -> bytes:
    shape = _random_shape(rng, 5)
    begin = [int(rng.integers(0, d)) for d in shape]
    size = [-1 if rng.random() < 0.3 else int(rng.integers(1, d - b + 1)) for d, b in zip(shape, begin)]
    out = [d - b if s == -1 else s for d, b, s in zip(shape, begin, size)]
    g = tb.GraphBuilder()
    x = _wrap(g, shape, q)
    y = g.activation(out, *q, name="slice")
    g.op("SLICE", [x, g.const_int32(np.array(begin, np.int32), name="begin"),
                   g.const_int32(np.array(size, np.int32), name="size")], [y], tb.schema.SliceOptionsT())
    return _finish(g, y, out, q)


def _random_strided_slice(rng, q) -> bytes | None:
    shape = _random_shape(rng, 4)
    begin = [int(rng.integers(-d - 2, d + 3)) for d in shape]
    end = [int(rng.integers(-d - 2, d + 3)) for d in shape]
    strides = [int(rng.choice([-3, -2, -1, 1, 2, 3])) for _ in shape]
    masks = dict(begin_mask=int(rng.integers(0, 1 << len(shape))), end_mask=int(rng.integers(0, 1 << len(shape))),
                 shrink_axis_mask=0)
    for k, d in enumerate(shape):
        if rng.random() < 0.2:  # a shrunk axis takes the element at begin, which must exist
            masks["shrink_axis_mask"] |= 1 << k
            begin[k], strides[k] = int(rng.integers(-d, d)), 1
            masks["begin_mask"] &= ~(1 << k)
    out = tb.strided_slice_shape(shape, begin, end, strides, **masks)
    if 0 in out or not out:
        return None
    g = tb.GraphBuilder()
    x = _wrap(g, shape, q)
    consts = [g.const_int32(np.array(v, np.int32), name=n) for v, n in ((begin, "b"), (end, "e"), (strides, "s"))]
    y = g.activation(out, *q, name="strided_slice")
    g.op("STRIDED_SLICE", [x, *consts], [y], tb.strided_options(**masks))
    return _finish(g, y, out, q)


def _random_gather(rng, q) -> bytes:
    shape = _random_shape(rng, 4)
    axis = int(rng.integers(0, len(shape)))
    batch_dims = int(rng.integers(0, axis + 1)) if rng.random() < 0.3 else 0
    idx_shape = shape[:batch_dims] + [int(d) for d in rng.integers(1, 4, int(rng.integers(0, 3)))]
    idx = rng.integers(0, shape[axis], idx_shape).astype(np.int32)
    out = shape[:axis] + idx_shape[batch_dims:] + shape[axis + 1:]
    g = tb.GraphBuilder()
    x = _wrap(g, shape, q)
    y = g.activation(out, *q, name="gather")
    o = tb.schema.GatherOptionsT()
    o.axis, o.batchDims = (axis - len(shape) if rng.random() < 0.3 else axis), batch_dims
    g.op("GATHER", [x, g.const_int32(idx, name="indices")], [y], o)
    return _finish(g, y, out if out else [1], q)


def _random_split(rng, q) -> bytes:
    shape = _random_shape(rng, 4)
    axis = int(rng.integers(0, len(shape)))
    if rng.random() < 0.5:
        parts = [d for d in range(1, shape[axis] + 1) if shape[axis] % d == 0]
        count = int(rng.choice(parts))
        kind, sizes = "SPLIT", [shape[axis] // count] * count
    else:
        cuts = sorted(rng.choice(np.arange(1, shape[axis]), int(rng.integers(0, shape[axis])), replace=False)) \
            if shape[axis] > 1 else []
        kind, sizes = "SPLIT_V", [int(b - a) for a, b in zip([0, *cuts], [*cuts, shape[axis]])]
    return tb.split(shape, axis, tuple(sizes), q, version=kind) if shape[0] == 1 else \
        tb.split([1, *shape], axis + 1, tuple(sizes), q, version=kind)


# The layout family has no specialised variants: Optimize.SPEED lowers to the same calls (the fast tests run both
# on the synthetic cases), so the random models are built once.
ONE_BUILD = (Optimize.SIZE,)
RANDOM = {"transpose": _random_transpose, "slice": _random_slice, "strided_slice": _random_strided_slice,
          "gather": _random_gather, "split": _random_split}
PER_KIND = 40


@pytest.fixture(scope="module")
def random_models() -> dict[str, bytes]:
    rng = np.random.default_rng(21)
    models = {}
    for kind, make in RANDOM.items():
        while sum(name.startswith(kind + "_") for name in models) < PER_KIND:
            q = (float(rng.uniform(0.01, 0.2)), int(rng.integers(-128, 128)))
            tflite = make(rng, q)
            if tflite is not None:
                models[f"{kind}_{len(models)}"] = tflite
    return models


@pytest.fixture(scope="module")
def tflm_outputs(random_models) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(inputs, TFLM's outputs) of every random model, TFLM's checked against numpy's indexing too."""
    from tinyq import runtimes
    from tinyq.native import Workers

    results = {}
    with Workers() as workers:
        for name, tflite in random_models.items():
            x = _inputs(tflite, 16, len(name))
            want = runtimes.run_tflm(tflite, x[:, 0], workers).reshape(len(x), -1)
            assert np.array_equal(want, np.stack([numpy_run(tflite, xi) for xi in x])), name
            results[name] = (x, want)
    return results


@pytest.mark.integration
@pytest.mark.parametrize("sanitize", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["O2", "asan-ubsan"])
def test_random_layouts_bitexact_with_tflm(random_models, tflm_outputs, tmp_path, sanitize):
    host = engine_host.build(random_models, tmp_path, ONE_BUILD, sanitize=sanitize)
    elements = 0
    for name, (x, want) in tflm_outputs.items():
        got = host.run(f"{name}_size", x)
        assert np.array_equal(got, want), f"{name}: {int((got != want).sum())} bytes differ"
        elements += want.size
    print(f"{len(tflm_outputs)} random layout models, {elements} output bytes per build, bit-exact with TFLM")


def _random_tile(rng, q) -> bytes:
    shape = _random_shape(rng, 4)
    multiples = [int(m) for m in rng.integers(1, 4, len(shape))]
    g = tb.GraphBuilder()
    x = _wrap(g, shape, q)
    out = [d * m for d, m in zip(shape, multiples)]
    y = g.activation(out, *q, name="tile")
    g.op("TILE", [x, g.const_int32(np.array(multiples, np.int32), name="multiples")], [y], tb.schema.TileOptionsT())
    return _finish(g, y, out, q)


@pytest.mark.integration
@pytest.mark.parametrize("sanitize", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["O2", "asan-ubsan"])
def test_random_tiles_match_numpy(tmp_path, sanitize):
    """TILE against np.tile (pip TFLM has no TILE kernel to compare with)."""
    rng = np.random.default_rng(22)
    models = {f"tile_{k}": _random_tile(rng, (0.05, int(rng.integers(-128, 128)))) for k in range(PER_KIND // 2)}
    host = engine_host.build(models, tmp_path, ONE_BUILD, sanitize=sanitize)
    for name, tflite in models.items():
        x = _inputs(tflite, 8, 0)
        assert np.array_equal(host.run(f"{name}_size", x), np.stack([numpy_run(tflite, xi) for xi in x])), name


# ---- end to end: a Keras model whose conversion emits TRANSPOSE and STRIDED_SLICE ----

@pytest.fixture(scope="session")
def permute_crop_model(tmp_path_factory):
    """A small Keras model (Conv2D, Permute -> TRANSPOSE, Cropping2D -> STRIDED_SLICE, Dense) saved as .keras,
    and 200 samples with labels in an .npz."""
    import tensorflow as tf  # heavy; only the integration lane gets here

    layers = tf.keras.layers
    tf.keras.utils.set_random_seed(3)
    inp = tf.keras.Input((6, 8, 3))
    y = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    y = layers.Permute((2, 1, 3))(y)
    y = layers.Cropping2D(((1, 2), (0, 1)))(y)
    y = layers.Dense(5, activation="softmax")(layers.Flatten()(y))
    folder = tmp_path_factory.mktemp("permute_crop")
    tf.keras.Model(inp, y, name="permute_crop").save(folder / "permute_crop.keras")
    rng = np.random.default_rng(3)
    np.savez(folder / "data.npz", x=rng.uniform(-1, 1, (200, 6, 8, 3)).astype(np.float32),
             y=rng.integers(0, 5, 200))
    return folder


@pytest.mark.integration
def test_keras_permute_and_crop_run_in_the_c_engine_bitexact(permute_crop_model, tmp_path):
    import json
    import os
    import subprocess
    import sys

    folder = permute_crop_model
    run = subprocess.run([sys.executable, "-m", "tinyq.cli", "convert", str(folder / "permute_crop.keras"), "--data",
                          str(folder / "data.npz"), "--out", str(tmp_path / "out"), "--no-cortex-m", "--no-analysis"],
                         capture_output=True, text=True, timeout=900, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {"TRANSPOSE", "STRIDED_SLICE"} <= set(report["ops"]), report["ops"]
    assert report["c_engine"]["status"] == "generated", report["c_engine"]
    assert "tq_strided_copy" in {k["kernel"] for k in report["c_engine"]["kernels"]}
    agreement = report["agreement"]
    print(f"C engine vs TFLM: {agreement['c_vs_tflm_bitexact']} bit-exact over {agreement['c_vs_tflm_images']} "
          f"samples")
    assert agreement["c_vs_tflm_bitexact"] == 1.0 and agreement["c_vs_tflm_images"] == 200


@pytest.mark.fast
def test_fuzzed_layout_models_give_typed_errors():
    """Mutants of every layout case (their integer operands and masks among the mutations) are refused with a
    typed error or accepted; none raises anything else or hangs."""
    import tflite_fuzz as fz

    outcomes = [fz.run_case(m, 10.0) for name in CASES for m in fz.mutants(tb.case(name), name, 40, rng_seed=14)]
    bad = [o for o in outcomes if o.bad]
    assert not bad, [(o.mutant.seed, o.mutant.kind, o.mutant.detail, o.message) for o in bad[:5]]
    kinds = [o.mutant.kind for o in outcomes]
    assert sum("layout_operands" in k for k in kinds) >= 10 and sum(not o.klass.startswith("rejected")
                                                                    for o in outcomes) > 20
