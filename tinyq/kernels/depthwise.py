"""Specialised depthwise kernels: choice and constant layout (C in firmware_stub/runtime/tq_depthwise.c).

Depth multiplier 1 without dilation goes to tq_dw_conv3x3 (3x3 windows, unrolled, every channel's rescale in
the fused form, activation range all of int8), tq_dw_conv3x3_clamp (the same with a narrower range) or tq_dw_conv
(any window, any rescale): weights grouped by four channels as 16-bit lanes so one word of input bytes and two of
weights feed four channels' packed multiply-accumulates, and a per-channel record for tq_requant.h's fused
requantization (both roundings and the output offset in one 64-bit multiply-accumulate)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .base import ConstArray, Variant
from .requant import SHIFT_RANGE, fused_constant

GROUP = 4  # channels per packed step
REQUANT_SIZE = 5  # int32 per channel in the requantization record (TQ_DW_REQUANT_SIZE)
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


def requant_records(bias: np.ndarray, mult: np.ndarray, shift: np.ndarray,
                    output_offset: int) -> tuple[np.ndarray, bool]:
    """Per channel the record (c low word, c high word, mult, r - 1, bias) of tq_requantize_fused, the output
    offset folded into c (requant.fused_constant), as int32 [channels][REQUANT_SIZE]; a channel without the fused
    form gets (shift, 0, mult, -1, bias) for the two-step tq_requantize. Also whether every channel is fused."""
    rows = np.zeros((len(bias), REQUANT_SIZE), np.int64)
    fused = True
    for ch, (b, m, s) in enumerate(zip(bias.tolist(), mult.tolist(), shift.tolist())):
        c = fused_constant(int(m), int(s), output_offset)
        if c is None:
            fused = False
            rows[ch] = (s, 0, m, -1, b)
        else:
            rows[ch] = (c & 0xFFFFFFFF, (c >> 32) & 0xFFFFFFFF, m, -s - 1, b)
    return (rows & 0xFFFFFFFF).astype(np.uint32).view(np.int32).reshape(-1), fused


def choose(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str) -> Variant | None:
    """tq_dw_conv3x3 / tq_dw_conv for depth multiplier 1 without dilation; None (the generic kernel) else."""
    if fields["depth_multiplier"] != 1 or fields["dil_h"] != 1 or fields["dil_w"] != 1:
        return None
    channels = fields["in_c"]
    mult = arrays["mult"].values.astype(np.int64)
    shift = arrays["shift"].values.astype(np.int64)
    if fields["out_c"] != channels or (mult < 0).any() or (shift < SHIFT_RANGE[0]).any() \
            or (shift > SHIFT_RANGE[1]).any():
        return None
    taps = fields["k_h"] * fields["k_w"]
    weights = ConstArray(f"{name}_weights_dw", "int32_t", grouped_weights(arrays["weights"].values, taps, channels))
    records, one_step = requant_records(arrays["bias"].values, mult, shift, fields["output_offset"])
    requant = ConstArray(f"{name}_requant_dw", "int32_t", records)
    if fields["k_h"] == 3 and fields["k_w"] == 3 and one_step:
        full = fields["act_min"] == -128 and fields["act_max"] == 127
        kernel = "tq_dw_conv3x3" if full else "tq_dw_conv3x3_clamp"
    else:
        kernel = "tq_dw_conv"
    return Variant(kernel, "tq_dw_params",
                   fields=tuple((k, int(fields[k])) for k in _PARAMS) + (("channels", channels),),
                   arrays=(weights, requant), pointer_fields=("weights", "requant"),
                   counts=(-(-channels // GROUP) * 2 * taps, channels * REQUANT_SIZE))
