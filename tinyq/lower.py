"""Lowering: each supported int8 op of a Graph becomes a kernel call with every integer parameter precomputed.

The arithmetic mirrors TFLite Micro's reference kernels: multipliers from QuantizeMultiplier on the same double
expressions, activation ranges from the output quantization, TFLM's padding rule. The input zero point is
folded into the bias wherever every filter tap reads real input (fully connected, convolutions that pad
nothing), which leaves the integer sums unchanged.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace

import numpy as np

from . import kernels, lut
from .errors import UnsupportedOpError
from .fixedpoint import f32 as _f32
from .kernels import ConstArray
from .fixedpoint import quantize_multiplier, round_half_away  # noqa: F401 - re-exported for callers and tests
from .graph import (Activation, AddOptions, ConcatenationOptions, ConvOptions, FullyConnectedOptions, Graph,
                    LeakyReluOptions, Operator, Padding, PoolOptions, ResizeOptions, SoftmaxOptions,
                    TransposeConvOptions, _schema, op_name)

ADD_LEFT_SHIFT = 20
SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5
SOFTMAX_MAX_DEPTH = (1 << 12) - 1  # each exponential is < 2^19 in the kernel's Q12.19 sum, which must fit int32
INT32_RANGE = (-(1 << 31), (1 << 31) - 1)


def _requant_problem(x_max: np.ndarray, mult: np.ndarray, shift: np.ndarray, out_offset: int) -> str | None:
    """MultiplyByQuantizedMultiplier(x) + zero point stays inside int32 for |x| <= x_max (per channel), the
    left shift included; what overflows otherwise."""
    x = [int(v) for v in np.broadcast_to(x_max, mult.shape)]
    for c, (xc, m, s) in enumerate(zip(x, (int(v) for v in mult), (int(v) for v in shift))):
        left, right = max(s, 0), max(-s, 0)
        if xc << left > INT32_RANGE[1]:
            return f"channel {c}: accumulator bound {xc} shifted left by {left} overflows int32"
        scaled = ((xc << left) * m + (1 << 31) - 1) // (1 << 31) + 1
        if (scaled >> right) + 1 + abs(out_offset) > INT32_RANGE[1]:
            return f"channel {c}: requantized bound {scaled >> right} plus zero point {out_offset} overflows int32"
    return None


def _overflow_problem(kernel: str, f: dict, arrays: dict[str, np.ndarray]) -> str | None:
    """Worst case over every int8 input of each kernel's int32 arithmetic, from its parameters and its actual
    weights: what could overflow (signed overflow is undefined behaviour in C), or None."""
    limit = INT32_RANGE[1]
    if kernel in ("tq_conv2d", "tq_depthwise_conv2d", "tq_fully_connected", "tq_transpose_conv"):
        w = np.abs(arrays["weights"].astype(np.int64))
        if kernel == "tq_depthwise_conv2d":
            w_sum = w.reshape(-1, f["out_c"]).sum(axis=0)
        else:
            w_sum = w.reshape(len(arrays["bias"]), -1).sum(axis=1)
        offset = f.get("input_offset", 0)
        max_in = max(abs(-128 + offset), abs(127 + offset))
        bias = np.abs(arrays["bias"].astype(np.int64))
        acc = w_sum * max_in + bias
        if int(acc.max(initial=0)) > limit:
            c = int(acc.argmax())
            return (f"the int32 accumulator of channel {c} could reach {int(acc[c])} (weights' absolute sum "
                    f"{int(w_sum[c])} x input magnitude {max_in} + bias {int(bias[c])})")
        return _requant_problem(acc, arrays["mult"], arrays["shift"], f["output_offset"])
    if kernel in ("tq_add", "tq_add_broadcast", "tq_sub"):
        x = 255 << f["left_shift"]
        sides = [((x * f[f"in{i}_mult"]) >> 31 >> max(-f[f"in{i}_shift"], 0)) + 2 for i in (1, 2)]
        if x > limit or f["in1_shift"] > 0 or f["in2_shift"] > 0:
            return "input rescaling could overflow int32"
        return _requant_problem(np.array([sum(sides)]), np.array([f["out_mult"]]), np.array([f["out_shift"]]),
                                f["out_offset"])
    if kernel == "tq_mean" and f["count"] * 128 + abs(f["input_zp_sum"]) > limit:
        return f"the int32 sum of {f['count']} values could overflow"
    if kernel == "tq_average_pool":
        area = min(f["k_h"], f["in_h"]) * min(f["k_w"], f["in_w"])
        if area * 128 + area > limit:
            return f"the int32 sum of a {area}-value pooling window could overflow"
    return None


def _extents(kernel: str, f: dict, arrays: dict[str, np.ndarray] | None = None
             ) -> tuple[tuple[int, ...], int, tuple[int, ...]] | None:
    """What a kernel touches given its parameters (and the index arrays it follows): bytes read per input,
    bytes written, elements of each constant array it indexes (in pointer-field order); None for a kernel
    without a rule (tensor sizes then)."""
    arrays = arrays or {}
    if kernel in ("tq_add_broadcast", "tq_sub", "tq_mul", "tq_maximum", "tq_minimum"):
        dims = [f[f"n{k}"] for k in range(4)]
        span = [1 + sum((d - 1) * f[f"{side}{k}"] for k, d in enumerate(dims)) for side in ("a", "b")]
        return tuple(span), int(np.prod(dims)), ()
    if kernel == "tq_lut":
        return (f["size"],), f["size"], (256,)
    if kernel == "tq_mean":
        return (f["outer"] * f["count"] * f["inner"],), f["outer"] * f["inner"], ()
    if kernel == "tq_pad":
        return (int(np.prod([f[f"in{k}"] for k in range(4)])),), int(np.prod([f[f"out{k}"] for k in range(4)])), ()
    if kernel == "tq_concatenation":
        chunk = arrays["chunk"].astype(np.int64)
        return tuple(int(f["outer"] * c) for c in chunk), int(f["outer"] * chunk.sum()), (f["count"],)
    if kernel == "tq_resize_nearest":
        rows, cols = arrays["rows"].astype(np.int64), arrays["cols"].astype(np.int64)
        if rows.min(initial=0) < 0 or cols.min(initial=0) < 0:
            return (1 << 62,), 0, (f["out_h"], f["out_w"])  # a negative index: refused by the bounds proof
        read = (int(rows.max(initial=0)) * f["in_w"] + int(cols.max(initial=0)) + 1) * f["channels"]
        return (read,), f["out_h"] * f["out_w"] * f["channels"], (f["out_h"], f["out_w"])
    if kernel == "tq_transpose_conv":
        oc = f["out_c"]
        return ((f["in_h"] * f["in_w"] * f["in_c"],), f["out_h"] * f["out_w"] * oc,
                (oc * f["k_h"] * f["k_w"] * f["in_c"], oc, oc, oc))
    if kernel == "tq_conv2d":
        oc = f["out_c"]
        return ((f["in_h"] * f["in_w"] * f["in_c"],), f["out_h"] * f["out_w"] * oc,
                (oc * f["k_h"] * f["k_w"] * f["in_c"], oc, oc, oc))
    if kernel == "tq_depthwise_conv2d":
        oc = f["in_c"] * f["depth_multiplier"]
        return ((f["in_h"] * f["in_w"] * f["in_c"],), f["out_h"] * f["out_w"] * oc,
                (f["k_h"] * f["k_w"] * oc, oc, oc, oc))
    if kernel == "tq_fully_connected":
        rows = f.get("rows", 1)
        return ((rows * f["in_depth"],), rows * f["out_depth"],
                (f["in_depth"] * f["out_depth"],) + (f["out_depth"],) * 3)
    if kernel in ("tq_max_pool", "tq_average_pool"):
        return (f["in_h"] * f["in_w"] * f["channels"],), f["out_h"] * f["out_w"] * f["channels"], ()
    if kernel == "tq_add":
        return (f["size"], f["size"]), f["size"], ()
    if kernel == "tq_softmax":
        return (f["rows"] * f["depth"],), f["rows"] * f["depth"], ()
    return None


class Optimize(str, enum.Enum):
    """What kernel choice favours: SPEED picks a specialised kernel per layer where one exists (weights laid out
    for it, scratch in the arena); SIZE keeps the generic portable kernels, the smallest code."""

    SPEED = "speed"
    SIZE = "size"


@dataclass(frozen=True)
class KernelCall:
    """One kernel invocation: which C function, its parameter struct fields, tensors read and written."""

    op_index: int
    op_name: str
    layer: str
    kernel: str
    params_type: str
    fields: tuple[tuple[str, str], ...]
    inputs: tuple[int, ...]
    output: int
    arrays: tuple[ConstArray, ...]
    const_inputs: tuple[tuple[int, str], ...] = ()  # (input tensor, ConstArray holding its constant data)
    input_array: bool = False  # the inputs go to the kernel as one array argument (a variable count)
    reads: tuple[int, ...] = ()  # bytes the kernel reads from each input, from its parameters
    writes: int = 0  # bytes the kernel writes to its output, from its parameters
    scratch_bytes: int = 0  # arena scratch the kernel gets as its last argument, live for this call only


@dataclass(frozen=True)
class Lowered:
    """The kernel calls in order, and the tensors that are only another name for another tensor (RESHAPE,
    SQUEEZE, EXPAND_DIMS)."""

    calls: tuple[KernelCall, ...]
    aliases: tuple[tuple[int, int], ...]  # (alias tensor, tensor it names)


def activation_range(act: Activation, scale: float, zero_point: int, where: str) -> tuple[int, int]:
    """Clamp bounds of a fused activation in the output's int8 domain (TFLite's CalculateActivationRange)."""
    def q(value: float) -> int:
        return zero_point + round_half_away(float(np.float32(value) / np.float32(scale)))

    if act is Activation.NONE:
        return -128, 127
    if act is Activation.RELU:
        return max(-128, zero_point), 127
    if act is Activation.RELU6:
        return max(-128, zero_point), min(127, q(6.0))
    if act is Activation.RELU_N1_TO_1:
        return max(-128, q(-1.0)), min(127, q(1.0))
    raise UnsupportedOpError(f"{where}: fused activation {act.name} is not supported (NONE, RELU, RELU6, "
                             f"RELU_N1_TO_1 are)")


def tflm_padding(padding: Padding, stride: int, dilation: int, in_size: int, filter_size: int,
                 out_size: int) -> int:
    """Leading padding as TFLM computes it (the trailing side is implied by bounds checks)."""
    if padding is Padding.VALID:
        return 0
    effective = (filter_size - 1) * dilation + 1
    return max(0, (out_size - 1) * stride + effective - in_size) // 2


def expected_out_size(padding: Padding, stride: int, dilation: int, in_size: int, filter_size: int) -> int:
    effective = (filter_size - 1) * dilation + 1
    if padding is Padding.SAME:
        return (in_size + stride - 1) // stride
    return (in_size + stride - effective) // stride


class _Lowerer:
    def __init__(self, graph: Graph, optimize: Optimize = Optimize.SPEED) -> None:
        self.g = graph
        self.optimize = Optimize(optimize)

    def fail(self, op: Operator, what: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self.g.where(op)}: {what}")

    def int8_act(self, op: Operator, index: int, role: str):
        t = self.g.tensors[index]
        if t.dtype != "int8":
            raise self.fail(op, f"{role} tensor {t.name!r} is {t.dtype}; the C engine runs int8 only")
        if len(t.scales) != 1 or len(t.zero_points) != 1:
            raise self.fail(op, f"{role} tensor {t.name!r} needs one scale and zero point, has {len(t.scales)}")
        if t.is_constant:
            raise self.fail(op, f"{role} tensor {t.name!r} is constant; constant activations are not supported")
        return t

    def check_batch(self, op: Operator, t) -> None:
        if not t.shape or t.shape[0] != 1:
            raise self.fail(op, f"tensor {t.name!r} has shape {t.shape}; the batch must be fixed at 1")

    def weights(self, op: Operator, index: int, channels: int, channel_axis: int):
        w = self.g.tensors[index]
        if w.dtype != "int8" or not w.is_constant:
            raise self.fail(op, f"weights {w.name!r} must be constant int8, are {w.dtype}"
                                f"{'' if w.is_constant else ' (not constant)'}")
        if any(z != 0 for z in w.zero_points):
            raise self.fail(op, f"weights {w.name!r} have non-zero zero points; int8 weights must be symmetric")
        if len(w.scales) not in (1, channels) or (len(w.scales) > 1 and w.quantized_dimension != channel_axis):
            raise self.fail(op, f"weights {w.name!r}: {len(w.scales)} scales on axis {w.quantized_dimension} "
                                f"for {channels} output channels")
        return w

    def bias(self, op: Operator, channels: int) -> np.ndarray:
        if len(op.inputs) < 3 or op.inputs[2] < 0:
            return np.zeros(channels, np.int64)
        b = self.g.tensors[op.inputs[2]]
        if b.dtype != "int32" or not b.is_constant or b.size != channels:
            raise self.fail(op, f"bias {b.name!r} must be constant int32 of {channels} values, is {b.dtype} "
                                f"{b.shape}")
        return b.data.astype(np.int64).reshape(-1)

    def multipliers(self, op: Operator, in_t, w, out_t, channels: int, name: str) -> list[ConstArray]:
        scales = list(w.scales) if len(w.scales) == channels else [w.scales[0]] * channels
        pairs = [quantize_multiplier(_f32(in_t.scales[0]) * _f32(s) / _f32(out_t.scales[0])) for s in scales]
        return [ConstArray(f"{name}_mult", "int32_t", np.array([m for m, _ in pairs], np.int32)),
                ConstArray(f"{name}_shift", "int8_t", np.array([s for _, s in pairs], np.int8))]

    def table(self) -> dict:
        """Builtin operator code -> lowering of that op, grouped by op family."""
        op = _schema().BuiltinOperator
        return {
            # convolutions and fully connected
            op.CONV_2D: self.conv, op.DEPTHWISE_CONV_2D: self.conv, op.FULLY_CONNECTED: self.fully_connected,
            op.TRANSPOSE_CONV: self.transpose_conv,
            # pooling and reduction
            op.MAX_POOL_2D: self.pool, op.AVERAGE_POOL_2D: self.pool, op.MEAN: self.mean,
            # elementwise on two tensors, with broadcasting
            op.ADD: self.add, op.SUB: self.binary, op.MUL: self.binary, op.MAXIMUM: self.binary,
            op.MINIMUM: self.binary,
            # elementwise on one tensor: a 256-entry table
            op.LOGISTIC: self.table_op, op.TANH: self.table_op, op.HARD_SWISH: self.table_op,
            op.LEAKY_RELU: self.table_op, op.QUANTIZE: self.table_op, op.RELU: self.table_op,
            op.RELU6: self.table_op,
            op.SOFTMAX: self.softmax,
            # data movement
            op.CONCATENATION: self.concatenation, op.PAD: self.pad, op.PADV2: self.pad,
            op.RESIZE_NEAREST_NEIGHBOR: self.resize_nearest,
        }

    def lower(self) -> Lowered:
        schema_op = _schema().BuiltinOperator
        alias_ops = (schema_op.RESHAPE, schema_op.SQUEEZE, schema_op.EXPAND_DIMS)
        table = self.table()
        if len(self.g.inputs) != 1 or len(self.g.outputs) != 1:
            raise UnsupportedOpError(f"the C engine runs graphs of one input and one output; this one has "
                                     f"{len(self.g.inputs)} inputs and {len(self.g.outputs)} outputs")
        calls, aliases = [], []
        for op in self.g.operators:
            if op.code in alias_ops:
                src = self.int8_act(op, op.inputs[0], "input")
                dst = self.int8_act(op, op.outputs[0], "output")
                if src.size != dst.size or src.scales != dst.scales or src.zero_points != dst.zero_points:
                    raise self.fail(op, "changes size or quantization; only a change of shape can be an alias")
                aliases.append((op.outputs[0], op.inputs[0]))
                continue
            handler = table.get(op.code)
            if handler is None:
                supported = ", ".join(sorted([op_name(code) for code in table] + [op_name(c) for c in alias_ops]))
                raise self.fail(op, f"op not supported by the C engine (supported: {supported})")
            calls.append(handler(op))
        return Lowered(tuple(calls), tuple(aliases))

    def conv(self, op: Operator) -> KernelCall:
        o: ConvOptions = op.options
        depthwise = op.name == "DEPTHWISE_CONV_2D"
        in_t = self.int8_act(op, op.inputs[0], "input")
        out_t = self.int8_act(op, op.outputs[0], "output")
        self.check_batch(op, in_t)
        if len(in_t.shape) != 4 or len(out_t.shape) != 4:
            raise self.fail(op, f"expects 4-D NHWC tensors, has {in_t.shape} -> {out_t.shape}")
        _, in_h, in_w, in_c = in_t.shape
        _, out_h, out_w, out_c = out_t.shape
        w = self.weights(op, op.inputs[1], out_c, 3 if depthwise else 0)
        if depthwise:
            _, k_h, k_w, w_c = w.shape
            mult = o.depth_multiplier or 1
            if w_c != out_c or in_c * mult != out_c:
                raise self.fail(op, f"depthwise weights {w.shape} do not fit {in_c} channels x multiplier {mult}")
        else:
            w_oc, k_h, k_w, w_ic = w.shape
            mult = 1
            if w_oc != out_c or w_ic != in_c:
                raise self.fail(op, f"weights {w.shape} do not fit input {in_c} / output {out_c} channels "
                                    f"(grouped convolution is not supported)")
        for axis, (size, k, s, d, out) in enumerate(((in_h, k_h, o.stride_h, o.dilation_h, out_h),
                                                       (in_w, k_w, o.stride_w, o.dilation_w, out_w))):
            if expected_out_size(o.padding, s, d, size, k) != out:
                raise self.fail(op, f"output size {out} on axis {axis + 1} does not follow from {o.padding.name} "
                                    f"padding, stride {s}, dilation {d}")
        pad_h = tflm_padding(o.padding, o.stride_h, o.dilation_h, in_h, k_h, out_h)
        pad_w = tflm_padding(o.padding, o.stride_w, o.dilation_w, in_w, k_w, out_w)
        bias = self.bias(op, out_c)
        input_offset = -in_t.zero_points[0]
        reach = [(out - 1) * s + (k - 1) * d + 1 - size for size, k, s, d, out in
                 ((in_h, k_h, o.stride_h, o.dilation_h, out_h), (in_w, k_w, o.stride_w, o.dilation_w, out_w))]
        if max(reach) <= 0:  # every tap of every output reads real input (VALID, or SAME that pads nothing)
            per_channel = (w.data.astype(np.int64).sum(axis=(0, 1, 2)) if depthwise
                           else w.data.astype(np.int64).reshape(out_c, -1).sum(axis=1))
            bias = bias + input_offset * per_channel
            input_offset = 0
        name = f"op{op.index}"
        act_min, act_max = activation_range(o.activation, out_t.scales[0], out_t.zero_points[0], self.g.where(op))
        arrays = [ConstArray(f"{name}_weights", "int8_t", np.ascontiguousarray(w.data).reshape(-1)),
                  ConstArray(f"{name}_bias", "int32_t", _int32(bias, self.g.where(op))),
                  *self.multipliers(op, in_t, w, out_t, out_c, name)]
        fields = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h, k_w=k_w,
                      stride_h=o.stride_h, stride_w=o.stride_w, dil_h=o.dilation_h, dil_w=o.dilation_w,
                      pad_h=pad_h, pad_w=pad_w, depth_multiplier=mult, input_offset=input_offset,
                      output_offset=out_t.zero_points[0], act_min=act_min, act_max=act_max)
        return self.call(op, "tq_depthwise_conv2d" if depthwise else "tq_conv2d", "tq_conv_params", fields,
                         arrays, ("weights", "bias", "mult", "shift"))

    def fully_connected(self, op: Operator) -> KernelCall:
        o: FullyConnectedOptions = op.options
        if o.shuffled_weights:
            raise self.fail(op, "shuffled weights format is not supported")
        in_t = self.int8_act(op, op.inputs[0], "input")
        out_t = self.int8_act(op, op.outputs[0], "output")
        w = self.g.tensors[op.inputs[1]]
        if len(w.shape) != 2:
            raise self.fail(op, f"weights {w.name!r} have shape {w.shape}, expected 2-D")
        out_depth, in_depth = w.shape
        w = self.weights(op, op.inputs[1], out_depth, 0)
        rows = in_t.size // in_depth
        if in_t.size != rows * in_depth or out_t.size != rows * out_depth:
            raise self.fail(op, f"input {in_t.shape} / output {out_t.shape} do not fit weights {w.shape}")
        bias = self.bias(op, out_depth) - in_t.zero_points[0] * w.data.astype(np.int64).sum(axis=1)
        name = f"op{op.index}"
        act_min, act_max = activation_range(o.activation, out_t.scales[0], out_t.zero_points[0], self.g.where(op))
        arrays = [ConstArray(f"{name}_weights", "int8_t", np.ascontiguousarray(w.data).reshape(-1)),
                  ConstArray(f"{name}_bias", "int32_t", _int32(bias, self.g.where(op))),
                  *self.multipliers(op, in_t, w, out_t, out_depth, name)]
        fields = dict(rows=rows, in_depth=in_depth, out_depth=out_depth, output_offset=out_t.zero_points[0],
                      act_min=act_min, act_max=act_max)
        return self.call(op, "tq_fully_connected", "tq_fc_params", fields, arrays,
                         ("weights", "bias", "mult", "shift"))

    def pool(self, op: Operator) -> KernelCall:
        o: PoolOptions = op.options
        in_t = self.int8_act(op, op.inputs[0], "input")
        out_t = self.int8_act(op, op.outputs[0], "output")
        self.check_batch(op, in_t)
        if in_t.scales != out_t.scales or in_t.zero_points != out_t.zero_points:
            raise self.fail(op, "input and output quantization differ; int8 pooling needs them equal")
        _, in_h, in_w, c = in_t.shape
        _, out_h, out_w, out_c = out_t.shape
        if out_c != c:
            raise self.fail(op, f"channels change from {c} to {out_c}")
        act_min, act_max = activation_range(o.activation, out_t.scales[0], out_t.zero_points[0], self.g.where(op))
        fields = dict(in_h=in_h, in_w=in_w, channels=c, out_h=out_h, out_w=out_w, k_h=o.filter_h, k_w=o.filter_w,
                      stride_h=o.stride_h, stride_w=o.stride_w,
                      pad_h=tflm_padding(o.padding, o.stride_h, 1, in_h, o.filter_h, out_h),
                      pad_w=tflm_padding(o.padding, o.stride_w, 1, in_w, o.filter_w, out_w),
                      act_min=act_min, act_max=act_max)
        kernel = "tq_max_pool" if op.name == "MAX_POOL_2D" else "tq_average_pool"
        return self.call(op, kernel, "tq_pool_params", fields, [], ())

    def add(self, op: Operator) -> KernelCall:
        o: AddOptions = op.options
        if any(self.g.tensors[i].is_constant for i in op.inputs[:2]):
            return self.binary(op)
        a = self.int8_act(op, op.inputs[0], "input 1")
        b = self.int8_act(op, op.inputs[1], "input 2")
        out_t = self.int8_act(op, op.outputs[0], "output")
        if a.shape != b.shape or a.shape != out_t.shape:
            return self.binary(op)
        s1, s2, so = _f32(a.scales[0]), _f32(b.scales[0]), _f32(out_t.scales[0])
        twice_max = 2.0 * max(s1, s2)
        m1, sh1 = quantize_multiplier(s1 / twice_max)
        m2, sh2 = quantize_multiplier(s2 / twice_max)
        mo, sho = quantize_multiplier(twice_max / (float(1 << ADD_LEFT_SHIFT) * so))
        act_min, act_max = activation_range(o.activation, out_t.scales[0], out_t.zero_points[0], self.g.where(op))
        fields = dict(size=out_t.size, left_shift=ADD_LEFT_SHIFT, in1_offset=-a.zero_points[0], in1_mult=m1,
                      in1_shift=sh1, in2_offset=-b.zero_points[0], in2_mult=m2, in2_shift=sh2,
                      out_offset=out_t.zero_points[0], out_mult=mo, out_shift=sho, act_min=act_min, act_max=act_max)
        return self.call(op, "tq_add", "tq_add_params", fields, [], (), inputs=op.inputs[:2])

    def softmax(self, op: Operator) -> KernelCall:
        o: SoftmaxOptions = op.options
        in_t = self.int8_act(op, op.inputs[0], "input")
        out_t = self.int8_act(op, op.outputs[0], "output")
        if abs(out_t.scales[0] - 1.0 / 256) > 1e-6 or out_t.zero_points[0] != -128:
            raise self.fail(op, f"int8 softmax output must have scale 1/256 and zero point -128, has "
                                f"{out_t.scales[0]} / {out_t.zero_points[0]}")
        bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
        real = min(float(o.beta) * _f32(in_t.scales[0]) * float(1 << (31 - bits)), float((1 << 31) - 1))
        multiplier, left_shift = quantize_multiplier(real)
        if left_shift < 0:
            raise self.fail(op, f"softmax input scale {in_t.scales[0]} with beta {o.beta} is too small")
        radius = math.floor(1.0 * ((1 << bits) - 1) * float(1 << (31 - bits)) / float(1 << left_shift))
        depth = in_t.shape[-1]
        if depth > SOFTMAX_MAX_DEPTH or in_t.size != out_t.size:
            raise self.fail(op, f"softmax over {depth} values into {out_t.size} of {in_t.size}: the kernel needs "
                                f"equal sizes and at most {SOFTMAX_MAX_DEPTH} values per row (int32 sum)")
        fields = dict(rows=in_t.size // depth, depth=depth, input_multiplier=multiplier,
                      input_left_shift=left_shift, diff_min=-radius)
        return self.call(op, "tq_softmax", "tq_softmax_params", fields, [], ())

    def call(self, op: Operator, kernel: str, params_type: str, fields: dict, arrays: list[ConstArray],
             pointer_fields: tuple[str, ...], inputs: tuple[int, ...] | None = None,
             const_inputs: tuple[tuple[int, str], ...] = (), input_array: bool = False) -> KernelCall:
        """The call: integer fields, then pointer fields naming the first arrays; inputs default to op input 0.
        What it reads and writes comes from its parameters where the kernel has a rule (else the tensors'
        sizes), and its int32 arithmetic is proven not to overflow; the planner checks both against buffers."""
        inputs = tuple(op.inputs[:1]) if inputs is None else tuple(inputs)
        for k, v in fields.items():
            if not INT32_RANGE[0] <= int(v) <= INT32_RANGE[1]:
                raise self.fail(op, f"kernel parameter {k} = {int(v)} does not fit int32")
        extents = _extents(kernel, fields, {field: arr.values for field, arr in zip(pointer_fields, arrays)})
        if extents is None:
            reads, writes = tuple(self.g.tensors[i].nbytes for i in inputs), self.g.tensors[op.outputs[0]].nbytes
        else:
            reads, writes, counts = extents
            for field, arr, count in zip(pointer_fields, arrays, counts):
                if arr.values.size != count:
                    raise self.fail(op, f"constant array {field} has {arr.values.size} values, the kernel indexes "
                                        f"{count}")
            problem = _overflow_problem(kernel, {k: int(v) for k, v in fields.items()},
                                        {field: arr.values for field, arr in zip(pointer_fields, arrays)})
            if problem:
                raise self.fail(op, f"{problem}; refusing to generate C with undefined behaviour")
        values = [(k, str(int(v))) for k, v in fields.items()]
        values += [(field, arr.name) for field, arr in zip(pointer_fields, arrays)]
        generic = KernelCall(op.index, op.name, self.g.layer(op.outputs[0]), kernel, params_type, tuple(values),
                             inputs, op.outputs[0], tuple(arrays), tuple(const_inputs), input_array, tuple(reads),
                             writes)
        if self.optimize is Optimize.SIZE:
            return generic
        return self.specialize(op, generic, {k: int(v) for k, v in fields.items()},
                               dict(zip(pointer_fields, arrays)))

    def specialize(self, op: Operator, generic: KernelCall, fields: dict[str, int],
                   arrays: dict[str, ConstArray]) -> KernelCall:
        """The generic call (its bounds and overflow proven above) replaced by its family's specialised variant,
        when one applies: same tensors in and out, so the proof carries over to the sums it reorders; its own
        constant arrays must hold exactly what its indexing reaches."""
        variant = kernels.choose(generic.kernel, fields, arrays, f"op{op.index}")
        if variant is None:
            return generic
        for field, arr, count in zip(variant.pointer_fields, variant.arrays, variant.counts):
            if arr.values.size != count:
                raise self.fail(op, f"{variant.kernel}: constant array {field} has {arr.values.size} values, the "
                                    f"kernel indexes {count}")
        values = [(k, str(int(v))) for k, v in variant.fields]
        for k, v in variant.fields:
            if not INT32_RANGE[0] <= int(v) <= INT32_RANGE[1]:
                raise self.fail(op, f"{variant.kernel}: parameter {k} = {int(v)} does not fit int32")
        values += [(field, arr.name) for field, arr in zip(variant.pointer_fields, variant.arrays)]
        return replace(generic, kernel=variant.kernel, params_type=variant.params_type, fields=tuple(values),
                       arrays=tuple(variant.arrays), scratch_bytes=(variant.scratch_bytes + 3) // 4 * 4)

    # ---- operands shared by the new families ----

    def options(self, op: Operator, cls):
        """The op's typed options; a flatbuffer without them (they carry required fields) is refused."""
        if not isinstance(op.options, cls):
            raise self.fail(op, f"has no {cls.__name__}; the .tflite omits options this op needs")
        return op.options

    def int8_operand(self, op: Operator, index: int, role: str, name: str, consts: list):
        """An int8 activation, or a constant int8 tensor that becomes a flash array (added to `consts`)."""
        t = self.g.tensors[index]
        if not t.is_constant:
            return self.int8_act(op, index, role)
        if t.dtype != "int8" or len(t.scales) != 1 or len(t.zero_points) != 1:
            raise self.fail(op, f"{role} tensor {t.name!r} is a constant {t.dtype} with {len(t.scales)} scales; "
                                f"constant operands must be int8 with one scale and zero point")
        consts.append((index, ConstArray(name, "int8_t", np.ascontiguousarray(t.data).reshape(-1))))
        return t

    def const_ints(self, op: Operator, index: int, role: str) -> np.ndarray:
        t = self.g.tensors[index]
        if not t.is_constant or t.dtype not in ("int32", "int64"):
            raise self.fail(op, f"{role} tensor {t.name!r} must be a constant int32, is {t.dtype}"
                                f"{'' if t.is_constant else ' computed at run time'}")
        return t.data.astype(np.int64).reshape(-1)

    def shape4(self, op: Operator, t) -> tuple[int, int, int, int]:
        if len(t.shape) > 4:
            raise self.fail(op, f"tensor {t.name!r} has {len(t.shape)} dimensions; at most 4 are supported")
        return (1,) * (4 - len(t.shape)) + tuple(t.shape)

    # ---- elementwise on two tensors, with broadcasting ----

    def broadcast(self, op: Operator, a, b, out) -> dict:
        """Output dims and each input's element strides per output dim (0 where it broadcasts), all 4-D."""
        dims, sa, sb = self.shape4(op, out), self.shape4(op, a), self.shape4(op, b)
        fields = {f"n{k}": d for k, d in enumerate(dims)}
        for prefix, shape, t in (("a", sa, a), ("b", sb, b)):
            strides = [int(np.prod(shape[k + 1:])) for k in range(4)]
            for k in range(4):
                if shape[k] != dims[k]:
                    if shape[k] != 1:
                        raise self.fail(op, f"input {t.name!r} of shape {t.shape} does not broadcast to "
                                            f"{out.shape}")
                    strides[k] = 0
            fields.update({f"{prefix}{k}": s for k, s in enumerate(strides)})
        return fields

    def binary(self, op: Operator) -> KernelCall:
        """ADD (broadcasting), SUB, MUL, MAXIMUM, MINIMUM: int8 with each input's own quantization."""
        name = f"op{op.index}"
        consts: list = []
        a = self.int8_operand(op, op.inputs[0], "input 1", f"{name}_in1", consts)
        b = self.int8_operand(op, op.inputs[1], "input 2", f"{name}_in2", consts)
        out_t = self.int8_act(op, op.outputs[0], "output")
        if a.is_constant and b.is_constant:
            raise self.fail(op, "both inputs are constant; nothing to compute at run time")
        fields = self.broadcast(op, a, b, out_t)
        act = getattr(op.options, "activation", Activation.NONE)
        act_min, act_max = activation_range(act, out_t.scales[0], out_t.zero_points[0], self.g.where(op))
        arith = dict(left_shift=0, in1_offset=-a.zero_points[0], in1_mult=0, in1_shift=0,
                     in2_offset=-b.zero_points[0], in2_mult=0, in2_shift=0, out_offset=out_t.zero_points[0],
                     out_mult=0, out_shift=0, act_min=act_min, act_max=act_max)
        s1, s2, so = a.scales[0], b.scales[0], out_t.scales[0]
        if op.name == "ADD":
            twice_max = 2.0 * max(_f32(s1), _f32(s2))
            m1, m2 = quantize_multiplier(_f32(s1) / twice_max), quantize_multiplier(_f32(s2) / twice_max)
            mo = quantize_multiplier(twice_max / (float(1 << ADD_LEFT_SHIFT) * _f32(so)))
        elif op.name == "SUB":  # TFLM's SUB combines the scales in float32, ADD in double
            f1, f2, fo = np.float32(s1), np.float32(s2), np.float32(so)
            twice_max = np.float32(2) * max(f1, f2)
            m1, m2 = quantize_multiplier(float(f1 / twice_max)), quantize_multiplier(float(f2 / twice_max))
            mo = quantize_multiplier(float(twice_max / (np.float32(1 << ADD_LEFT_SHIFT) * fo)))
        if op.name in ("ADD", "SUB"):
            arith.update(left_shift=ADD_LEFT_SHIFT, in1_mult=m1[0], in1_shift=m1[1], in2_mult=m2[0],
                         in2_shift=m2[1], out_mult=mo[0], out_shift=mo[1])
        elif op.name == "MUL":
            arith.update(zip(("out_mult", "out_shift"), quantize_multiplier(_f32(s1) * _f32(s2) / _f32(so))))
        kernel = {"ADD": "tq_add_broadcast", "SUB": "tq_sub", "MUL": "tq_mul", "MAXIMUM": "tq_maximum",
                  "MINIMUM": "tq_minimum"}[op.name]
        return self.call(op, kernel, "tq_binary_params", {**fields, **arith}, [c for _, c in consts], (),
                         inputs=op.inputs[:2], const_inputs=tuple((i, c.name) for i, c in consts))

    # ---- elementwise on one tensor: TFLM's arithmetic replayed into a 256-entry table ----

    def table_op(self, op: Operator) -> KernelCall:
        in_t = self.int8_act(op, op.inputs[0], "input")
        out_t = self.int8_act(op, op.outputs[0], "output")
        if in_t.size != out_t.size:
            raise self.fail(op, f"input {in_t.shape} and output {out_t.shape} differ in size")
        si, zi, so, zo = in_t.scales[0], in_t.zero_points[0], out_t.scales[0], out_t.zero_points[0]
        if op.name == "LOGISTIC" and zo != -128:
            raise self.fail(op, f"int8 logistic output must have zero point -128 (TFLM's requirement), has {zo}")
        try:
            table = {
                "LOGISTIC": lambda: lut.logistic(si, zi),
                "TANH": lambda: lut.tanh(si, zi),
                "HARD_SWISH": lambda: lut.hard_swish(si, zi, so, zo),
                "LEAKY_RELU": lambda: lut.leaky_relu(si, zi, so, zo, self.options(op, LeakyReluOptions).alpha),
                "QUANTIZE": lambda: lut.requantize(si, zi, so, zo),
                "RELU": lambda: lut.relu(si, zi, so, zo),
                "RELU6": lambda: lut.relu6(si, zi),
            }[op.name]()
        except ValueError as exc:
            raise self.fail(op, str(exc)) from exc
        arrays = [ConstArray(f"op{op.index}_table", "int8_t", table)]
        return self.call(op, "tq_lut", "tq_lut_params", dict(size=in_t.size), arrays, ("table",))

    # ---- reduction ----

    def mean(self, op: Operator) -> KernelCall:
        """MEAN over contiguous axes (GlobalAveragePooling1D/2D): TFLM's QuantizedMeanOrSum."""
        in_t = self.int8_act(op, op.inputs[0], "input")
        out_t = self.int8_act(op, op.outputs[0], "output")
        rank = len(in_t.shape)
        axes = sorted({int(a) % rank for a in self.const_ints(op, op.inputs[1], "axis")}) if rank else []
        if not axes or axes != list(range(axes[0], axes[-1] + 1)):
            raise self.fail(op, f"reduces axes {axes} of {in_t.shape}; only one contiguous run of axes is supported")
        outer = int(np.prod(in_t.shape[:axes[0]]))
        count = int(np.prod(in_t.shape[axes[0]:axes[-1] + 1]))
        inner = int(np.prod(in_t.shape[axes[-1] + 1:]))
        if outer * inner != out_t.size:
            raise self.fail(op, f"output {out_t.shape} does not fit reducing {in_t.shape} over axes {axes}")
        mult, shift = quantize_multiplier(_f32(in_t.scales[0]) / _f32(out_t.scales[0]))
        pot = min(count.bit_length() - 1, 32, 31 + shift)
        mult = (mult << pot) // count
        zp_sum = in_t.zero_points[0] * count
        if not -(1 << 31) <= zp_sum < (1 << 31):
            raise self.fail(op, f"{count} values per mean overflow int32")
        fields = dict(outer=outer, count=count, inner=inner, input_zp_sum=zp_sum, mult=mult, shift=shift - pot,
                      output_offset=out_t.zero_points[0])
        return self.call(op, "tq_mean", "tq_mean_params", fields, [], ())

    # ---- data movement ----

    def concatenation(self, op: Operator) -> KernelCall:
        out_t = self.int8_act(op, op.outputs[0], "output")
        o: ConcatenationOptions = self.options(op, ConcatenationOptions)
        if o.activation is not Activation.NONE:
            raise self.fail(op, f"fused activation {o.activation.name} on a concatenation is not supported")
        rank = len(out_t.shape)
        axis = o.axis + rank if o.axis < 0 else o.axis
        consts: list = []
        ins = [self.int8_operand(op, i, f"input {k + 1}", f"op{op.index}_in{k + 1}", consts)
               for k, i in enumerate(op.inputs)]
        for t in ins:
            if t.scales != out_t.scales or t.zero_points != out_t.zero_points:
                raise self.fail(op, f"input {t.name!r} is quantized differently from the output; TFLM requires "
                                    f"the same scale and zero point")
            if len(t.shape) != rank or t.shape[:axis] != out_t.shape[:axis]:
                raise self.fail(op, f"input {t.name!r} of shape {t.shape} does not fit {out_t.shape} on axis {axis}")
        chunks = np.array([int(np.prod(t.shape[axis:])) for t in ins], np.int32)
        if int(chunks.sum()) != int(np.prod(out_t.shape[axis:])):
            raise self.fail(op, f"inputs do not add up to the output {out_t.shape} on axis {axis}")
        arrays = [ConstArray(f"op{op.index}_chunks", "int32_t", chunks)] + [c for _, c in consts]
        fields = dict(outer=int(np.prod(out_t.shape[:axis])), count=len(ins))
        return self.call(op, "tq_concatenation", "tq_concat_params", fields, arrays, ("chunk",),
                         inputs=op.inputs, const_inputs=tuple((i, c.name) for i, c in consts), input_array=True)

    def pad(self, op: Operator) -> KernelCall:
        """PAD and PADV2 with constant paddings; the pad value is the output zero point or PADV2's constant."""
        in_t = self.int8_act(op, op.inputs[0], "input")
        out_t = self.int8_act(op, op.outputs[0], "output")
        paddings = self.const_ints(op, op.inputs[1], "paddings").reshape(-1, 2)
        if len(paddings) != len(in_t.shape) or (paddings < 0).any():
            raise self.fail(op, f"paddings {paddings.tolist()} do not fit input {in_t.shape}")
        value = out_t.zero_points[0]
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            c = self.g.tensors[op.inputs[2]]
            if not c.is_constant or c.dtype != "int8" or c.size != 1:
                raise self.fail(op, f"pad value {c.name!r} must be one constant int8")
            value = int(c.data.reshape(-1)[0])
        before = (0,) * (4 - len(paddings)) + tuple(int(p) for p in paddings[:, 0])
        in4, out4 = self.shape4(op, in_t), self.shape4(op, out_t)
        if any(i + p > o for i, p, o in zip(in4, before, out4)):
            raise self.fail(op, f"input {in_t.shape} padded by {paddings.tolist()} does not fit {out_t.shape}")
        fields = {**{f"in{k}": d for k, d in enumerate(in4)}, **{f"out{k}": d for k, d in enumerate(out4)},
                  **{f"before{k}": d for k, d in enumerate(before)}, "value": value}
        return self.call(op, "tq_pad", "tq_pad_params", fields, [], ())

    def resize_nearest(self, op: Operator) -> KernelCall:
        """RESIZE_NEAREST_NEIGHBOR: TFLM's source row and column of every output pixel, computed in float32."""
        in_t = self.int8_act(op, op.inputs[0], "input")
        out_t = self.int8_act(op, op.outputs[0], "output")
        self.check_batch(op, in_t)
        if len(in_t.shape) != 4 or len(out_t.shape) != 4 or in_t.shape[3] != out_t.shape[3]:
            raise self.fail(op, f"expects 4-D NHWC tensors with equal channels, has {in_t.shape} -> {out_t.shape}")
        o: ResizeOptions = self.options(op, ResizeOptions)

        def source(out_size: int, in_size: int) -> np.ndarray:
            f = np.float32
            scale = (f(in_size - 1) / f(out_size - 1) if o.align_corners and out_size > 1
                     else f(in_size) / f(out_size))
            offset = f(0.5) if o.half_pixel_centers else f(0.0)
            idx = []
            for i in range(out_size):
                v = float((f(i) + offset) * scale)
                k = min(round_half_away(v) if o.align_corners else math.floor(v), in_size - 1)
                idx.append(max(0, k) if o.half_pixel_centers else k)
            return np.array(idx, np.int32)
        _, in_h, in_w, c = in_t.shape
        _, out_h, out_w, _ = out_t.shape
        arrays = [ConstArray(f"op{op.index}_rows", "int32_t", source(out_h, in_h)),
                  ConstArray(f"op{op.index}_cols", "int32_t", source(out_w, in_w))]
        fields = dict(in_w=in_w, channels=c, out_h=out_h, out_w=out_w)
        return self.call(op, "tq_resize_nearest", "tq_resize_params", fields, arrays, ("rows", "cols"))

    # ---- transposed convolution ----

    def transpose_conv(self, op: Operator) -> KernelCall:
        """TRANSPOSE_CONV (inputs: output shape, weights [out_c][k_h][k_w][in_c], input, optional bias)."""
        o: TransposeConvOptions = self.options(op, TransposeConvOptions)
        in_t = self.int8_act(op, op.inputs[2], "input")
        out_t = self.int8_act(op, op.outputs[0], "output")
        self.check_batch(op, in_t)
        if len(in_t.shape) != 4 or len(out_t.shape) != 4:
            raise self.fail(op, f"expects 4-D NHWC tensors, has {in_t.shape} -> {out_t.shape}")
        _, in_h, in_w, in_c = in_t.shape
        _, out_h, out_w, out_c = out_t.shape
        w = self.weights(op, op.inputs[1], out_c, 0)
        w_oc, k_h, k_w, w_ic = w.shape
        if w_oc != out_c or w_ic != in_c:
            raise self.fail(op, f"weights {w.shape} do not fit input {in_c} / output {out_c} channels")
        bias = np.zeros(out_c, np.int64)
        if len(op.inputs) > 3 and op.inputs[3] >= 0:
            b = self.g.tensors[op.inputs[3]]
            if b.dtype != "int32" or not b.is_constant or b.size != out_c:
                raise self.fail(op, f"bias {b.name!r} must be constant int32 of {out_c} values")
            bias = b.data.astype(np.int64).reshape(-1)

        def padding(stride: int, size: int, k: int) -> int:  # TFLM pads as for a convolution of the output
            conv_out = expected_out_size(o.padding, stride, 1, size, k)
            return max(0, (conv_out - 1) * stride + k - size) // 2
        name = f"op{op.index}"
        act_min, act_max = activation_range(o.activation, out_t.scales[0], out_t.zero_points[0], self.g.where(op))
        arrays = [ConstArray(f"{name}_weights", "int8_t", np.ascontiguousarray(w.data).reshape(-1)),
                  ConstArray(f"{name}_bias", "int32_t", _int32(bias, self.g.where(op))),
                  *self.multipliers(op, in_t, w, out_t, out_c, name)]
        fields = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h, k_w=k_w,
                      stride_h=o.stride_h, stride_w=o.stride_w, dil_h=1, dil_w=1,
                      pad_h=padding(o.stride_h, out_h, k_h), pad_w=padding(o.stride_w, out_w, k_w),
                      depth_multiplier=1, input_offset=-in_t.zero_points[0], output_offset=out_t.zero_points[0],
                      act_min=act_min, act_max=act_max)
        return self.call(op, "tq_transpose_conv", "tq_conv_params", fields, arrays,
                         ("weights", "bias", "mult", "shift"), inputs=(op.inputs[2],))


def _int32(values: np.ndarray, where: str) -> np.ndarray:
    if values.min(initial=0) < -(1 << 31) or values.max(initial=0) >= (1 << 31):
        raise UnsupportedOpError(f"{where}: folded bias does not fit int32")
    return values.astype(np.int32)


def supported_ops() -> tuple[str, ...]:
    """Names of the TFLite builtin ops the C engine runs (RESHAPE, SQUEEZE, EXPAND_DIMS as aliases), sorted."""
    schema_op = _schema().BuiltinOperator
    codes = [*_Lowerer(None).table(), schema_op.RESHAPE, schema_op.SQUEEZE, schema_op.EXPAND_DIMS]
    return tuple(sorted(op_name(c) for c in codes))


def lower(graph: Graph, optimize: Optimize = Optimize.SPEED) -> Lowered:
    """Kernel calls for every op, specialised per layer for `optimize`; raises UnsupportedOpError naming the op,
    its index and layer otherwise."""
    return _Lowerer(graph, optimize).lower()
