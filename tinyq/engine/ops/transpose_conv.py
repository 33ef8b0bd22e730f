"""TRANSPOSE_CONV (inputs: output shape, weights [out_c][k_h][k_w][in_c], input, optional bias): the reader's
rules, lowering with TFLM's padding, the proofs and MACs (C in firmware_stub/runtime/transpose_conv/)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..graph import Activation, Graph, Operator, Padding, TransposeConvOptions
from ..schema import BuiltinOperator
from .base import ConstArray, KernelCall, KernelRule, OpDef, OpSpec, enum_field
from .context import LowerContext, accumulator_problem, expected_out_size, int32_values
from .conv import conv_extents


def lower(ctx: LowerContext, op: Operator) -> KernelCall:
    o: TransposeConvOptions = ctx.options(op, TransposeConvOptions)
    in_t = ctx.int8_act(op, op.inputs[2], "input")
    out_t = ctx.int8_act(op, op.outputs[0], "output")
    ctx.check_batch(op, in_t)
    if len(in_t.shape) != 4 or len(out_t.shape) != 4:
        raise ctx.fail(op, f"expects 4-D NHWC tensors, has {in_t.shape} -> {out_t.shape}")
    _, in_h, in_w, in_c = in_t.shape
    _, out_h, out_w, out_c = out_t.shape
    w = ctx.weights(op, op.inputs[1], out_c, 0)
    w_oc, k_h, k_w, w_ic = w.shape
    if w_oc != out_c or w_ic != in_c:
        raise ctx.fail(op, f"weights {w.shape} do not fit input {in_c} / output {out_c} channels")
    bias = ctx.bias(op, out_c, position=3)

    def padding(stride: int, size: int, k: int) -> int:  # TFLM pads as for a convolution of the output
        conv_out = expected_out_size(o.padding, stride, 1, size, k)
        return max(0, (conv_out - 1) * stride + k - size) // 2
    name = f"op{op.index}"
    act_min, act_max = ctx.activation(op, o.activation, out_t)
    arrays = [ConstArray(f"{name}_weights", "int8_t", np.ascontiguousarray(w.data).reshape(-1)),
              ConstArray(f"{name}_bias", "int32_t", int32_values(bias, ctx.g.where(op))),
              *ctx.multipliers(in_t, w, out_t, out_c, name)]
    fields = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h, k_w=k_w,
                  stride_h=o.stride_h, stride_w=o.stride_w, dil_h=1, dil_w=1,
                  pad_h=padding(o.stride_h, out_h, k_h), pad_w=padding(o.stride_w, out_w, k_w),
                  depth_multiplier=1, input_offset=-in_t.zero_points[0], output_offset=out_t.zero_points[0],
                  act_min=act_min, act_max=act_max)
    return ctx.call(op, RULE, fields, arrays, inputs=(op.inputs[2],))


def _overflow(f: Mapping[str, int], arrays: Mapping[str, np.ndarray]) -> str | None:
    w = np.abs(arrays["weights"].astype(np.int64))
    return accumulator_problem(w.reshape(len(arrays["bias"]), -1).sum(axis=1), dict(f), dict(arrays))


def _macs(g: Graph, op: Operator) -> int:
    """Every input value times every filter tap of each output channel."""
    return g.tensors[op.inputs[2]].size * int(np.prod(g.tensors[op.inputs[1]].shape[:3]))


RULE = KernelRule("tq_transpose_conv", "tq_conv_params", ("weights", "bias", "mult", "shift"), conv_extents,
                  _overflow)

OPS = (
    OpDef(BuiltinOperator.TRANSPOSE_CONV, "transpose_conv", OpSpec((3, 4), options="TransposeConvOptionsT",
                                                                     options_required=True,
                                                                     input_ranks=((1,), (4,), (4,), (1,)),
                                                                     output_ranks=(4,)),
          lambda o: TransposeConvOptions(enum_field(Padding, o.padding, "padding"), o.strideH, o.strideW,
                                         enum_field(Activation, o.fusedActivationFunction,
                                                    "fused_activation_function")),
          lower, macs=_macs),
)
