"""Kernel choice at generation time: SIZE keeps the generic kernels, a family's variant replaces its generic call
with checked constant arrays, and a variant's scratch is planned in the arena (aligned, for its call only)."""

import re

from dataclasses import replace

import numpy as np
import pytest

from tinyq.engine import cengine
from tinyq.engine.ops import fully_connected
from tinyq.render import make_banner
from tinyq.errors import UnsupportedOpError
from tinyq.engine import read_graph
from tinyq.engine.ops.base import ConstArray, Variant
from tinyq.engine import Optimize, lower
from tinyq.engine.plan import SCRATCH_ALIGN, plan

GENERIC = {"tq_conv2d", "tq_depthwise_conv2d", "tq_fully_connected", "tq_max_pool", "tq_average_pool", "tq_add",
           "tq_softmax"}


def test_size_keeps_the_generic_kernels(cnn_q):
    calls = lower(read_graph(cnn_q.tflite), Optimize.SIZE).calls
    assert {c.kernel for c in calls} <= GENERIC
    assert all(c.scratch_bytes == 0 for c in calls)


def _fake_fc_variant(scratch: int, extra_values: int = 0):
    """A chooser that re-lays the FC weights (reversed) under another kernel name and asks for scratch."""
    def choose(fields, arrays, name, rounding=None):
        w = arrays["weights"].values[::-1].copy()
        w = np.concatenate([w, np.zeros(extra_values, np.int8)])
        count = fields["in_depth"] * fields["out_depth"]
        return Variant("tq_fc_fake", "tq_fc_fake_params", tuple((k, v) for k, v in fields.items()),
                       (ConstArray(f"{name}_weights_fake", "int8_t", w), arrays["bias"]), ("weights", "bias"),
                       (count, fields["out_depth"]), scratch)
    return choose


def test_variant_scratch_is_planned_aligned_and_passed(mlp_q, monkeypatch):
    monkeypatch.setattr(fully_connected, "RULE", replace(fully_connected.RULE, choose=_fake_fc_variant(scratch=10)))
    graph = read_graph(mlp_q.tflite)
    lowered = lower(graph, Optimize.SPEED)
    fcs = [c for c in lowered.calls if c.kernel == "tq_fc_fake"]
    assert len(fcs) == 3 and all(c.scratch_bytes == 12 for c in fcs)  # rounded up to whole words
    memory = plan(graph, lowered)
    offsets = [memory.scratch[k] for k, c in enumerate(lowered.calls) if c.kernel == "tq_fc_fake"]
    assert all(off is not None and off % SCRATCH_ALIGN == 0 for off in offsets)
    assert memory.scratch_bytes == 12
    generic = plan(graph, lower(graph, Optimize.SIZE))
    assert memory.lower_bound_bytes >= generic.lower_bound_bytes
    assert memory.arena_bytes >= max(off + 12 for off in offsets)
    # A scratch never overlaps a tensor live during its call.
    for k, off in enumerate(memory.scratch):
        if off is None:
            continue
        for p in memory.placements:
            if p.tensor >= 0 and p.first <= k <= p.last:
                assert off + 12 <= p.offset or p.offset + p.size <= off
    engine = cengine.generate(graph, "m", make_banner("m", "0" * 64), Optimize.SPEED)
    source = next(f.text for f in engine.files if f.name == "m_model.c")
    passed = re.findall(r"tq_fc_fake\(&op\d+, [^;]*\(void \*\)&s_arena\[(\d+)\]\);", source)
    assert sorted(int(x) for x in passed) == sorted(offsets)
    assert "TQ_ALIGNED(8)" in source
    assert any(b.label.startswith("scratch of op #") for b in engine.blocks)
    assert engine.scratch_bytes == 12 and engine.optimize is Optimize.SPEED


def test_variant_arrays_must_hold_what_the_kernel_indexes(mlp_q, monkeypatch):
    monkeypatch.setattr(fully_connected, "RULE",
                        replace(fully_connected.RULE, choose=_fake_fc_variant(scratch=0, extra_values=3)))
    with pytest.raises(UnsupportedOpError, match=r"op #\d+ FULLY_CONNECTED .*tq_fc_fake: constant array weights"):
        lower(read_graph(mlp_q.tflite), Optimize.SPEED)


def test_optimize_is_validated():
    with pytest.raises(ValueError):
        Optimize("fast")


@pytest.mark.parametrize("flag, expected", [([], Optimize.SPEED), (["--optimize", "size"], Optimize.SIZE)])
def test_cli_optimize_reaches_the_pipeline(flag, expected):
    from tinyq import cli

    args = cli.build_parser().parse_args(["demo", "--out", "x", *flag])
    assert cli._pipeline_config(args).optimize is expected
