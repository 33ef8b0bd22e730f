"""Why two runtimes part on one output element: that element recomputed in exact integer arithmetic.

The first op whose output differs between two runtimes had equal inputs in both, so its parameters and the
inputs determine the accumulator exactly. What is left to differ is the rounding: this module computes the
element under each rounding rule int8 runtimes are known to use (TFLite's double rounding, single rounding,
XNNPACK's float32 requantization, plain rounding of the exact real value) and says which rule each runtime's
value matches. A value no rule yields means the runtime's constants or kernel for that op differ from the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .fixedpoint import (INT32_MAX, mul_by_quantized_multiplier, rounding_divide_by_pot,
                         saturating_rounding_mul_by_pot, srdhm, trunc_div, wrap32)
from .graph import Graph, Operator
from .lower import KernelCall, round_half_away



@dataclass(frozen=True)
class Rule:
    """One way of turning the exact arithmetic into an int8: its name and the value it gives here."""

    name: str
    value: int


@dataclass(frozen=True)
class Explanation:
    """The first differing element of an op, recomputed: where, the integer terms, the exact value, each
    runtime's value and the rules it matches, and one sentence saying why they part."""

    text: str
    element: tuple[int, ...]
    accumulator: int | None
    exact: float | None
    values: tuple[tuple[str, int], ...]
    matches: tuple[tuple[str, tuple[str, ...]], ...]

    def to_json(self) -> dict:
        return {"text": self.text, "element": list(self.element), "accumulator": self.accumulator,
                "exact": self.exact, "values": dict(self.values),
                "rules": {name: list(rules) for name, rules in self.matches}}


# ---- the rounding rules runtimes differ by (the primitives are tinyq/fixedpoint.py) ----

