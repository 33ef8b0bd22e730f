"""Specialised depthwise kernels: choice and constant layout (C in firmware_stub/runtime/tq_depthwise.c).

Depth multiplier 1 without dilation goes to tq_dw_conv3x3 (3x3 windows, unrolled, every channel's rescale a
right shift of 2 or more, activation range all of int8), tq_dw_conv3x3_clamp (the same with a narrower range) or
tq_dw_conv (any window, any rescale):
weights grouped by four channels as 16-bit lanes so one word of input bytes and two of weights feed four
channels' packed multiply-accumulates, and a
per-channel record that turns TFLite's two-step requantization into one 64-bit multiply-add and shift."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .base import ConstArray, Variant

GROUP = 4  # channels per packed step
REQUANT_SIZE = 4  # int32 per channel in the requantization record (TQ_DW_REQUANT_SIZE)
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


def requant_record(bias: int, mult: int, shift: int) -> tuple[int, int, int, int]:
    """One channel's record (bias, mult, hi, rsh). For mult >= 0 TFLite's doubling high multiply is
    floor((x * mult + 2^30) / 2^31) and its rounding divide by 2^right adds 2^(right - 1), less one for negative
    values (x < 0 gives the same as the product's sign); nested floors of divisions compose, so the two are
    floor((x * mult + 2^30 + 2^(30 + right) - [x < 0] 2^31) / 2^(31 + right)). For right >= 2 that constant has
    low word 2^30 (bit 31 set when x < 0) and high word 2^(right - 2) (less one when x < 0): the result is the
    high word of the sum shifted right by right - 1. Smaller right shifts keep TFLite's shift (rsh = -1)."""
    right = max(-shift, 0)
    if right < 2:
        return bias, mult, shift, -1
    return bias, mult, 1 << (right - 2), right - 1


def choose(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str) -> Variant | None:
    """tq_dw_conv3x3 / tq_dw_conv for depth multiplier 1 without dilation; None (the generic kernel) else."""
    if fields["depth_multiplier"] != 1 or fields["dil_h"] != 1 or fields["dil_w"] != 1:
        return None
    channels = fields["in_c"]
    mult = arrays["mult"].values.astype(np.int64)
    shift = arrays["shift"].values.astype(np.int64)
    if fields["out_c"] != channels or (mult < 0).any():
        return None
    taps = fields["k_h"] * fields["k_w"]
    weights = ConstArray(f"{name}_weights_dw", "int32_t", grouped_weights(arrays["weights"].values, taps, channels))
    bias = arrays["bias"].values.astype(np.int64)
    records = np.array([requant_record(int(b), int(m), int(s)) for b, m, s in zip(bias, mult, shift)], np.int64)
    requant = ConstArray(f"{name}_requant_dw", "int32_t", records.astype(np.int32).reshape(-1))
    one_step = bool((records[:, 3] >= 1).all())
    if fields["k_h"] == 3 and fields["k_w"] == 3 and one_step:
        full = fields["act_min"] == -128 and fields["act_max"] == 127
        kernel = "tq_dw_conv3x3" if full else "tq_dw_conv3x3_clamp"
    else:
        kernel = "tq_dw_conv"
    return Variant(kernel, "tq_dw_params",
                   fields=tuple((k, int(fields[k])) for k in _PARAMS) + (("channels", channels),),
                   arrays=(weights, requant), pointer_fields=("weights", "requant"),
                   counts=(-(-channels // GROUP) * 2 * taps, channels * REQUANT_SIZE))
