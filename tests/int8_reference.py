"""TFLite's int8 integer arithmetic in Python, op by op, to check the C engine's outputs exactly.

Each op is recomputed from the generic (Optimize.SIZE) lowering of the graph, i.e. TFLM's own parameters
(multipliers, shifts, offsets, activation bounds). Convolutions, fully connected, pools, same-shape ADD and
softmax reuse their family's exact recomputation (KernelRule.recompute, what `tinyq diff` explains with), which
recomputes any one output element under each rounding rule (the one of `rounding` is taken);
the other families are written out here with tinyq.engine.fixedpoint's MultiplyByQuantizedMultiplier under that rule.
"""

from __future__ import annotations

import numpy as np

from tinyq.engine import Graph, KernelCall, Optimize, Rounding, lower, read_graph
from tinyq.engine.ops.rounding import SINGLE

_EXPLAINED = ("tq_conv2d", "tq_depthwise_conv2d", "tq_fully_connected", "tq_max_pool", "tq_average_pool", "tq_add",
              "tq_softmax")
_MOVED = ("tq_strided_copy", "tq_gather")  # the layout family's copies, recomputed by its rule


def _fields(call: KernelCall) -> dict[str, int]:
    return {k: int(v) for k, v in call.fields if v.lstrip("-").isdigit()}


def _array(call: KernelCall, suffix: str) -> np.ndarray:
    return next(a.values for a in call.arrays if a.name.endswith(suffix))


def _clamp(v: int, lo: int = -128, hi: int = 127) -> int:
    return max(lo, min(hi, v))


def _binary(call: KernelCall, a: np.ndarray, b: np.ndarray, out_shape, rounding: Rounding) -> np.ndarray:
    f = _fields(call)
    dims = [f[f"n{k}"] for k in range(4)]
    a4 = a.reshape(-1)
    b4 = b.reshape(-1)
    out = np.empty(int(np.prod(dims)), np.int8)
    mbqm = rounding.multiply
    flat = 0
    for idx in np.ndindex(*dims):
        x = int(a4[sum(i * f[f"a{k}"] for k, i in enumerate(idx))])
        y = int(b4[sum(i * f[f"b{k}"] for k, i in enumerate(idx))])
        if call.kernel in ("tq_add_broadcast", "tq_sub"):
            sx = mbqm((x + f["in1_offset"]) << f["left_shift"], f["in1_mult"], f["in1_shift"])
            sy = mbqm((y + f["in2_offset"]) << f["left_shift"], f["in2_mult"], f["in2_shift"])
            total = sx + sy if call.kernel == "tq_add_broadcast" else sx - sy
            v = _clamp(mbqm(total, f["out_mult"], f["out_shift"]) + f["out_offset"], f["act_min"], f["act_max"])
        elif call.kernel == "tq_mul":
            product = (x + f["in1_offset"]) * (y + f["in2_offset"])
            v = _clamp(mbqm(product, f["out_mult"], f["out_shift"]) + f["out_offset"], f["act_min"], f["act_max"])
        elif call.kernel == "tq_maximum":
            v = max(x, y)
        else:
            v = min(x, y)
        out[flat] = v
        flat += 1
    return out.reshape(out_shape)


def _mean(call: KernelCall, x: np.ndarray, out_shape, rounding: Rounding) -> np.ndarray:
    f = _fields(call)
    v = x.astype(np.int64).reshape(f["outer"], f["count"], f["inner"]).sum(axis=1) - f["input_zp_sum"]
    out = [_clamp(rounding.multiply(int(s), f["mult"], f["shift"]) + f["output_offset"])
           for s in v.reshape(-1)]
    return np.array(out, np.int8).reshape(out_shape)


def _transpose_conv(call: KernelCall, x: np.ndarray, out_shape, rounding: Rounding) -> np.ndarray:
    """TFLM's int8 transpose conv: every input pixel scattered through the filter into int32 sums, then the bias
    and each channel's requantization."""
    f = _fields(call)
    w = _array(call, "_weights").astype(np.int64).reshape(f["out_c"], f["k_h"], f["k_w"], f["in_c"])
    x = x.reshape(f["in_h"], f["in_w"], f["in_c"]).astype(np.int64) + f["input_offset"]
    acc = np.zeros((f["out_h"], f["out_w"], f["out_c"]), np.int64)
    for iy in range(f["in_h"]):
        for ix in range(f["in_w"]):
            for ky in range(f["k_h"]):
                oy = iy * f["stride_h"] - f["pad_h"] + ky
                for kx in range(f["k_w"]):
                    ox = ix * f["stride_w"] - f["pad_w"] + kx
                    if 0 <= oy < f["out_h"] and 0 <= ox < f["out_w"]:
                        acc[oy, ox] += w[:, ky, kx, :] @ x[iy, ix]
    acc += _array(call, "_bias").astype(np.int64)
    mult, shift = _array(call, "_mult"), _array(call, "_shift")
    out = np.empty(acc.shape, np.int8)
    for idx in np.ndindex(*acc.shape):
        c = idx[2]
        out[idx] = _clamp(rounding.multiply(int(acc[idx]), int(mult[c]), int(shift[c])) +
                          f["output_offset"], f["act_min"], f["act_max"])
    return out.reshape(out_shape)


