"""What every family's lowering shares: operand checks, TFLite's parameter arithmetic, and the call builder that
proves a kernel's reads, writes and int32 arithmetic before any C exists.

The arithmetic mirrors TFLite Micro's reference kernels: multipliers from QuantizeMultiplier on the same double
expressions, activation ranges from the output quantization, TFLM's padding rule.
"""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedOpError
from ..fixedpoint import Rounding, f32, quantize_multiplier, round_half_away
from ..graph import Activation, Graph, Operator, Padding, Tensor
from .base import ConstArray, KernelCall, KernelRule

INT32_RANGE = (-(1 << 31), (1 << 31) - 1)


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


def expected_out_size(padding: Padding, stride: int, dilation: int, in_size: int, filter_size: int) -> int:
    effective = (filter_size - 1) * dilation + 1
    if padding is Padding.SAME:
        return (in_size + stride - 1) // stride
    return (in_size + stride - effective) // stride


def tflm_padding(padding: Padding, stride: int, dilation: int, in_size: int, filter_size: int,
                 out_size: int) -> int:
    """Leading padding as TFLM computes it (the trailing side is implied by bounds checks)."""
    if padding is Padding.VALID:
        return 0
    effective = (filter_size - 1) * dilation + 1
    return max(0, (out_size - 1) * stride + effective - in_size) // 2


def requant_problem(x_max: np.ndarray, mult: np.ndarray, shift: np.ndarray, out_offset: int) -> str | None:
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


def accumulator_problem(w_sum: np.ndarray, fields: dict[str, int], arrays: dict[str, np.ndarray]) -> str | None:
    """A multiply-accumulate kernel's worst case over every int8 input: per channel, the weights' absolute sum
    (`w_sum`) times the largest input magnitude (input offset included) plus the bias must fit int32, and so must
    its requantization; what could overflow (signed overflow is undefined behaviour in C), or None."""
    offset = fields.get("input_offset", 0)
    max_in = max(abs(-128 + offset), abs(127 + offset))
    bias = np.abs(arrays["bias"].astype(np.int64))
    acc = w_sum * max_in + bias
    if int(acc.max(initial=0)) > INT32_RANGE[1]:
        c = int(acc.argmax())
        return (f"the int32 accumulator of channel {c} could reach {int(acc[c])} (weights' absolute sum "
                f"{int(w_sum[c])} x input magnitude {max_in} + bias {int(bias[c])})")
    return requant_problem(acc, arrays["mult"], arrays["shift"], fields["output_offset"])


def int32_values(values: np.ndarray, where: str) -> np.ndarray:
    """A folded bias as int32, refused where it does not fit."""
    if values.min(initial=0) < -(1 << 31) or values.max(initial=0) >= (1 << 31):
        raise UnsupportedOpError(f"{where}: folded bias does not fit int32")
    return values.astype(np.int32)


