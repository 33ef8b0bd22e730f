"""QUANTIZE and DEQUANTIZE. QUANTIZE from int8 to int8 (a requantization) runs as a 256-entry table through the
activation family's kernel; the C engine runs no other type change yet, which the reader's rules still cover."""

from __future__ import annotations

from .. import lut
from ..schema import BuiltinOperator
from .activation import lower_table
from .base import OpDef, OpSpec, same_shape_check

OPS = (
    OpDef(BuiltinOperator.QUANTIZE, "quantize", OpSpec((1, 1), check=same_shape_check), None,
          lambda ctx, op: lower_table(ctx, op, lambda c, o, i, out: lut.requantize(i.scales[0], i.zero_points[0],
                                                                                    out.scales[0],
                                                                                    out.zero_points[0],
                                                                                    c.rounding))),
    OpDef(BuiltinOperator.DEQUANTIZE, "quantize", OpSpec((1, 1), check=same_shape_check)),
)
