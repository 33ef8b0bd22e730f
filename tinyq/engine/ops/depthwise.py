"""DEPTHWISE_CONV_2D: the reader's rules, lowering (shared with conv), the kernel choice and constant layout,
exact recomputation, MACs (C in firmware_stub/runtime/depthwise/).

Depth multiplier 1 without dilation goes to tq_dw_conv3x3 / tq_dw_conv3x3_pad (3x3 windows, channels a multiple
of four, every channel's rescale in the fused form; _pad where a window leaves the image) or tq_dw_conv (any
window, any rescale): weights grouped by four channels as 16-bit lanes so one word of input bytes and two of
weights feed four channels' packed multiply-accumulates, and per channel the constants of tq_requant.h's fused
requantization (both roundings and the output offset in one 64-bit multiply-accumulate). The 3x3 kernels read
everything of a group of four channels from one stream (dw3_stream)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..fixedpoint import Rounding
from ..graph import MAX_WINDOW, Activation, ConvOptions, Graph, Operator, Padding
from ..schema import BuiltinOperator
from .base import ConstArray, KernelRule, OpDef, OpSpec, Variant, bias_check, enum_field, window_check
from .context import accumulator_problem
from .conv import CONV_SPEC, lower_convolution, recompute_convolution
from .requant import SHIFT_RANGE, fused_constant

GROUP = 4  # channels per packed step
REQUANT_SIZE = 5  # int32 per channel in the requantization record (TQ_DW_REQUANT_SIZE)
GROUP_WORDS = 38  # words per group in the 3x3 stream (TQ_DW3_GROUP_WORDS)
LAST = 0x100  # flag in the stream's last shift word (TQ_DW3_LAST)
_PARAMS3 = ("in_h", "in_w", "out_h", "out_w", "stride_h", "stride_w", "pad_h", "pad_w", "act_min", "act_max")
_PARAMS = ("in_h", "in_w", "out_h", "out_w", "k_h", "k_w", "stride_h", "stride_w", "pad_h", "pad_w",
           "input_offset", "output_offset", "act_min", "act_max")


def grouped_weights(weights: np.ndarray, taps: int, channels: int) -> np.ndarray:
    """Depthwise weights [taps][channels] as int32 words [ceil(channels / 4)][taps][2] of 16-bit lanes: (w0, w2)
    and (w1, w3) of each group of four channels, matching SXTB16's split of four input bytes; zero past the last
    channel."""
    groups = -(-channels // GROUP)
    w = np.zeros((taps, groups * GROUP), np.int64)
    w[:, :channels] = weights.reshape(taps, channels)
    w = w.reshape(taps, groups, GROUP).transpose(1, 0, 2)
    lo, hi = w[..., [0, 1]] & 0xFFFF, w[..., [2, 3]]
    return np.ascontiguousarray((lo | (hi << 16)).astype(np.int32)).reshape(-1)


def requant_records(bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, output_offset: int,
                    rounding: Rounding = Rounding.DOUBLE) -> tuple[np.ndarray, bool]:
    """Per channel the record (c low word, c high word, mult, r - 1, bias) of tq_requantize_fused, the output
    offset folded into c (requant.fused_constant), as int32 [channels][REQUANT_SIZE]; a channel without the fused
    form gets (shift, 0, mult, -1, bias) for the two-step tq_requantize. Also whether every channel is fused."""
    rows = np.zeros((len(bias), REQUANT_SIZE), np.int64)
    fused = True
    for ch, (b, m, s) in enumerate(zip(bias.tolist(), mult.tolist(), shift.tolist())):
        c = fused_constant(int(m), int(s), output_offset, rounding)
        if c is None:
            fused = False
            rows[ch] = (s, 0, m, -1, b)
        else:
            rows[ch] = (c & 0xFFFFFFFF, (c >> 32) & 0xFFFFFFFF, m, -s - 1, b)
    return (rows & 0xFFFFFFFF).astype(np.uint32).view(np.int32).reshape(-1), fused


def dw3_stream(weights: np.ndarray, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, input_offset: int,
               output_offset: int, rounding: Rounding = Rounding.DOUBLE) -> np.ndarray | None:
    """The 3x3 kernels' stream, int32 [channels / 4][GROUP_WORDS]: per group the four sums' start values
    2 * (bias + input_offset * sum of the channel's weights), the nine taps' doubled weights as grouped_weights
    lays them out, and per channel (c lo, c hi, mult, r) with c = 2 * fused_constant, LAST set in the final r.
    Doubling makes the high word of c + 2x * mult, minus [x < 0], the rounded result times 2^r. None unless
    channels % 4 == 0, every rescale has the fused form, 2x fits int32 for every int8 input and |c| < 2^61
    (so c + 2x * mult stays within int64 and its high word plus -1 within int32)."""
    channels = len(bias)
    if channels % GROUP:
        return None
    w = weights.reshape(9, channels).astype(np.int64)
    reach = max(abs(-128 + input_offset), abs(127 + input_offset))
    if ((np.abs(bias.astype(np.int64)) + reach * np.abs(w).sum(axis=0)) * 2 >= 1 << 31).any():
        return None
    start = 2 * (bias.astype(np.int64) + input_offset * w.sum(axis=0))
    records = np.zeros((channels, 4), np.int64)
    for ch, (m, s) in enumerate(zip(mult.tolist(), shift.tolist())):
        c = fused_constant(int(m), int(s), output_offset, rounding)
        if c is None or abs(2 * c) >= 1 << 61:
            return None
        records[ch] = ((2 * c) & 0xFFFFFFFF, ((2 * c) >> 32) & 0xFFFFFFFF, m, -s)
    records[-1, 3] |= LAST
    groups = channels // GROUP
    taps = grouped_weights((2 * w).reshape(-1), 9, channels).astype(np.int64).reshape(groups, 18)
    stream = np.concatenate([start.reshape(groups, GROUP) & 0xFFFFFFFF, taps & 0xFFFFFFFF,
                             records.reshape(groups, 16)], axis=1)
    return stream.astype(np.uint32).view(np.int32).reshape(-1)


def _inside(fields: Mapping[str, int]) -> bool:
    """Whether every 3x3 window lies inside the image."""
    return fields["pad_h"] == 0 and fields["pad_w"] == 0 \
        and (fields["out_h"] - 1) * fields["stride_h"] + 3 <= fields["in_h"] \
        and (fields["out_w"] - 1) * fields["stride_w"] + 3 <= fields["in_w"]


def choose(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str,
           rounding: Rounding = Rounding.DOUBLE) -> Variant | None:
    """tq_dw_conv3x3(_pad) / tq_dw_conv for depth multiplier 1 without dilation; None (the generic kernel) else."""
    if fields["depth_multiplier"] != 1 or fields["dil_h"] != 1 or fields["dil_w"] != 1:
        return None
    channels = fields["in_c"]
    mult = arrays["mult"].values.astype(np.int64)
    shift = arrays["shift"].values.astype(np.int64)
    if fields["out_c"] != channels or (mult < 0).any() or (shift < SHIFT_RANGE[0]).any() \
            or (shift > SHIFT_RANGE[1]).any():
        return None
    if fields["k_h"] == 3 and fields["k_w"] == 3:
        stream = dw3_stream(arrays["weights"].values, arrays["bias"].values, mult, shift, fields["input_offset"],
                            fields["output_offset"], rounding)
        if stream is not None:
            inside = _inside(fields)
            clamp = int(fields["act_min"] > -128 or fields["act_max"] < 127)
            return Variant("tq_dw_conv3x3" if inside else "tq_dw_conv3x3_pad", "tq_dw3_params",
                           fields=tuple((k, int(fields[k])) for k in _PARAMS3)
                           + (("channels", channels), ("pad_value", -int(fields["input_offset"])), ("clamp", clamp)),
                           arrays=(ConstArray(f"{name}_stream_dw3", "int32_t", stream),), pointer_fields=("stream",),
                           counts=(channels // GROUP * GROUP_WORDS,), scratch_bytes=0 if inside else 9 * channels)
    taps = fields["k_h"] * fields["k_w"]
    weights = ConstArray(f"{name}_weights_dw", "int32_t", grouped_weights(arrays["weights"].values, taps, channels))
    records, _ = requant_records(arrays["bias"].values, mult, shift, fields["output_offset"], rounding)
    requant = ConstArray(f"{name}_requant_dw", "int32_t", records)
    return Variant("tq_dw_conv", "tq_dw_params",
                   fields=tuple((k, int(fields[k])) for k in _PARAMS) + (("channels", channels),),
                   arrays=(weights, requant), pointer_fields=("weights", "requant"),
                   counts=(-(-channels // GROUP) * 2 * taps, channels * REQUANT_SIZE))


def parse_options(o) -> ConvOptions:
    return ConvOptions(enum_field(Padding, o.padding, "padding"), o.strideH, o.strideW, o.dilationHFactor,
                       o.dilationWFactor, enum_field(Activation, o.fusedActivationFunction,
                                                     "fused_activation_function"), o.depthMultiplier)


def _check(g: Graph, op: Operator) -> str | None:
    src, w, dst = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    mult = op.options.depth_multiplier
    if not 0 <= mult <= MAX_WINDOW:
        return f"field depth_multiplier = {mult} is outside [0, {MAX_WINDOW}]"
    if (w.shape[0] != 1 or w.shape[3] != dst.shape[3] or dst.shape[3] % src.shape[3] != 0
            or (mult and src.shape[3] * mult != dst.shape[3])):
        return (f"filter {w.name!r} {w.shape} with depth multiplier {mult} does not fit input {src.shape} -> "
                f"output {dst.shape}")
    return bias_check(g, op, dst.shape[3]) or window_check(g, op, w.shape[1], w.shape[2],
                                                            (op.options.dilation_h, op.options.dilation_w))


def _extents(f: Mapping[str, int], arrays) -> tuple:
    oc = f["in_c"] * f["depth_multiplier"]
    return ((f["in_h"] * f["in_w"] * f["in_c"],), f["out_h"] * f["out_w"] * oc, (f["k_h"] * f["k_w"] * oc, oc, oc, oc))


def _overflow(f: Mapping[str, int], arrays: Mapping[str, np.ndarray]) -> str | None:
    w = np.abs(arrays["weights"].astype(np.int64))
    return accumulator_problem(w.reshape(-1, f["out_c"]).sum(axis=0), dict(f), dict(arrays))


def _macs(g: Graph, op: Operator) -> int:
    w = g.tensors[op.inputs[1]]
    return g.tensors[op.outputs[0]].size * w.shape[1] * w.shape[2]


RULE = KernelRule("tq_depthwise_conv2d", "tq_conv_params", ("weights", "bias", "mult", "shift"), _extents,
                  _overflow, choose,
                  lambda graph, op, call, inputs, flat: recompute_convolution(graph, op, call, inputs, flat, True))

OPS = (
    OpDef(BuiltinOperator.DEPTHWISE_CONV_2D, "depthwise",
          OpSpec((2, 3), options="DepthwiseConv2DOptionsT", input_ranks=((4,), (4,), (1,)), check=_check,
                 **CONV_SPEC),
          parse_options, lambda ctx, op: lower_convolution(ctx, op, RULE, depthwise=True), macs=_macs),
)
