"""The op table: one entry per TFLite builtin operator tinyq knows, keyed by the BuiltinOperator enum, as TFLM's
kernel registration is. An entry joins TFLM's registration (its MicroMutableOpResolver method) with the C
engine's family definition (ops/<family>.py: the reader's rules, lowering, kernel choice, recomputation, MACs).
The reader, the lowering driver, explain, the op resolver, pre-flight and the op listings all read this table.

Adding an op family: its module here, its C under firmware_stub/runtime/<family>/, its test, and its module in
FAMILIES below.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from ..graph import Graph, Operator
from ..schema import op_name
from . import (activation, concat_pad, conv, depthwise, elementwise, fully_connected, layout, pool, quantize,
               reduce, resize, shape, softmax, squared_difference, transpose_conv)
from .base import OpDef
from .tflm import TFLM_METHODS

FAMILIES = (conv, depthwise, fully_connected, pool, elementwise, activation, quantize, softmax, reduce, shape,
            concat_pad, resize, transpose_conv, squared_difference, layout)


@dataclass(frozen=True)
class OpEntry:
    """One builtin op: its schema name, TFLM's resolver method (None: TFLM has no kernel), and the C engine's
    definition (None: only TFLM runs it)."""

    code: int
    name: str
    tflm_method: str | None
    op: OpDef | None

    @property
    def c_engine(self) -> bool:
        return self.op is not None and (self.op.lower is not None or self.op.alias)


def _table() -> dict[int, OpEntry]:
    defs: dict[int, OpDef] = {}
    for family in FAMILIES:
        for d in family.OPS:
            if d.code in defs:
                raise RuntimeError(f"{op_name(d.code)} is defined by two families: {defs[d.code].family}, {d.family}")
            defs[d.code] = d
    codes = sorted(set(defs) | set(TFLM_METHODS))
    return {c: OpEntry(c, op_name(c), TFLM_METHODS.get(c), defs.get(c)) for c in codes}


TABLE = MappingProxyType(_table())


def definition(code: int) -> OpDef | None:
    """The C engine's definition of a builtin op, or None."""
    entry = TABLE.get(code)
    return entry.op if entry is not None else None


def tflm_method(code: int) -> str | None:
    """TFLM's MicroMutableOpResolver Add method for a builtin op, or None where TFLM has no kernel for it."""
    entry = TABLE.get(code)
    return entry.tflm_method if entry is not None else None


def c_engine_ops() -> tuple[str, ...]:
    """Names of the builtin ops the C engine runs (aliases included), sorted."""
    return tuple(sorted(e.name for e in TABLE.values() if e.c_engine))


def op_macs(graph: Graph, op: Operator) -> int:
    """Multiply-accumulates of one op (0 for ops that multiply nothing or that the C engine does not know)."""
    d = definition(op.code)
    return d.macs(graph, op) if d is not None else 0


def macs(graph: Graph) -> int:
    """Multiply-accumulates of one inference."""
    return sum(op_macs(graph, op) for op in graph.operators)
