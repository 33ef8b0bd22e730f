"""FULLY_CONNECTED: the reader's rules, lowering (the input zero point always folded into the bias), the kernel
choice and constant layout, exact recomputation, MACs (C in firmware_stub/runtime/fully_connected/).

tq_fc_stacked4 stacks two output rows in each 16-bit lane: the halfword 256 * a + b holds row 2i + 1's weight a
(high byte) and row 2i's weight b (low byte) of one input column, so one SMLAD of the raw word with two int16
inputs sums 256 * (a-products) + (b-products) for both rows, and one SMLAD of its sign-extended low bytes sums the
b-products alone; their difference over 256 is the a-row's sum. Three instructions per four MACs, exact while
256 times the a-row's sum fits int32, which generation time checks from the weights. Where it does not,
tq_fc_rows4 takes the weights unstacked (row-major, zero-padded: SXTB16 of each word gives the weights of columns
k, k + 2 and with its rotation those of k + 1, k + 3, the order of the shared int16 scratch), four rows per pass,
so only a requantization without the fused form leaves the generic kernel."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..fixedpoint import Rounding
from ..graph import Activation, FullyConnectedOptions, Graph, Operator
from ..schema import BuiltinOperator
from .base import ConstArray, Element, KernelCall, KernelRule, OpDef, OpSpec, Variant, bias_check, enum_field
from .context import LowerContext, accumulator_problem, array_of, fields_of, int32_values
from .requant import fused_constant
from .rounding import channel_scale, requantize_rules

BLOCK = 8  # input columns per pass of the kernel's loop (two blocks of four); in_depth is zero-padded to it
A_LIMIT = 1 << 23  # the a-row's sum must lie in [-A_LIMIT, A_LIMIT) for 256 times it to fit int32


def padded_depth(in_depth: int) -> int:
    """in_depth rounded up to whole loop passes: the int16 scratch's length and each stacked row's."""
    return -(-in_depth // BLOCK) * BLOCK


def stacked_halfwords(weights: np.ndarray) -> np.ndarray | None:
    """[out][in] int8 weights as [ceil(out / 2)][padded in] int16 halfwords 256 * w[2i + 1] + w[2i] (zero-padded
    row and columns), or None where that is not exact: a halfword outside int16 (high weight -128 over a negative
    low one), or an a-row whose sum over some int8 input leaves [-A_LIMIT, A_LIMIT)."""
    out_depth, in_depth = weights.shape
    w = np.zeros((out_depth + out_depth % 2, padded_depth(in_depth)), dtype=np.int64)
    w[:out_depth, :in_depth] = weights
    lo, hi = w[0::2], w[1::2]
    half = 256 * hi + lo
    if (half < -32768).any():
        return None
    pos, neg = np.where(hi > 0, hi, 0).sum(axis=1), np.where(hi < 0, -hi, 0).sum(axis=1)
    if (127 * pos + 128 * neg >= A_LIMIT).any() or (128 * pos + 127 * neg > A_LIMIT).any():
        return None
    return half.astype(np.int16)


def stack(half: np.ndarray) -> np.ndarray:
    """Stacked halfwords in tq_fc_stacked4's stream order, as little-endian int32 words: per group of two pairs,
    per 4 input columns c0..c3, pair 0's words (c0, c2) and (c1, c3) then pair 1's; an odd last pair's words
    after, block by block. The scratch holds the inputs in the same (c0, c2), (c1, c3) order."""
    pairs, depth = half.shape
    blocks = half.reshape(pairs, depth // 4, 4)[:, :, [0, 2, 1, 3]]
    full = pairs - pairs % 2
    body = blocks[:full].reshape(full // 2, 2, depth // 4, 4).transpose(0, 2, 1, 3)
    stream = np.concatenate([body.reshape(-1), blocks[full:].reshape(-1)]).astype("<i2")
    return np.frombuffer(stream.tobytes(), dtype="<i4").astype(np.int32)


REQUANT_ROW = 4  # per output row: tq_requantize_fused's c as low and high words, the multiplier, right shift - 1


def fused_requant(mult: np.ndarray, shift: np.ndarray, output_offset: int,
                  rounding: Rounding = Rounding.DOUBLE) -> np.ndarray | None:
    """Per output row the constants of tq_requantize_fused (output zero point folded into c), [out][4] int32, or
    None unless every row has the fused form (a right shift of at least 1, see requant.fused_constant)."""
    rows = []
    for m, sh in zip(mult.tolist(), shift.tolist()):
        c = fused_constant(int(m), int(sh), output_offset, rounding)
        if c is None:
            return None
        rows.append((c & 0xFFFFFFFF, (c >> 32) & 0xFFFFFFFF, int(m), -int(sh) - 1))
    return np.array(rows, dtype=np.int64).astype(np.uint32).view(np.int32).reshape(-1)


def padded_rows(weights: np.ndarray) -> np.ndarray:
    """[out][in] int8 weights as tq_fc_rows4 reads them: each row zero-padded to padded_depth, as little-endian
    int32 words (4 columns each)."""
    out_depth, in_depth = weights.shape
    w = np.zeros((out_depth, padded_depth(in_depth)), dtype=np.int8)
    w[:, :in_depth] = weights
    return np.frombuffer(w.tobytes(), dtype="<i4").astype(np.int32)


def choose(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str,
           rounding: Rounding = Rounding.DOUBLE) -> Variant | None:
    """tq_fc_stacked4 with its stacked weights, else (weights stacked_halfwords rejects) tq_fc_rows4 with its padded
    rows; either with the fused requantization constants and an int16 scratch of one input row. None for the
    generic kernel where some row's requantization lacks the fused form."""
    requant = fused_requant(arrays["mult"].values, arrays["shift"].values, fields["output_offset"], rounding)
    if requant is None:
        return None
    in_depth, out_depth = fields["in_depth"], fields["out_depth"]
    weights = arrays["weights"].values.reshape(out_depth, in_depth)
    half = stacked_halfwords(weights)
    depth = padded_depth(in_depth)
    values = dict(fields, depth=depth)
    names = ("rows", "in_depth", "out_depth", "depth", "act_min", "act_max")
    ints = tuple((k, int(values[k])) for k in names)
    fused = ConstArray(f"{name}_requant_fused", "int32_t", requant)
    if half is None:
        return Variant("tq_fc_rows4", "tq_fc_rows_params", ints,
                       (ConstArray(f"{name}_weights_rows", "int32_t", padded_rows(weights)), arrays["bias"], fused),
                       ("weights", "bias", "requant"), (out_depth * depth // 4, out_depth, out_depth * REQUANT_ROW),
                       scratch_bytes=2 * depth)
    return Variant("tq_fc_stacked4", "tq_fc_st4_params", ints,
                   (ConstArray(f"{name}_weights_stacked", "int32_t", stack(half)), arrays["bias"], fused),
                   ("weights", "bias", "requant"), (half.size // 2, out_depth, out_depth * REQUANT_ROW),
                   scratch_bytes=2 * depth)


def parse_options(o) -> FullyConnectedOptions:
    return FullyConnectedOptions(enum_field(Activation, o.fusedActivationFunction, "fused_activation_function"),
                                 bool(o.keepNumDims), o.weightsFormat != 0)


def _check(g: Graph, op: Operator) -> str | None:
    src, w, dst = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    if src.size % w.shape[1] != 0 or dst.size != src.size // w.shape[1] * w.shape[0]:
        return f"input {src.shape} and output {dst.shape} do not fit weights {w.name!r} {w.shape}"
    return bias_check(g, op, w.shape[0])


def lower(ctx: LowerContext, op: Operator) -> KernelCall:
    o: FullyConnectedOptions = op.options
    if o.shuffled_weights:
        raise ctx.fail(op, "shuffled weights format is not supported")
    in_t = ctx.int8_act(op, op.inputs[0], "input")
    out_t = ctx.int8_act(op, op.outputs[0], "output")
    w = ctx.g.tensors[op.inputs[1]]
    if len(w.shape) != 2:
        raise ctx.fail(op, f"weights {w.name!r} have shape {w.shape}, expected 2-D")
    out_depth, in_depth = w.shape
    w = ctx.weights(op, op.inputs[1], out_depth, 0)
    rows = in_t.size // in_depth
    if in_t.size != rows * in_depth or out_t.size != rows * out_depth:
        raise ctx.fail(op, f"input {in_t.shape} / output {out_t.shape} do not fit weights {w.shape}")
    bias = ctx.bias(op, out_depth) - in_t.zero_points[0] * w.data.astype(np.int64).sum(axis=1)
    name = f"op{op.index}"
    act_min, act_max = ctx.activation(op, o.activation, out_t)
    arrays = [ConstArray(f"{name}_weights", "int8_t", np.ascontiguousarray(w.data).reshape(-1)),
              ConstArray(f"{name}_bias", "int32_t", int32_values(bias, ctx.g.where(op))),
              *ctx.multipliers(in_t, w, out_t, out_depth, name)]
    fields = dict(rows=rows, in_depth=in_depth, out_depth=out_depth, output_offset=out_t.zero_points[0],
                  act_min=act_min, act_max=act_max)
    return ctx.call(op, RULE, fields, arrays)


def _extents(f: Mapping[str, int], arrays) -> tuple:
    rows = f.get("rows", 1)
    return ((rows * f["in_depth"],), rows * f["out_depth"], (f["in_depth"] * f["out_depth"],) + (f["out_depth"],) * 3)


def _overflow(f: Mapping[str, int], arrays: Mapping[str, np.ndarray]) -> str | None:
    w = np.abs(arrays["weights"].astype(np.int64))
    return accumulator_problem(w.reshape(len(arrays["bias"]), -1).sum(axis=1), dict(f), dict(arrays))


def recompute(graph: Graph, op: Operator, call: KernelCall, inputs: dict, flat: int) -> Element:
    f = fields_of(call)
    w = array_of(call, "_weights").reshape(f["out_depth"], f["in_depth"])
    bias = int(array_of(call, "_bias")[flat])
    acc = int(np.dot(w[flat], inputs[op.inputs[0]].reshape(-1).astype(np.int64))) + bias
    mult, shift = int(array_of(call, "_mult")[flat]), int(array_of(call, "_shift")[flat])
    rules, exact = requantize_rules(acc, mult, shift, channel_scale(graph, op, flat), f["output_offset"],
                                    f["act_min"], f["act_max"])
    return Element((0, flat), rules, exact, acc,
                   f"accumulator {acc} (bias {bias} with the input zero point folded in), multiplier {mult} x "
                   f"2^{shift}")


def _macs(g: Graph, op: Operator) -> int:
    return g.tensors[op.outputs[0]].size * g.tensors[op.inputs[1]].shape[1]


RULE = KernelRule("tq_fully_connected", "tq_fc_params", ("weights", "bias", "mult", "shift"), _extents, _overflow,
                  choose, recompute)

OPS = (
    OpDef(BuiltinOperator.FULLY_CONNECTED, "fully_connected",
          OpSpec((2, 3), options="FullyConnectedOptionsT", input_ranks=(None, (2,), (1,)), same_dtype=(0,),
                 check=_check),
          parse_options, lower, macs=_macs),
)
