"""Why two runtimes part on one output element: that element recomputed in exact integer arithmetic by its
family's rule (engine/ops), and each runtime's value matched against the rounding rules.

The first op whose output differs between two runtimes had equal inputs in both, so its parameters and the
inputs determine the accumulator exactly. What is left to differ is the rounding: this module computes the
element under each rounding rule int8 runtimes are known to use (TFLite's double rounding, single rounding,
XNNPACK's float32 requantization, plain rounding of the exact real value) and says which rule each runtime's
value matches. A value no rule yields means the runtime's constants or kernel for that op differ from the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .fixedpoint import round_half_away
from .graph import Graph, Operator
from .ops.base import KernelCall
from .ops.rounding import DOUBLE, SINGLE


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
    generic = call is not None and call.rule is not None and call.kernel == call.rule.kernel
    recompute = call.rule.recompute if generic else None  # a specialised call's arrays are laid out for its kernel
    if recompute is None:
        return Explanation(f"{where}: {listed}. Not explained: tinyq has no exact model of {op.name}, only its "
                           f"location.", coords, None, None, values, tuple((n, ()) for n, _ in values))
    el = recompute(graph, op, call, inputs, flat)
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


@dataclass(frozen=True)
class RoundingUse:
    """A runtime whose values, on elements where TFLite's two requantization rules give different results,
    matched `rule` ("double" or "single") and not the other, in the ops named."""

    runtime: str
    rule: str
    ops: tuple[str, ...]

    def text(self) -> str:
        return f"{self.runtime} follows {self.rule} rounding in {', '.join(self.ops)}"


def rounding_followed(items) -> tuple[RoundingUse, ...]:
    """Which rule each runtime followed, from (op name, Explanation) pairs: only elements where a runtime's value
    matches exactly one of the double- and single-rounding rules count."""
    seen: set[tuple[str, str, str]] = set()
    for op_name, ex in items:
        for runtime, rules in ex.matches:
            double = DOUBLE in rules
            single = any(r.startswith(SINGLE) for r in rules)
            if double != single:
                seen.add((runtime, "double" if double else "single", op_name))
    keys = sorted({(runtime, rule) for runtime, rule, _ in seen})
    return tuple(RoundingUse(runtime, rule, tuple(sorted(op for r, u, op in seen if (r, u) == (runtime, rule))))
                 for runtime, rule in keys)