class LowerContext:
    """One graph's lowering state shared by the families: the graph, and operand checks that raise naming the op."""

    def __init__(self, graph: Graph, rounding: Rounding = Rounding.DOUBLE) -> None:
        self.g = graph
        self.rounding = Rounding(rounding)  # the requantization rule tables and fused constants follow

    def fail(self, op: Operator, what: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self.g.where(op)}: {what}")

    def int8_act(self, op: Operator, index: int, role: str) -> Tensor:
        t = self.g.tensors[index]
        if t.dtype != "int8":
            raise self.fail(op, f"{role} tensor {t.name!r} is {t.dtype}; the C engine runs int8 only")
        if len(t.scales) != 1 or len(t.zero_points) != 1:
            raise self.fail(op, f"{role} tensor {t.name!r} needs one scale and zero point, has {len(t.scales)}")
        if t.is_constant:
            raise self.fail(op, f"{role} tensor {t.name!r} is constant; constant activations are not supported")
        return t

    def check_batch(self, op: Operator, t: Tensor) -> None:
        if not t.shape or t.shape[0] != 1:
            raise self.fail(op, f"tensor {t.name!r} has shape {t.shape}; the batch must be fixed at 1")

    def weights(self, op: Operator, index: int, channels: int, channel_axis: int) -> Tensor:
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

    def bias(self, op: Operator, channels: int, position: int = 2) -> np.ndarray:
        if len(op.inputs) <= position or op.inputs[position] < 0:
            return np.zeros(channels, np.int64)
        b = self.g.tensors[op.inputs[position]]
        if b.dtype != "int32" or not b.is_constant or b.size != channels:
            raise self.fail(op, f"bias {b.name!r} must be constant int32 of {channels} values, is {b.dtype} "
                                f"{b.shape}")
        return b.data.astype(np.int64).reshape(-1)

    def multipliers(self, in_t: Tensor, w: Tensor, out_t: Tensor, channels: int, name: str) -> list[ConstArray]:
        scales = list(w.scales) if len(w.scales) == channels else [w.scales[0]] * channels
        pairs = [quantize_multiplier(f32(in_t.scales[0]) * f32(s) / f32(out_t.scales[0])) for s in scales]
        return [ConstArray(f"{name}_mult", "int32_t", np.array([m for m, _ in pairs], np.int32)),
                ConstArray(f"{name}_shift", "int8_t", np.array([s for _, s in pairs], np.int8))]

    def activation(self, op: Operator, act: Activation, out_t: Tensor) -> tuple[int, int]:
        return activation_range(act, out_t.scales[0], out_t.zero_points[0], self.g.where(op))

    def options(self, op: Operator, cls):
        """The op's typed options; a flatbuffer without them (they carry required fields) is refused."""
        if not isinstance(op.options, cls):
            raise self.fail(op, f"has no {cls.__name__}; the .tflite omits options this op needs")
        return op.options

    def int8_operand(self, op: Operator, index: int, role: str, name: str, consts: list) -> Tensor:
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

    def shape4(self, op: Operator, t: Tensor) -> tuple[int, int, int, int]:
        if len(t.shape) > 4:
            raise self.fail(op, f"tensor {t.name!r} has {len(t.shape)} dimensions; at most 4 are supported")
        return (1,) * (4 - len(t.shape)) + tuple(t.shape)

    def call(self, op: Operator, rule: KernelRule, fields: dict, arrays: list[ConstArray],
             inputs: tuple[int, ...] | None = None, const_inputs: tuple[tuple[int, str], ...] = (),
             input_array: bool = False, output: int | None = None) -> KernelCall:
        """The call: integer fields, then the rule's pointer fields naming the first arrays; inputs default to op
        input 0, the output to op output 0. What it reads and writes comes from the rule's extents (else the tensors' sizes), and its int32
        arithmetic is proven not to overflow; the planner checks both against buffers."""
        inputs = tuple(op.inputs[:1]) if inputs is None else tuple(inputs)
        output = op.outputs[0] if output is None else output
        for k, v in fields.items():
            if not INT32_RANGE[0] <= int(v) <= INT32_RANGE[1]:
                raise self.fail(op, f"kernel parameter {k} = {int(v)} does not fit int32")
        ints = {k: int(v) for k, v in fields.items()}
        values_by_field = {f: arr.values for f, arr in zip(rule.pointer_fields, arrays)}
        extents = rule.extents(ints, values_by_field) if rule.extents is not None else None
        if extents is None:
            reads, writes = tuple(self.g.tensors[i].nbytes for i in inputs), self.g.tensors[output].nbytes
        else:
            reads, writes, counts = extents
            for f, arr, count in zip(rule.pointer_fields, arrays, counts):
                if arr.values.size != count:
                    raise self.fail(op, f"constant array {f} has {arr.values.size} values, the kernel indexes "
                                        f"{count}")
            problem = rule.overflow(ints, values_by_field) if rule.overflow is not None else None
            if problem:
                raise self.fail(op, f"{problem}; refusing to generate C with undefined behaviour")
        values = [(k, str(v)) for k, v in ints.items()]
        values += [(f, arr.name) for f, arr in zip(rule.pointer_fields, arrays)]
        return KernelCall(op.index, op.name, self.g.layer(output), rule.kernel, rule.params_type,
                          tuple(values), inputs, output, tuple(arrays), tuple(const_inputs), input_array,
                          tuple(reads), writes, rule=rule)


def fields_of(call: KernelCall) -> dict[str, int]:
    """A call's integer fields (pointer fields left out)."""
    return {k: int(v) for k, v in call.fields if v.lstrip("-").isdigit()}


def array_of(call: KernelCall, suffix: str) -> np.ndarray:
    """The call's constant array whose name ends with `suffix`, as int64."""
    return next(a.values for a in call.arrays if a.name.endswith(suffix)).astype(np.int64)
