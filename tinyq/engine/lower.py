"""The lowering driver: each op of a Graph becomes a kernel call with every integer parameter precomputed, by the
family its op table entry names (engine/ops); with Optimize.SPEED the generic call is then replaced by its
family's specialised variant where one applies. Nothing here knows an op or a kernel by name."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from ..errors import UnsupportedOpError
from .fixedpoint import Rounding
from .graph import Graph, Operator
from .ops import c_engine_ops, definition
from .ops.base import ConstArray, KernelCall
from .ops.context import INT32_RANGE, LowerContext


class Optimize(str, enum.Enum):
    """What kernel choice favours: SPEED picks a specialised kernel per layer where one exists (weights laid out
    for it, scratch in the arena); SIZE keeps the generic portable kernels, the smallest code."""

    SPEED = "speed"
    SIZE = "size"


@dataclass(frozen=True)
class Lowered:
    """The kernel calls in order, and the tensors that are only another name for another tensor (RESHAPE,
    SQUEEZE, EXPAND_DIMS)."""

    calls: tuple[KernelCall, ...]
    aliases: tuple[tuple[int, int], ...]  # (alias tensor, tensor it names)


def _alias(ctx: LowerContext, op: Operator) -> tuple[int, int]:
    """(output, input) of an op that only renames its input; refused where size or quantization change."""
    src = ctx.int8_act(op, op.inputs[0], "input")
    dst = ctx.int8_act(op, op.outputs[0], "output")
    if src.size != dst.size or src.scales != dst.scales or src.zero_points != dst.zero_points:
        raise ctx.fail(op, "changes size or quantization; only a change of shape can be an alias")
    return op.outputs[0], op.inputs[0]


def specialize(ctx: LowerContext, op: Operator, generic: KernelCall) -> KernelCall:
    """The generic call (its bounds and overflow proven) replaced by its family's specialised variant, when one
    applies: same tensors in and out, so the proof carries over to the sums it reorders; its own constant arrays
    must hold exactly what its indexing reaches."""
    rule = generic.rule
    if rule is None or rule.choose is None:
        return generic
    fields = {k: int(v) for k, v in generic.fields if k not in rule.pointer_fields}
    arrays: dict[str, ConstArray] = dict(zip(rule.pointer_fields, generic.arrays))
    variant = rule.choose(fields, arrays, f"op{op.index}", ctx.rounding)
    if variant is None:
        return generic
    for field, arr, count in zip(variant.pointer_fields, variant.arrays, variant.counts):
        if arr.values.size != count:
            raise ctx.fail(op, f"{variant.kernel}: constant array {field} has {arr.values.size} values, the kernel "
                               f"indexes {count}")
    for k, v in variant.fields:
        if not INT32_RANGE[0] <= int(v) <= INT32_RANGE[1]:
            raise ctx.fail(op, f"{variant.kernel}: parameter {k} = {int(v)} does not fit int32")
    values = [(k, str(int(v))) for k, v in variant.fields]
    values += [(field, arr.name) for field, arr in zip(variant.pointer_fields, variant.arrays)]
    return replace(generic, kernel=variant.kernel, params_type=variant.params_type, fields=tuple(values),
                   arrays=tuple(variant.arrays), scratch_bytes=(variant.scratch_bytes + 3) // 4 * 4)


def lower(graph: Graph, optimize: Optimize = Optimize.SPEED, rounding: Rounding = Rounding.DOUBLE) -> Lowered:
    """Kernel calls for every op, specialised per layer for `optimize`, their tables and fused constants under
    `rounding`; raises UnsupportedOpError naming the op, its index and layer otherwise."""
    optimize = Optimize(optimize)
    ctx = LowerContext(graph, rounding)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedOpError(f"the C engine runs graphs of one input and one output; this one has "
                                 f"{len(graph.inputs)} inputs and {len(graph.outputs)} outputs")
    calls, aliases = [], []
    for op in graph.operators:
        d = definition(op.code)
        if d is not None and d.alias:
            aliases.append(_alias(ctx, op))
            continue
        if d is None or d.lower is None:
            raise ctx.fail(op, f"op not supported by the C engine (supported: {', '.join(c_engine_ops())})")
        made = d.lower(ctx, op)
        for call in made if isinstance(made, tuple) else (made,):  # an op of several outputs: a call per output
            calls.append(specialize(ctx, op, call) if optimize is Optimize.SPEED else call)
    return Lowered(tuple(calls), tuple(aliases))


def supported_ops() -> tuple[str, ...]:
    """Names of the TFLite builtin ops the C engine runs (RESHAPE, SQUEEZE, EXPAND_DIMS as aliases), sorted."""
    return c_engine_ops()

