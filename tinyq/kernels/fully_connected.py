"""Specialised fully connected kernels: choice and constant layout (C in firmware_stub/runtime/tq_fc.c)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .base import ConstArray, Variant

ROWS = 4  # output rows per pass of tq_fc_interleaved4


def interleave(weights: np.ndarray, rows: int = ROWS) -> np.ndarray:
    """[out][in] int8 weights in tq_fc_interleaved4's order: per group of `rows` output rows, the rows' 4 weights
    of each 4 input columns one after another, then their in % 4 last weights row after row; the out % rows last
    rows unchanged. Same values, same count."""
    out_depth, in_depth = weights.shape
    k4 = in_depth - in_depth % 4
    full = out_depth - out_depth % rows
    groups = weights[:full].reshape(full // rows, rows, in_depth)
    blocks = groups[:, :, :k4].reshape(full // rows, rows, k4 // 4, 4).transpose(0, 2, 1, 3)
    body = np.concatenate([blocks.reshape(full // rows, rows * k4),
                           groups[:, :, k4:].reshape(full // rows, rows * (in_depth - k4))], axis=1)
    return np.concatenate([body.reshape(-1), weights[full:].reshape(-1)])


def choose(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str) -> Variant | None:
    """tq_fc_interleaved4, its weights interleaved and packed into aligned int32 words (its exact requantization needs non-negative multipliers and shifts in [-31, 30]),
    else None for the generic kernel."""
    mult, shift = arrays["mult"].values, arrays["shift"].values
    if (mult < 0).any() or (shift < -31).any() or (shift > 30).any():
        return None
    in_depth, out_depth = fields["in_depth"], fields["out_depth"]
    w = arrays["weights"].values.reshape(out_depth, in_depth)
    data = interleave(w).astype(np.int8).tobytes()
    words = np.frombuffer(data + bytes(-len(data) % 4), dtype="<i4").astype(np.int32)
    weights = ConstArray(f"{name}_weights_il4", "int32_t", words)
    names = ("rows", "in_depth", "out_depth", "output_offset", "act_min", "act_max")
    return Variant("tq_fc_interleaved4", "tq_fc_il4_params", tuple((k, int(fields[k])) for k in names),
                   (weights, arrays["bias"], arrays["mult"], arrays["shift"]), ("weights", "bias", "mult", "shift"),
                   ((in_depth * out_depth + 3) // 4, out_depth, out_depth, out_depth))
