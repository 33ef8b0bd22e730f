"""RESHAPE, SQUEEZE, EXPAND_DIMS: another name for the same bytes. They lower to no call: the planner places the
output where the input is (an alias), provided size and quantization are unchanged."""

from __future__ import annotations

from ..schema import BuiltinOperator
from .base import OpDef, OpSpec, same_size_check

_ALIAS = OpSpec((1, 2), same_dtype=(0,), check=same_size_check)

OPS = (
    OpDef(BuiltinOperator.RESHAPE, "shape", OpSpec((1, 2), options="ReshapeOptionsT", same_dtype=(0,),
                                                   check=same_size_check), alias=True),
    OpDef(BuiltinOperator.SQUEEZE, "shape", _ALIAS, alias=True),
    OpDef(BuiltinOperator.EXPAND_DIMS, "shape", _ALIAS, alias=True),
)
