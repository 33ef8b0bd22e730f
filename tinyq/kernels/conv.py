"""Specialised conv kernels: choice and constant layout (C in firmware_stub/runtime/tq_conv.c).

Every CONV_2D becomes a matrix product of output pixels by output channels, two of each per step (2x2 block,
SMLAD on cores with the DSP extension): a 1x1 convolution without padding whose input depth is a multiple of 4
(zero point folded) reads its input in place (`tq_conv2d_1x1`); any other gathers two pixels at a time into an
int16 scratch (`tq_conv2d_im2col`). The weights and requantization constants are laid out once here."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .base import ConstArray, Variant

PARAMS_TYPE = "tq_conv_mm_params"
SHIFT_RANGE = (-31, 30)  # the fast requantization's shifts, left up to 30 and right up to 31
# tq_conv_mm_params' integer fields, in struct order (k_padded is computed here).
FIELDS = ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h", "stride_w", "dil_h",
          "dil_w", "pad_h", "pad_w", "k_padded", "input_offset", "output_offset", "act_min", "act_max")


def padded_depth(fields: Mapping[str, int]) -> int:
    """Products per output (k_h * k_w * in_c), rounded up to a multiple of 4 for the 4-byte weight groups."""
    k = fields["k_h"] * fields["k_w"] * fields["in_c"]
    return (k + 3) // 4 * 4


def pair_weights(weights: np.ndarray, out_c: int, k_padded: int) -> np.ndarray:
    """[out_c][K] int8 weights as the kernels stream them: output channels in pairs (a zero channel completing an
    odd count), K zero-padded to k_padded, and per pair and group of 4 along K the first channel's 4 bytes then
    the second's: [(out_c + 1) / 2][k_padded / 4][2][4]."""
    w = weights.reshape(out_c, -1).astype(np.int8)
    pairs = (out_c + 1) // 2
    full = np.zeros((pairs * 2, k_padded), dtype=np.int8)
    full[:out_c, :w.shape[1]] = w
    return np.ascontiguousarray(full.reshape(pairs, 2, k_padded // 4, 4).transpose(0, 2, 1, 3)).reshape(-1)


def requant_table(bias: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Per output channel the kernels' requantization constants, read together: bias, multiplier, left shift,
    right shift ([out_c][4] int32; the shift > 0 is a left shift, < 0 a right one)."""
    shift = shift.astype(np.int32)
    table = np.stack([bias.astype(np.int32), mult.astype(np.int32), np.maximum(shift, 0), np.maximum(-shift, 0)],
                     axis=1)
    return np.ascontiguousarray(table, dtype=np.int32).reshape(-1)


def is_pointwise(fields: Mapping[str, int]) -> bool:
    """A 1x1 convolution without padding over whole 4-byte groups, its input zero point folded into the bias:
    each output pixel is one run of input, multiplied in place."""
    return (fields["k_h"] == 1 and fields["k_w"] == 1 and fields["pad_h"] == 0 and fields["pad_w"] == 0
            and fields["in_c"] % 4 == 0 and fields["input_offset"] == 0)


def choose(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str) -> Variant | None:
    """The 2x2-block matrix-product variant, or None (generic kernel) when the requantization's multipliers or
    shifts are outside what its division-free form handles exactly."""
    mult, shift = arrays["mult"].values, arrays["shift"].values
    if (mult < 0).any() or (shift < SHIFT_RANGE[0]).any() or (shift > SHIFT_RANGE[1]).any():
        return None
    out_c = fields["out_c"]
    k_padded = padded_depth(fields)
    packed = pair_weights(arrays["weights"].values, out_c, k_padded)
    weights = ConstArray(f"{name}_weights_mm", "int8_t", packed)
    requant = ConstArray(f"{name}_requant", "int32_t",
                         requant_table(arrays["bias"].values, mult, arrays["shift"].values))
    values = dict(fields, k_padded=k_padded)
    pointwise = is_pointwise(fields)
    return Variant(kernel="tq_conv2d_1x1" if pointwise else "tq_conv2d_im2col", params_type=PARAMS_TYPE,
                   fields=tuple((k, int(values[k])) for k in FIELDS),
                   arrays=(weights, requant), pointer_fields=("weights", "requant"),
                   counts=((out_c + 1) // 2 * 2 * k_padded, 4 * out_c),
                   scratch_bytes=0 if pointwise else 2 * k_padded * 2)
