"""CONCATENATION, PAD and PADV2: data movement with unchanged quantization, lowered with the chunk sizes and
paddings the kernels follow and proven in bounds (C in firmware_stub/runtime/shape/)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..graph import Activation, ConcatenationOptions, Operator
from ..schema import BuiltinOperator
from .base import ConstArray, KernelCall, KernelRule, OpDef, OpSpec, enum_field
from .context import LowerContext


def lower_concatenation(ctx: LowerContext, op: Operator) -> KernelCall:
    out_t = ctx.int8_act(op, op.outputs[0], "output")
    o: ConcatenationOptions = ctx.options(op, ConcatenationOptions)
    if o.activation is not Activation.NONE:
        raise ctx.fail(op, f"fused activation {o.activation.name} on a concatenation is not supported")
    rank = len(out_t.shape)
    axis = o.axis + rank if o.axis < 0 else o.axis
    consts: list = []
    ins = [ctx.int8_operand(op, i, f"input {k + 1}", f"op{op.index}_in{k + 1}", consts)
           for k, i in enumerate(op.inputs)]
    for t in ins:
        if t.scales != out_t.scales or t.zero_points != out_t.zero_points:
            raise ctx.fail(op, f"input {t.name!r} is quantized differently from the output; TFLM requires the same "
                               f"scale and zero point")
        if len(t.shape) != rank or t.shape[:axis] != out_t.shape[:axis]:
            raise ctx.fail(op, f"input {t.name!r} of shape {t.shape} does not fit {out_t.shape} on axis {axis}")
    chunks = np.array([int(np.prod(t.shape[axis:])) for t in ins], np.int32)
    if int(chunks.sum()) != int(np.prod(out_t.shape[axis:])):
        raise ctx.fail(op, f"inputs do not add up to the output {out_t.shape} on axis {axis}")
    arrays = [ConstArray(f"op{op.index}_chunks", "int32_t", chunks)] + [c for _, c in consts]
    fields = dict(outer=int(np.prod(out_t.shape[:axis])), count=len(ins))
    return ctx.call(op, CONCATENATION_RULE, fields, arrays, inputs=op.inputs,
                    const_inputs=tuple((i, c.name) for i, c in consts), input_array=True)


def lower_pad(ctx: LowerContext, op: Operator) -> KernelCall:
    """PAD and PADV2 with constant paddings; the pad value is the output zero point or PADV2's constant."""
    in_t = ctx.int8_act(op, op.inputs[0], "input")
    out_t = ctx.int8_act(op, op.outputs[0], "output")
    paddings = ctx.const_ints(op, op.inputs[1], "paddings")
    if paddings.size != 2 * len(in_t.shape):
        raise ctx.fail(op, f"paddings hold {paddings.size} values; input {in_t.shape} needs {2 * len(in_t.shape)}")
    paddings = paddings.reshape(-1, 2)
    if (paddings < 0).any():
        raise ctx.fail(op, f"paddings {paddings.tolist()} do not fit input {in_t.shape}")
    value = out_t.zero_points[0]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        c = ctx.g.tensors[op.inputs[2]]
        if not c.is_constant or c.dtype != "int8" or c.size != 1:
            raise ctx.fail(op, f"pad value {c.name!r} must be one constant int8")
        value = int(c.data.reshape(-1)[0])
    before = (0,) * (4 - len(paddings)) + tuple(int(p) for p in paddings[:, 0])
    in4, out4 = ctx.shape4(op, in_t), ctx.shape4(op, out_t)
    if any(i + p > o for i, p, o in zip(in4, before, out4)):
        raise ctx.fail(op, f"input {in_t.shape} padded by {paddings.tolist()} does not fit {out_t.shape}")
    fields = {**{f"in{k}": d for k, d in enumerate(in4)}, **{f"out{k}": d for k, d in enumerate(out4)},
              **{f"before{k}": d for k, d in enumerate(before)}, "value": value}
    return ctx.call(op, PAD_RULE, fields, [])


def _concatenation_extents(f: Mapping[str, int], arrays: Mapping[str, np.ndarray]) -> tuple:
    chunk = arrays["chunk"].astype(np.int64)
    return tuple(int(f["outer"] * c) for c in chunk), int(f["outer"] * chunk.sum()), (f["count"],)


def _pad_extents(f: Mapping[str, int], arrays) -> tuple:
    return (int(np.prod([f[f"in{k}"] for k in range(4)])),), int(np.prod([f[f"out{k}"] for k in range(4)])), ()


def _no_overflow(f: Mapping[str, int], arrays) -> str | None:
    return None


CONCATENATION_RULE = KernelRule("tq_concatenation", "tq_concat_params", ("chunk",), _concatenation_extents,
                                _no_overflow)
PAD_RULE = KernelRule("tq_pad", "tq_pad_params", (), _pad_extents, _no_overflow)

OPS = (
    OpDef(BuiltinOperator.CONCATENATION, "concat_pad",
          OpSpec((1, 1 << 16), options="ConcatenationOptionsT", options_required=True),
          lambda o: ConcatenationOptions(int(o.axis), enum_field(Activation, o.fusedActivationFunction,
                                                                 "fused_activation_function")),
          lower_concatenation),
    OpDef(BuiltinOperator.PAD, "concat_pad", OpSpec((2, 2), input_ranks=(None, (2,)), same_dtype=(0,)), None,
          lower_pad),
    OpDef(BuiltinOperator.PADV2, "concat_pad", OpSpec((2, 3), input_ranks=(None, (2,)), same_dtype=(0,)), None,
          lower_pad),
)