def multiply_double_rounding(x: int, multiplier: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier as TFLM and tinyq's C run it: SRDHM, then a rounding shift."""
    return mul_by_quantized_multiplier(x, multiplier, shift)


def multiply_single_rounding(x: int, multiplier: int, shift: int) -> int:
    """The TFLITE_SINGLE_ROUNDING variant: one 64-bit product, one round-half-up shift."""
    total = 31 - shift
    return (x * multiplier + (1 << (total - 1))) >> total


def _rint_f32(value: float) -> int:
    return int(np.rint(np.float32(value)))


# ---- per-op recomputation ----

@dataclass(frozen=True)
class _Element:
    """What the recomputation of one element found: the rules' values, the exact value and a description."""

    coords: tuple[int, ...]
    rules: tuple[Rule, ...]
    exact: Fraction | float | None
    accumulator: int | None
    detail: str


def _fields(call: KernelCall) -> dict[str, int]:
    return {k: int(v) for k, v in call.fields if v.lstrip("-").isdigit()}


def _array(call: KernelCall, suffix: str) -> np.ndarray:
    return next(a.values for a in call.arrays if a.name.endswith(suffix)).astype(np.int64)


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def _requantize_rules(acc: int, mult: int, shift: int, scale: Fraction, zp: int, lo: int, hi: int,
                      ) -> tuple[tuple[Rule, ...], Fraction]:
    exact = acc * scale + zp
    rules = (
        Rule("double rounding (TFLite reference, TFLM, tinyq C)",
             _clamp(multiply_double_rounding(acc, mult, shift) + zp, lo, hi)),
        Rule("single rounding (TFLITE_SINGLE_ROUNDING)",
             _clamp(multiply_single_rounding(acc, mult, shift) + zp, lo, hi)),
        Rule("float32 requantization, ties to even (XNNPACK)",
             _clamp(_rint_f32(np.float32(acc) * np.float32(float(scale))) + zp, lo, hi)),
        Rule("exact value, ties away from zero", _clamp(round_half_away(float(exact)), lo, hi)),
    )
    return rules, exact


def _scale(graph: Graph, op: Operator, channel: int) -> Fraction:
    """in_scale * weight_scale[channel] / out_scale, exactly, from the float32 scales of the model."""
    s_in = graph.tensors[op.inputs[0]].scales[0]
    w = graph.tensors[op.inputs[1]].scales
    s_out = graph.tensors[op.outputs[0]].scales[0]
    return Fraction(float(np.float32(s_in))) * Fraction(float(np.float32(w[channel if len(w) > 1 else 0]))) / \
        Fraction(float(np.float32(s_out)))


def _conv(graph: Graph, op: Operator, call: KernelCall, x: np.ndarray, flat: int) -> _Element:
    f = _fields(call)
    out_w, out_c = f["out_w"], f["out_c"]
    oy, ox, oc = flat // (out_w * out_c), (flat // out_c) % out_w, flat % out_c
    x = x.reshape(f["in_h"], f["in_w"], f["in_c"]).astype(np.int64) + f["input_offset"]
    depthwise = call.kernel == "tq_depthwise_conv2d"
    w = _array(call, "_weights")
    w = w.reshape(f["k_h"], f["k_w"], out_c) if depthwise else w.reshape(out_c, f["k_h"], f["k_w"], f["in_c"])
    acc = 0
    for ky in range(f["k_h"]):
        iy = oy * f["stride_h"] - f["pad_h"] + f["dil_h"] * ky
        for kx in range(f["k_w"]):
            ix = ox * f["stride_w"] - f["pad_w"] + f["dil_w"] * kx
            if 0 <= iy < f["in_h"] and 0 <= ix < f["in_w"]:
                if depthwise:
                    acc += int(w[ky, kx, oc]) * int(x[iy, ix, oc // f["depth_multiplier"]])
                else:
                    acc += int(np.dot(w[oc, ky, kx], x[iy, ix]))
    bias = int(_array(call, "_bias")[oc])
    acc += bias
    mult, shift = int(_array(call, "_mult")[oc]), int(_array(call, "_shift")[oc])
    rules, exact = _requantize_rules(acc, mult, shift, _scale(graph, op, oc), f["output_offset"], f["act_min"],
                                     f["act_max"])
    return _Element((0, oy, ox, oc), rules, exact, acc,
                    f"accumulator {acc} (bias {bias} included), multiplier {mult} x 2^{shift} for "
                    f"channel {oc}")


def _fully_connected(graph: Graph, op: Operator, call: KernelCall, x: np.ndarray, flat: int) -> _Element:
    f = _fields(call)
    w = _array(call, "_weights").reshape(f["out_depth"], f["in_depth"])
    bias = int(_array(call, "_bias")[flat])
    acc = int(np.dot(w[flat], x.reshape(-1).astype(np.int64))) + bias
    mult, shift = int(_array(call, "_mult")[flat]), int(_array(call, "_shift")[flat])
    rules, exact = _requantize_rules(acc, mult, shift, _scale(graph, op, flat), f["output_offset"], f["act_min"],
                                     f["act_max"])
    return _Element((0, flat), rules, exact, acc,
                    f"accumulator {acc} (bias {bias} with the input zero point folded in), multiplier {mult} x "
                    f"2^{shift}")


def _add(graph: Graph, op: Operator, call: KernelCall, a: np.ndarray, b: np.ndarray, flat: int) -> _Element:
    f = _fields(call)
    xa, xb = int(a.reshape(-1)[flat]), int(b.reshape(-1)[flat])
    sa_, sb_ = (xa + f["in1_offset"]) << f["left_shift"], (xb + f["in2_offset"]) << f["left_shift"]
    lo, hi, zp = f["act_min"], f["act_max"], f["out_offset"]

    def pipeline(mul) -> int:
        s = mul(sa_, f["in1_mult"], f["in1_shift"]) + mul(sb_, f["in2_mult"], f["in2_shift"])
        return _clamp(mul(s, f["out_mult"], f["out_shift"]) + zp, lo, hi)

    t1, t2, to = (graph.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    exact = (Fraction(float(np.float32(t1.scales[0]))) * (xa - t1.zero_points[0]) +
             Fraction(float(np.float32(t2.scales[0]))) * (xb - t2.zero_points[0])) / \
        Fraction(float(np.float32(to.scales[0]))) + zp
    rules = (Rule("double rounding (TFLite reference, TFLM, tinyq C)", pipeline(multiply_double_rounding)),
             Rule("single rounding (TFLITE_SINGLE_ROUNDING)", pipeline(multiply_single_rounding)),
             Rule("exact value, ties away from zero", _clamp(round_half_away(float(exact)), lo, hi)))
    return _Element(tuple(int(v) for v in np.unravel_index(flat, to.shape)), rules, exact, None,
                    f"inputs {xa} and {xb}, each rescaled with {f['left_shift']} bits of headroom")


def _pool(graph: Graph, op: Operator, call: KernelCall, x: np.ndarray, flat: int) -> _Element:
    f = _fields(call)
    c, out_w = f["channels"], f["out_w"]
    oy, ox, ch = flat // (out_w * c), (flat // c) % out_w, flat % c
    x = x.reshape(f["in_h"], f["in_w"], c).astype(np.int64)
    y0, x0 = oy * f["stride_h"] - f["pad_h"], ox * f["stride_w"] - f["pad_w"]
    window = x[max(0, y0):min(f["in_h"], y0 + f["k_h"]), max(0, x0):min(f["in_w"], x0 + f["k_w"]), ch]
    lo, hi = f["act_min"], f["act_max"]
    coords = (0, oy, ox, ch)
    if call.kernel == "tq_max_pool":
        top = int(window.max())
        return _Element(coords, (Rule("window maximum (no rounding)", _clamp(top, lo, hi)),), None, None,
                        f"window of {window.size} values, maximum {top}")
    total, count = int(window.sum()), int(window.size)
    exact = Fraction(total, count)
    rules = (Rule("ties away from zero (TFLite reference, TFLM, tinyq C)",
                  _clamp(round_half_away(float(exact)), lo, hi)),
             Rule("ties to even", _clamp(round(exact), lo, hi)),
             Rule("truncation toward zero", _clamp(trunc_div(total, count), lo, hi)),
             Rule("float32 scale 1/count, ties to even (XNNPACK)",
                  _clamp(_rint_f32(np.float32(total) * np.float32(1.0 / count)), lo, hi)))
    return _Element(coords, rules, exact, total, f"window sum {total} over {count} values")


# Softmax in gemmlowp fixed point (TFLite's reference int8 softmax, as firmware_stub/runtime runs it).
_EXP_BARREL = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)


def _exp_neg_quarter(a: int) -> int:
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4_over_4 = saturating_rounding_mul_by_pot(srdhm(x2, x2), -2)
    poly = saturating_rounding_mul_by_pot(srdhm(x4_over_4 + x3, 715827883) + x2, -1)
    return 1895147668 + srdhm(1895147668, x + poly)


def _exp_on_negative_values(a: int, integer_bits: int) -> int:
    fractional = 31 - integer_bits
    quarter = 1 << (fractional - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_neg_quarter(saturating_rounding_mul_by_pot(a_mod, integer_bits))
    remainder = a_mod - a
    for k, m in enumerate(_EXP_BARREL):
        e = k - 2
        if integer_bits > e and remainder & (1 << (fractional + e)):
            result = srdhm(result, m)
    return INT32_MAX if a == 0 else result


def _one_over_one_plus_x(a: int) -> int:
    s = a + INT32_MAX
    half = trunc_div(s + (1 if s >= 0 else -1), 2)
    x = 1515870810 + srdhm(half, -1010580540)
    for _ in range(3):
        x = x + saturating_rounding_mul_by_pot(srdhm(x, (1 << 29) - srdhm(half, x)), 2)
    return saturating_rounding_mul_by_pot(x, 1)


def softmax_fixed_point(row: np.ndarray, multiplier: int, left_shift: int, diff_min: int,
                        integer_bits: int = 5, accum_bits: int = 12) -> list[int]:
    """One softmax row in gemmlowp fixed point, int8 in, int8 out (scale 1/256, zero point -128)."""
    top = int(row.max())
    exps = []
    for v in row.astype(np.int64):
        diff = int(v) - top
        exps.append(None if diff < diff_min else
                    _exp_on_negative_values(srdhm(wrap32(diff << left_shift), multiplier), integer_bits))
    total = sum(saturating_rounding_mul_by_pot(e, -accum_bits) for e in exps if e is not None)
    headroom = 32 - total.bit_length() if total > 0 else 32
    scale = _one_over_one_plus_x(wrap32(((total << headroom) & 0xFFFFFFFF) - (1 << 31)))
    bits_over_unit = accum_bits - headroom
    return [-128 if e is None else
            _clamp(rounding_divide_by_pot(srdhm(scale, e), bits_over_unit + 31 - 8) - 128, -128, 127)
            for e in exps]


def _softmax(graph: Graph, op: Operator, call: KernelCall, x: np.ndarray, flat: int) -> _Element:
    f = _fields(call)
    depth = f["depth"]
    r, c = flat // depth, flat % depth
    row = x.reshape(-1, depth)[r]
    fixed = softmax_fixed_point(row, f["input_multiplier"], f["input_left_shift"], f["diff_min"])[c]
    t_in = graph.tensors[op.inputs[0]]
    beta = op.options.beta
    logits = beta * float(np.float32(t_in.scales[0])) * (row.astype(np.float64) - row.max())
    probs = np.exp(logits) / np.exp(logits).sum()
    exact = float(probs[c]) * 256.0 - 128.0
    rules = (Rule("fixed point, gemmlowp exp and reciprocal (TFLite reference, TFLM, tinyq C)", fixed),
             Rule("float, ties away from zero", _clamp(round_half_away(exact), -128, 127)),
             Rule("float, ties to even", _clamp(int(np.rint(exact)), -128, 127)))
    return _Element((r, c), rules, exact, None, f"row of {depth} inputs, maximum {int(row.max())}")


def _recompute(graph: Graph, op: Operator, call: KernelCall, inputs: dict[int, np.ndarray], flat: int) -> _Element:
    x = inputs[op.inputs[0]]
    if call.kernel in ("tq_conv2d", "tq_depthwise_conv2d"):
        return _conv(graph, op, call, x, flat)
    if call.kernel == "tq_fully_connected":
        return _fully_connected(graph, op, call, x, flat)
    if call.kernel in ("tq_max_pool", "tq_average_pool"):
        return _pool(graph, op, call, x, flat)
    if call.kernel == "tq_add":
        return _add(graph, op, call, x, inputs[op.inputs[1]], flat)
    if call.kernel == "tq_softmax":
        return _softmax(graph, op, call, x, flat)
    raise KeyError(call.kernel)


def _num(v) -> str:
    return f"{float(v):.6f}".rstrip("0").rstrip(".")


def explain(graph: Graph, op: Operator, call: KernelCall | None, inputs: dict[int, np.ndarray], flat: int,
            values: tuple[tuple[str, int], ...]) -> Explanation:
    """Explain why runtimes gave `values` (runtime name, int8) for element `flat` of `op`'s output, given the
    op's int8 inputs (equal in every runtime, by tensor index) and its lowering (None: not explainable)."""
    shape = graph.tensors[op.outputs[0]].shape
    coords = tuple(int(v) for v in np.unravel_index(flat, shape)) if shape else (flat,)
    where = f"op #{op.index} {op.name}, output element {list(coords)}"
    listed = ", ".join(f"{name} {v}" for name, v in values)
    try:
        if call is None:
            raise KeyError(op.name)
        el = _recompute(graph, op, call, inputs, flat)
    except KeyError:
        return Explanation(f"{where}: {listed}. Not explained: tinyq has no exact model of {op.name}, only its "
                           f"location.", coords, None, None, values, tuple((n, ()) for n, _ in values))
    matches = tuple((name, tuple(r.name for r in el.rules if r.value == v)) for name, v in values)
    parts = []
    for (name, v), (_, rules) in zip(values, matches):
        parts.append(f"{name} {v} ({'; '.join(rules)})" if rules else
                     f"{name} {v}, which no rounding of the model's parameters gives (those give "
                     f"{', '.join(sorted({str(r.value) for r in el.rules}))}): its constants or kernel for this "
                     f"op differ from the model's")
    exact_text = "" if el.exact is None else f"; exact value {_num(el.exact)}"
    text = f"{where}: {el.detail}{exact_text}. {'; '.join(parts)}."
    if all(rules for _, rules in matches) and el.exact is not None and len(values) == 2:
        tie = math.floor(float(el.exact)) + 0.5
        dist = abs(float(el.exact) - tie)
        (name_a, va), (name_b, vb) = values
        up, down = (name_a, name_b) if va > vb else (name_b, name_a)
        if dist < 0.05 and abs(va - vb) == 1:
            nearest = round_half_away(float(el.exact))
            right = next((name for name, v in values if v == nearest), None)
            text += (f" The exact value lies {dist:.2g} from the tie at {tie:g}: {up} rounds this near-tie up, "
                     f"{down} down" + (f"; {right} gives the exact value's nearest integer." if right else "."))
        else:
            text += f" {up} and {down} follow different arithmetic here, not just a different tie-break."
    exact = None if el.exact is None else float(el.exact)
    return Explanation(text, el.coords, el.accumulator, exact, values, matches)