def _movement(g: Graph, call: KernelCall, values: dict[int, np.ndarray], out_shape) -> np.ndarray:
    op = g.operators[call.op_index]
    x = values[op.inputs[0]]
    if call.kernel == "tq_pad":
        paddings = g.tensors[op.inputs[1]].data.reshape(-1, 2)
        return np.pad(x, [tuple(int(v) for v in p) for p in paddings], constant_values=_fields(call)["value"])
    if call.kernel == "tq_concatenation":
        axis = op.options.axis % len(out_shape)
        return np.concatenate([values[i] for i in op.inputs], axis=axis)
    if call.kernel == "tq_resize_nearest":  # TFLM's source index: floor(out * in / out_size), no corner options
        _, in_h, in_w, _ = x.shape
        _, out_h, out_w, _ = out_shape
        rows = [min(y * in_h // out_h, in_h - 1) for y in range(out_h)]
        cols = [min(c * in_w // out_w, in_w - 1) for c in range(out_w)]
        return x[:, rows][:, :, cols]
    raise KeyError(call.kernel)


def _rule_value(element, rounding: Rounding) -> int:
    """The recomputed element under `rounding`: the first rule (double rounding, or the only one of an op that
    does not requantize), or the one named for single rounding."""
    if rounding is Rounding.SINGLE:
        for rule in element.rules:
            if rule.name.startswith(SINGLE):
                return rule.value
    return element.rules[0].value


def run(tflite: bytes, x: np.ndarray, rounding: Rounding = Rounding.DOUBLE) -> np.ndarray:
    """The model's int8 output for one int8 input, op by op in exact integer arithmetic under `rounding`."""
    g = read_graph(tflite)
    lowered = lower(g, Optimize.SIZE, rounding)
    calls: dict[int, list[KernelCall]] = {}
    for c in lowered.calls:
        calls.setdefault(c.op_index, []).append(c)
    values = {t.index: t.data for t in g.tensors if t.is_constant}
    values[g.inputs[0]] = np.asarray(x, np.int8).reshape(g.tensors[g.inputs[0]].shape)
    for op in g.operators:
        out_t = g.tensors[op.outputs[0]]
        if op.index not in calls:  # RESHAPE and the other aliases
            values[op.outputs[0]] = values[op.inputs[0]].reshape(out_t.shape)
            continue
        call = calls[op.index][0]
        if call.kernel in _MOVED:  # every call (SPLIT makes one per output): each byte is the input byte it names
            for c in calls[op.index]:
                t = g.tensors[c.output]
                values[c.output] = np.array([c.rule.recompute(g, op, c, values, flat).rules[0].value
                                             for flat in range(t.size)], np.int8).reshape(t.shape)
            continue
        if call.kernel in _EXPLAINED:
            out = np.array([_rule_value(call.rule.recompute(g, op, call, values, flat), rounding)
                            for flat in range(out_t.size)], np.int8)
        elif call.kernel == "tq_lut":
            out = _array(call, "_table")[values[op.inputs[0]].astype(np.int64).reshape(-1) + 128]
        elif call.kernel in ("tq_add_broadcast", "tq_sub", "tq_mul", "tq_maximum", "tq_minimum"):
            out = _binary(call, values[op.inputs[0]], values[op.inputs[1]], out_t.shape, rounding)
        elif call.kernel == "tq_mean":
            out = _mean(call, values[op.inputs[0]], out_t.shape, rounding)
        elif call.kernel == "tq_transpose_conv":
            out = _transpose_conv(call, values[op.inputs[2]], out_t.shape, rounding)
        else:
            out = _movement(g, call, values, out_t.shape)
        values[op.outputs[0]] = np.asarray(out, np.int8).reshape(out_t.shape)
    return values[g.outputs[0]].reshape(-1)
