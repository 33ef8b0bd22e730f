"""Lowering: each supported int8 op of a Graph becomes a kernel call with every integer parameter precomputed.

The arithmetic mirrors TFLite Micro's reference kernels: multipliers from QuantizeMultiplier on the same double
expressions, activation ranges from the output quantization, TFLM's padding rule. The input zero point is
folded into the bias wherever every filter tap reads real input (fully connected, VALID convolutions), which
leaves the integer sums unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import UnsupportedOpError
from .graph import (Activation, AddOptions, ConvOptions, FullyConnectedOptions, Graph, Operator, Padding,
                    PoolOptions, SoftmaxOptions, _schema, op_name)

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
    if kernel in ("tq_conv2d", "tq_depthwise_conv2d", "tq_fully_connected"):
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
    if kernel == "tq_add":
        x = 255 << f["left_shift"]
        sides = [((x * f[f"in{i}_mult"]) >> 31 >> max(-f[f"in{i}_shift"], 0)) + 2 for i in (1, 2)]
        if x > limit or f["in1_shift"] > 0 or f["in2_shift"] > 0:
            return "input rescaling could overflow int32"
        return _requant_problem(np.array([sum(sides)]), np.array([f["out_mult"]]), np.array([f["out_shift"]]),
                                f["out_offset"])
    if kernel == "tq_average_pool":
        area = min(f["k_h"], f["in_h"]) * min(f["k_w"], f["in_w"])
        if area * 128 + area > limit:
            return f"the int32 sum of a {area}-value pooling window could overflow"
    return None


def _extents(kernel: str, f: dict) -> tuple[tuple[int, ...], int, tuple[int, ...]] | None:
    """What a kernel touches given its parameters: bytes read per input, bytes written, elements of each
    constant array it indexes (in pointer-field order); None for a kernel without a rule (tensor sizes then)."""
    if kernel == "tq_conv2d":
        oc = f["out_c"]
        return ((f["in_h"] * f["in_w"] * f["in_c"],), f["out_h"] * f["out_w"] * oc,
                (oc * f["k_h"] * f["k_w"] * f["in_c"], oc, oc, oc))
    if kernel == "tq_depthwise_conv2d":
        oc = f["in_c"] * f["depth_multiplier"]
        return ((f["in_h"] * f["in_w"] * f["in_c"],), f["out_h"] * f["out_w"] * oc,
                (f["k_h"] * f["k_w"] * oc, oc, oc, oc))
    if kernel == "tq_fully_connected":
        return (f["in_depth"],), f["out_depth"], (f["in_depth"] * f["out_depth"],) + (f["out_depth"],) * 3
    if kernel in ("tq_max_pool", "tq_average_pool"):
        return (f["in_h"] * f["in_w"] * f["channels"],), f["out_h"] * f["out_w"] * f["channels"], ()
    if kernel == "tq_add":
        return (f["size"], f["size"]), f["size"], ()
    if kernel == "tq_softmax":
        return (f["rows"] * f["depth"],), f["rows"] * f["depth"], ()
    return None


@dataclass(frozen=True)
class ConstArray:
    """A constant array the generated C keeps in flash."""

    name: str
    ctype: str
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.values.size * self.values.dtype.itemsize)


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
    reads: tuple[int, ...] = ()  # bytes the kernel reads from each input, from its parameters
    writes: int = 0  # bytes the kernel writes to its output, from its parameters


@dataclass(frozen=True)
class Lowered:
    """The kernel calls in order, and the tensors that are only another name for another tensor (RESHAPE)."""

    calls: tuple[KernelCall, ...]
    aliases: tuple[tuple[int, int], ...]  # (alias tensor, tensor it names)


def round_half_away(x: float) -> int:
    """Round to nearest, ties away from zero (C's round())."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = q * 2^(shift - 31) with q a Q0.31 value in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * float(1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return int(q_fixed), int(shift)


def _f32(x: float) -> float:
    """The double value of a float32 scale, as C++ gets from static_cast<double>(float)."""
    return float(np.float32(x))


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
    def __init__(self, graph: Graph) -> None:
        self.g = graph

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

    def lower(self) -> Lowered:
        schema_op = _schema().BuiltinOperator
        table = {
            schema_op.CONV_2D: self.conv,
            schema_op.DEPTHWISE_CONV_2D: self.conv,
            schema_op.FULLY_CONNECTED: self.fully_connected,
            schema_op.MAX_POOL_2D: self.pool,
            schema_op.AVERAGE_POOL_2D: self.pool,
            schema_op.ADD: self.add,
            schema_op.SOFTMAX: self.softmax,
        }
        if len(self.g.inputs) != 1 or len(self.g.outputs) != 1:
            raise UnsupportedOpError(f"the C engine runs graphs of one input and one output; this one has "
                                     f"{len(self.g.inputs)} inputs and {len(self.g.outputs)} outputs")
        calls, aliases = [], []
        for op in self.g.operators:
            if op.code == schema_op.RESHAPE:
                src = self.int8_act(op, op.inputs[0], "input")
                dst = self.int8_act(op, op.outputs[0], "output")
                if src.size != dst.size or src.scales != dst.scales or src.zero_points != dst.zero_points:
                    raise self.fail(op, "reshape changes size or quantization")
                aliases.append((op.outputs[0], op.inputs[0]))
                continue
            handler = table.get(op.code)
            if handler is None:
                supported = ", ".join(sorted([op_name(code) for code in table] + ["RESHAPE"]))
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
        if o.padding is Padding.VALID:
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
        if in_t.size != in_depth or out_t.size != out_depth:
            raise self.fail(op, f"input {in_t.shape} / output {out_t.shape} do not fit weights {w.shape} at "
                                f"batch 1")
        bias = self.bias(op, out_depth) - in_t.zero_points[0] * w.data.astype(np.int64).sum(axis=1)
        name = f"op{op.index}"
        act_min, act_max = activation_range(o.activation, out_t.scales[0], out_t.zero_points[0], self.g.where(op))
        arrays = [ConstArray(f"{name}_weights", "int8_t", np.ascontiguousarray(w.data).reshape(-1)),
                  ConstArray(f"{name}_bias", "int32_t", _int32(bias, self.g.where(op))),
                  *self.multipliers(op, in_t, w, out_t, out_depth, name)]
        fields = dict(in_depth=in_depth, out_depth=out_depth, output_offset=out_t.zero_points[0],
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
        a = self.int8_act(op, op.inputs[0], "input 1")
        b = self.int8_act(op, op.inputs[1], "input 2")
        out_t = self.int8_act(op, op.outputs[0], "output")
        if a.shape != b.shape or a.shape != out_t.shape:
            raise self.fail(op, f"shapes {a.shape} + {b.shape} -> {out_t.shape}: broadcasting is not supported")
        s1, s2, so = _f32(a.scales[0]), _f32(b.scales[0]), _f32(out_t.scales[0])
        twice_max = 2.0 * max(s1, s2)
        m1, sh1 = quantize_multiplier(s1 / twice_max)
        m2, sh2 = quantize_multiplier(s2 / twice_max)
        mo, sho = quantize_multiplier(twice_max / (float(1 << ADD_LEFT_SHIFT) * so))
        act_min, act_max = activation_range(o.activation, out_t.scales[0], out_t.zero_points[0], self.g.where(op))
        fields = dict(size=out_t.size, left_shift=ADD_LEFT_SHIFT, in1_offset=-a.zero_points[0], in1_mult=m1,
                      in1_shift=sh1, in2_offset=-b.zero_points[0], in2_mult=m2, in2_shift=sh2,
                      out_offset=out_t.zero_points[0], out_mult=mo, out_shift=sho, act_min=act_min, act_max=act_max)
        return self.call(op, "tq_add", "tq_add_params", fields, [], ())

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
             pointer_fields: tuple[str, ...]) -> KernelCall:
        inputs = tuple(i for i in op.inputs[:2 if kernel == "tq_add" else 1])
        for k, v in fields.items():
            if not INT32_RANGE[0] <= int(v) <= INT32_RANGE[1]:
                raise self.fail(op, f"kernel parameter {k} = {int(v)} does not fit int32")
        extents = _extents(kernel, fields)
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
        return KernelCall(op.index, op.name, self.g.layer(op.outputs[0]), kernel, params_type, tuple(values),
                          inputs, op.outputs[0], tuple(arrays), tuple(reads), writes)


def _int32(values: np.ndarray, where: str) -> np.ndarray:
    if values.min(initial=0) < -(1 << 31) or values.max(initial=0) >= (1 << 31):
        raise UnsupportedOpError(f"{where}: folded bias does not fit int32")
    return values.astype(np.int32)


def lower(graph: Graph) -> Lowered:
    """Kernel calls for every op; raises UnsupportedOpError naming the op, its index and layer otherwise."""
    return _Lowerer(graph).lower()
