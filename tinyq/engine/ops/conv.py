"""CONV_2D: the reader's rules, lowering, the kernel choice and weight layout, exact recomputation, MACs.

Lowering folds the input zero point into the bias wherever every filter tap reads real input (convolutions that
pad nothing), which leaves the integer sums unchanged. `lower_convolution` also serves the depthwise family.

Kernel choice (C in firmware_stub/runtime/conv/): every CONV_2D becomes a matrix product of output pixels by output
channels, two of each per step (2x2 block, SMLAD on cores with the DSP extension), over the two pixels' inputs
widened once to int16 in a scratch: a 1x1 convolution without padding whose input depth is a multiple of 4 (zero
point folded) widens its input runs without bounds checks (`tq_conv2d_1x1`); any other gathers them
(`tq_conv2d_im2col`). A shallow input (1 to 3 channels, a network's first layer) takes its own path
(`tq_conv2d_shallow`): each pixel's few taps gathered once as int16 pairs, int16 weights. All three requantize with
one 64-bit constant per channel (tq_requantize_fused, output zero point folded) where every channel of the layer
has that form; the matrix-product kernels fall back per layer to their `_lr` twins (tq_requantize_lr) otherwise,
separate functions so that a model links only the form it uses. The weights and constants are laid out once here.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..fixedpoint import Rounding
from ..graph import Activation, ConvOptions, Graph, Operator, Padding
from ..schema import BuiltinOperator
from .base import (ConstArray, Element, KernelCall, KernelRule, OpDef, OpSpec, Variant, bias_check, enum_field,
                   window_check)
from .context import (LowerContext, accumulator_problem, array_of, expected_out_size, fields_of, int32_values,
                      tflm_padding)
from .requant import SHIFT_RANGE, fused_constant
from .rounding import channel_scale, requantize_rules

PARAMS_TYPE = "tq_conv_mm_params"
# tq_conv_mm_params' integer fields, in struct order (k_padded is computed here).
FIELDS = ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h", "stride_w", "dil_h",
          "dil_w", "pad_h", "pad_w", "k_padded", "input_offset", "output_offset", "act_min", "act_max")


def padded_depth(fields: Mapping[str, int]) -> int:
    """Products per output (k_h * k_w * in_c), rounded up to a multiple of 4 for the 4-byte weight groups."""
    k = fields["k_h"] * fields["k_w"] * fields["in_c"]
    return (k + 3) // 4 * 4


def pair_weights(weights: np.ndarray, out_c: int, k_padded: int) -> np.ndarray:
    """[out_c][K] int8 weights as the kernels stream them: output channels in pairs (a copy of the last completing
    an odd count), K zero-padded to k_padded, and per pair and group of 4 along K the first channel's 4 bytes then
    the second's: [(out_c + 1) / 2][k_padded / 4][2][4]."""
    w = weights.reshape(out_c, -1).astype(np.int8)
    pairs = (out_c + 1) // 2
    full = np.zeros((pairs * 2, k_padded), dtype=np.int8)
    full[:out_c, :w.shape[1]] = w
    full[out_c:, :w.shape[1]] = w[-1]
    return np.ascontiguousarray(full.reshape(pairs, 2, k_padded // 4, 4).transpose(0, 2, 1, 3)).reshape(-1)


def requant_rows(bias: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Per output channel (an odd count completed by a copy of the last row) the unfused requantization's row:
    left shift, right shift, bias, multiplier, 0, 0 ([(out_c + 1) / 2 * 2][6] int32; a shift > 0 is a left shift,
    < 0 a right one)."""
    shift = shift.astype(np.int64)
    rows = np.zeros((len(bias), SHALLOW_ROW), dtype=np.int64)
    rows[:, 0], rows[:, 1] = np.maximum(shift, 0), np.maximum(-shift, 0)
    rows[:, 2], rows[:, 3] = bias, mult
    if len(bias) % 2:
        rows = np.concatenate([rows, rows[-1:]])
    return np.ascontiguousarray(rows, dtype=np.int32).reshape(-1)


SHALLOW_MAX_IN_C = 3
SHALLOW_FIELDS = ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h", "stride_w", "dil_h",
                  "dil_w", "pad_h", "pad_w", "taps", "input_offset", "act_min", "act_max")
SHALLOW_ROW = 6  # requant row: rounding constant low and high words, bias, multiplier, right shift - 1, INT32_MIN


def shallow_weights(weights: np.ndarray, out_c: int) -> np.ndarray:
    """[out_c][K] int8 weights as tq_conv2d_shallow streams them: int16 pairs of taps (2j low, 2j + 1 high; K
    completed with a zero tap) as int32 words, per pair of output channels (a copy of the last completing an odd
    count) and pair of taps the first channel's word then the second's: [(out_c + 1) / 2][(K + 1) / 2][2]."""
    w = weights.reshape(out_c, -1).astype(np.int64)
    pairs, words = (out_c + 1) // 2, (w.shape[1] + 1) // 2
    full = np.zeros((pairs * 2, words * 2), dtype=np.int64)
    full[:out_c, :w.shape[1]] = w
    full[out_c:, :w.shape[1]] = w[-1]  # the completing channel repeats the last: its stores fall on the same bytes
    packed = (full[:, 0::2] & 0xFFFF) | (full[:, 1::2] << 16)  # [channel][word]
    packed = packed.reshape(pairs, 2, words).transpose(0, 2, 1)
    return np.ascontiguousarray(packed & 0xFFFFFFFF).astype(np.uint32).view(np.int32).reshape(-1)


def shallow_requant(bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, output_offset: int,
                    rounding: Rounding = Rounding.DOUBLE) -> np.ndarray | None:
    """Per output channel (an odd count completed by a copy of the last row) the constants of tq_requantize_fused:
    the 64-bit c (requant.fused_constant) as low and high words, bias, multiplier, r - 1 for the right shift
    r = -shift, and INT32_MIN ([(out_c + 1) / 2 * 2][6] int32); None unless every channel has the fused form."""
    out_c = len(bias)
    rows = np.zeros(((out_c + 1) // 2 * 2, SHALLOW_ROW), dtype=np.int64)
    for ch in range(out_c):
        m, s = int(mult[ch]), int(shift[ch])
        c = fused_constant(m, s, output_offset, rounding)
        if c is None:
            return None
        rows[ch] = (c & 0xFFFFFFFF, (c >> 32) & 0xFFFFFFFF, int(bias[ch]) & 0xFFFFFFFF, m, -s - 1, 1 << 31)
    if out_c % 2:
        rows[out_c] = rows[out_c - 1]
    return rows.astype(np.uint32).view(np.int32).reshape(-1)


def tap_offsets(fields: Mapping[str, int]) -> np.ndarray:
    """Each tap's byte offset in the input from its window's first byte, in K order (k_h, k_w, in_c)."""
    ky, kx, c = np.meshgrid(np.arange(fields["k_h"]), np.arange(fields["k_w"]), np.arange(fields["in_c"]),
                            indexing="ij")
    off = (ky * fields["dil_h"] * fields["in_w"] + kx * fields["dil_w"]) * fields["in_c"] + c
    return off.reshape(-1).astype(np.int32)


def choose_shallow(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str,
                   rounding: Rounding = Rounding.DOUBLE) -> Variant | None:
    """tq_conv2d_shallow for an input of 1 to 3 channels whose requantization fits the fused form, else None."""
    if fields["in_c"] > SHALLOW_MAX_IN_C:
        return None
    requant = shallow_requant(arrays["bias"].values, arrays["mult"].values, arrays["shift"].values,
                              fields["output_offset"], rounding)
    if requant is None:
        return None
    out_c = fields["out_c"]
    taps = fields["k_h"] * fields["k_w"] * fields["in_c"]
    words, pairs = (taps + 1) // 2, (out_c + 1) // 2
    values = dict(fields, taps=taps)
    return Variant(kernel="tq_conv2d_shallow", params_type="tq_conv_shallow_params",
                   fields=tuple((k, int(values[k])) for k in SHALLOW_FIELDS),
                   arrays=(ConstArray(f"{name}_weights_shallow", "int32_t",
                                      shallow_weights(arrays["weights"].values, out_c)),
                           ConstArray(f"{name}_requant_shallow", "int32_t", requant),
                           ConstArray(f"{name}_taps", "int32_t", tap_offsets(fields))),
                   pointer_fields=("weights", "requant", "tap_offsets"),
                   counts=(pairs * words * 2, pairs * 2 * SHALLOW_ROW, taps),
                   scratch_bytes=2 * words * 4)


def is_pointwise(fields: Mapping[str, int]) -> bool:
    """A 1x1 convolution without padding over whole 4-byte groups, its input zero point folded into the bias:
    each output pixel is one run of input, multiplied in place."""
    return (fields["k_h"] == 1 and fields["k_w"] == 1 and fields["pad_h"] == 0 and fields["pad_w"] == 0
            and fields["in_c"] % 4 == 0 and fields["input_offset"] == 0)


def choose(fields: Mapping[str, int], arrays: Mapping[str, ConstArray], name: str,
           rounding: Rounding = Rounding.DOUBLE) -> Variant | None:
    """The shallow-input variant where it applies, else the 2x2-block matrix-product variant, or None (generic
    kernel) when the requantization's multipliers or shifts are outside what its division-free form handles
    exactly."""
    mult, shift = arrays["mult"].values, arrays["shift"].values
    if (mult < 0).any() or (shift < SHIFT_RANGE[0]).any() or (shift > SHIFT_RANGE[1]).any():
        return None
    shallow = choose_shallow(fields, arrays, name, rounding)
    if shallow is not None:
        return shallow
    out_c = fields["out_c"]
    k_padded = padded_depth(fields)
    packed = pair_weights(arrays["weights"].values, out_c, k_padded)
    weights = ConstArray(f"{name}_weights_mm", "int8_t", packed)
    bias, shift = arrays["bias"].values, arrays["shift"].values
    rows = shallow_requant(bias, mult, shift, fields["output_offset"], rounding)
    fused = rows is not None
    if not fused:
        rows = requant_rows(bias, mult, shift)
    requant = ConstArray(f"{name}_requant", "int32_t", rows)
    values = dict(fields, k_padded=k_padded)
    kernel = ("tq_conv2d_1x1" if is_pointwise(fields) else "tq_conv2d_im2col") + ("" if fused else "_lr")
    return Variant(kernel=kernel, params_type=PARAMS_TYPE,
                   fields=tuple((k, int(values[k])) for k in FIELDS),
                   arrays=(weights, requant), pointer_fields=("weights", "requant"),
                   counts=((out_c + 1) // 2 * 2 * k_padded, (out_c + 1) // 2 * 2 * SHALLOW_ROW),
                   scratch_bytes=2 * k_padded * 2)


# ---- reader ----

def parse_options(o) -> ConvOptions:
    return ConvOptions(enum_field(Padding, o.padding, "padding"), o.strideH, o.strideW, o.dilationHFactor,
                       o.dilationWFactor, enum_field(Activation, o.fusedActivationFunction,
                                                     "fused_activation_function"))


def _check(g: Graph, op: Operator) -> str | None:
    src, w, dst = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    if w.shape[0] != dst.shape[3] or src.shape[3] % w.shape[3] != 0:
        return f"filter {w.name!r} {w.shape} does not fit input {src.shape} -> output {dst.shape}"
    return bias_check(g, op, dst.shape[3]) or window_check(g, op, w.shape[1], w.shape[2],
                                                            (op.options.dilation_h, op.options.dilation_w))


CONV_SPEC = dict(outputs=1, options_required=True, output_ranks=(4,), same_dtype=(0,))


# ---- lowering (shared with depthwise) ----

def lower_convolution(ctx: LowerContext, op: Operator, rule: KernelRule, depthwise: bool) -> KernelCall:
    """CONV_2D or DEPTHWISE_CONV_2D as the generic `rule` kernel, every integer parameter precomputed."""
    o: ConvOptions = op.options
    in_t = ctx.int8_act(op, op.inputs[0], "input")
    out_t = ctx.int8_act(op, op.outputs[0], "output")
    ctx.check_batch(op, in_t)
    if len(in_t.shape) != 4 or len(out_t.shape) != 4:
        raise ctx.fail(op, f"expects 4-D NHWC tensors, has {in_t.shape} -> {out_t.shape}")
    _, in_h, in_w, in_c = in_t.shape
    _, out_h, out_w, out_c = out_t.shape
    w = ctx.weights(op, op.inputs[1], out_c, 3 if depthwise else 0)
    if depthwise:
        _, k_h, k_w, w_c = w.shape
        mult = o.depth_multiplier or 1
        if w_c != out_c or in_c * mult != out_c:
            raise ctx.fail(op, f"depthwise weights {w.shape} do not fit {in_c} channels x multiplier {mult}")
    else:
        w_oc, k_h, k_w, w_ic = w.shape
        mult = 1
        if w_oc != out_c or w_ic != in_c:
            raise ctx.fail(op, f"weights {w.shape} do not fit input {in_c} / output {out_c} channels "
                               f"(grouped convolution is not supported)")
    axes = ((in_h, k_h, o.stride_h, o.dilation_h, out_h), (in_w, k_w, o.stride_w, o.dilation_w, out_w))
    for axis, (size, k, s, d, out) in enumerate(axes):
        if expected_out_size(o.padding, s, d, size, k) != out:
            raise ctx.fail(op, f"output size {out} on axis {axis + 1} does not follow from {o.padding.name} "
                               f"padding, stride {s}, dilation {d}")
    pad_h = tflm_padding(o.padding, o.stride_h, o.dilation_h, in_h, k_h, out_h)
    pad_w = tflm_padding(o.padding, o.stride_w, o.dilation_w, in_w, k_w, out_w)
    bias = ctx.bias(op, out_c)
    input_offset = -in_t.zero_points[0]
    reach = [(out - 1) * s + (k - 1) * d + 1 - size for size, k, s, d, out in axes]
    if max(reach) <= 0:  # every tap of every output reads real input (VALID, or SAME that pads nothing)
        per_channel = (w.data.astype(np.int64).sum(axis=(0, 1, 2)) if depthwise
                       else w.data.astype(np.int64).reshape(out_c, -1).sum(axis=1))
        bias = bias + input_offset * per_channel
        input_offset = 0
    name = f"op{op.index}"
    act_min, act_max = ctx.activation(op, o.activation, out_t)
    arrays = [ConstArray(f"{name}_weights", "int8_t", np.ascontiguousarray(w.data).reshape(-1)),
              ConstArray(f"{name}_bias", "int32_t", int32_values(bias, ctx.g.where(op))),
              *ctx.multipliers(in_t, w, out_t, out_c, name)]
    fields = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h, k_w=k_w,
                  stride_h=o.stride_h, stride_w=o.stride_w, dil_h=o.dilation_h, dil_w=o.dilation_w,
                  pad_h=pad_h, pad_w=pad_w, depth_multiplier=mult, input_offset=input_offset,
                  output_offset=out_t.zero_points[0], act_min=act_min, act_max=act_max)
    return ctx.call(op, rule, fields, arrays)


def conv_extents(f: Mapping[str, int], arrays) -> tuple:
    oc = f["out_c"]
    return ((f["in_h"] * f["in_w"] * f["in_c"],), f["out_h"] * f["out_w"] * oc,
            (oc * f["k_h"] * f["k_w"] * f["in_c"], oc, oc, oc))


def _overflow(f: Mapping[str, int], arrays: Mapping[str, np.ndarray]) -> str | None:
    w = np.abs(arrays["weights"].astype(np.int64))
    return accumulator_problem(w.reshape(len(arrays["bias"]), -1).sum(axis=1), dict(f), dict(arrays))


# ---- exact recomputation (tinyq diff, explain) ----

def recompute_convolution(graph: Graph, op: Operator, call: KernelCall, inputs: dict, flat: int,
                          depthwise: bool = False) -> Element:
    """Output element `flat` of a generic (de)convolution call: its accumulator and each rounding rule's value."""
    f = fields_of(call)
    out_w, out_c = f["out_w"], f["out_c"]
    oy, ox, oc = flat // (out_w * out_c), (flat // out_c) % out_w, flat % out_c
    x = inputs[op.inputs[0]].reshape(f["in_h"], f["in_w"], f["in_c"]).astype(np.int64) + f["input_offset"]
    w = array_of(call, "_weights")
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
    bias = int(array_of(call, "_bias")[oc])
    acc += bias
    mult, shift = int(array_of(call, "_mult")[oc]), int(array_of(call, "_shift")[oc])
    rules, exact = requantize_rules(acc, mult, shift, channel_scale(graph, op, oc), f["output_offset"],
                                    f["act_min"], f["act_max"])
    return Element((0, oy, ox, oc), rules, exact, acc,
                   f"accumulator {acc} (bias {bias} included), multiplier {mult} x 2^{shift} for channel {oc}")


def _macs(g: Graph, op: Operator) -> int:
    return g.tensors[op.outputs[0]].size * int(np.prod(g.tensors[op.inputs[1]].shape[1:]))


RULE = KernelRule("tq_conv2d", "tq_conv_params", ("weights", "bias", "mult", "shift"), conv_extents, _overflow,
                  choose, recompute_convolution)

OPS = (
    OpDef(BuiltinOperator.CONV_2D, "conv",
          OpSpec((2, 3), options="Conv2DOptionsT", input_ranks=((4,), (4,), (1,)), check=_check, **CONV_SPEC),
          parse_options, lambda ctx, op: lower_convolution(ctx, op, RULE, depthwise=False), macs=_macs),
)
