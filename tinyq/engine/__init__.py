"""tinyq's ahead-of-time compiler: the reader (the one gate for model bytes) -> the op table (one module per
op family, engine/ops) -> lowering -> memory plan -> generated C. ARCHITECTURE.md has the map."""

from .cengine import CEngine, generate
from .fixedpoint import Rounding
from .graph import Graph, Operator, Tensor
from .lower import Lowered, Optimize, lower, supported_ops
from .ops import TABLE, c_engine_ops, macs, op_macs, tflm_method
from .ops.base import ConstArray, KernelCall
from .plan import Plan, plan
from .reader import is_tflite, read_graph

__all__ = ["CEngine", "ConstArray", "Graph", "KernelCall", "Lowered", "Operator", "Optimize", "Plan", "Rounding",
           "TABLE", "Tensor", "c_engine_ops", "generate", "is_tflite", "lower", "macs", "op_macs", "plan", "read_graph",
           "supported_ops", "tflm_method"]
