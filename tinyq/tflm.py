"""TFLite Micro's op resolver for a model: which MicroMutableOpResolver Add method registers each builtin op."""

from __future__ import annotations

from .emit import camel
from .errors import UnsupportedOpError
from .graph import read_graph


def _table() -> dict[int, str]:
    """Builtin operator enum -> MicroMutableOpResolver method (names as in TFLM's micro_mutable_op_resolver.h)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    op = schema.BuiltinOperator
    return {
        op.ABS: "AddAbs", op.ADD: "AddAdd", op.ADD_N: "AddAddN", op.ARG_MAX: "AddArgMax", op.ARG_MIN: "AddArgMin",
        op.AVERAGE_POOL_2D: "AddAveragePool2D", op.BATCH_MATMUL: "AddBatchMatMul",
        op.BATCH_TO_SPACE_ND: "AddBatchToSpaceNd", op.BROADCAST_ARGS: "AddBroadcastArgs",
        op.BROADCAST_TO: "AddBroadcastTo", op.CAST: "AddCast", op.CEIL: "AddCeil",
        op.CONCATENATION: "AddConcatenation", op.CONV_2D: "AddConv2D", op.COS: "AddCos", op.CUMSUM: "AddCumSum",
        op.DEPTH_TO_SPACE: "AddDepthToSpace", op.DEPTHWISE_CONV_2D: "AddDepthwiseConv2D",
        op.DEQUANTIZE: "AddDequantize", op.DIV: "AddDiv", op.ELU: "AddElu", op.EQUAL: "AddEqual", op.EXP: "AddExp",
        op.EXPAND_DIMS: "AddExpandDims", op.FILL: "AddFill", op.FLOOR: "AddFloor", op.FLOOR_DIV: "AddFloorDiv",
        op.FLOOR_MOD: "AddFloorMod", op.FULLY_CONNECTED: "AddFullyConnected", op.GATHER: "AddGather",
        op.GATHER_ND: "AddGatherNd", op.GREATER: "AddGreater", op.GREATER_EQUAL: "AddGreaterEqual",
        op.HARD_SWISH: "AddHardSwish", op.L2_NORMALIZATION: "AddL2Normalization", op.L2_POOL_2D: "AddL2Pool2D",
        op.LEAKY_RELU: "AddLeakyRelu", op.LESS: "AddLess", op.LESS_EQUAL: "AddLessEqual", op.LOG: "AddLog",
        op.LOGICAL_AND: "AddLogicalAnd", op.LOGICAL_NOT: "AddLogicalNot", op.LOGICAL_OR: "AddLogicalOr",
        op.LOGISTIC: "AddLogistic", op.LOG_SOFTMAX: "AddLogSoftmax", op.MAXIMUM: "AddMaximum",
        op.MAX_POOL_2D: "AddMaxPool2D", op.MEAN: "AddMean", op.MINIMUM: "AddMinimum", op.MIRROR_PAD: "AddMirrorPad",
        op.MUL: "AddMul", op.NEG: "AddNeg", op.NOT_EQUAL: "AddNotEqual", op.PACK: "AddPack", op.PAD: "AddPad",
        op.PADV2: "AddPadV2", op.PRELU: "AddPrelu", op.QUANTIZE: "AddQuantize", op.REDUCE_MAX: "AddReduceMax",
        op.REDUCE_MIN: "AddReduceMin", op.RELU: "AddRelu", op.RELU6: "AddRelu6", op.RESHAPE: "AddReshape",
        op.RESIZE_BILINEAR: "AddResizeBilinear", op.RESIZE_NEAREST_NEIGHBOR: "AddResizeNearestNeighbor",
        op.REVERSE_V2: "AddReverseV2", op.ROUND: "AddRound", op.RSQRT: "AddRsqrt", op.SELECT_V2: "AddSelectV2",
        op.SHAPE: "AddShape", op.SIN: "AddSin", op.SLICE: "AddSlice", op.SOFTMAX: "AddSoftmax",
        op.SPACE_TO_BATCH_ND: "AddSpaceToBatchNd", op.SPACE_TO_DEPTH: "AddSpaceToDepth", op.SPLIT: "AddSplit",
        op.SPLIT_V: "AddSplitV", op.SQRT: "AddSqrt", op.SQUARE: "AddSquare",
        op.SQUARED_DIFFERENCE: "AddSquaredDifference", op.SQUEEZE: "AddSqueeze", op.STRIDED_SLICE: "AddStridedSlice",
        op.SUB: "AddSub", op.SUM: "AddSum", op.SVDF: "AddSvdf", op.TANH: "AddTanh", op.TRANSPOSE: "AddTranspose",
        op.TRANSPOSE_CONV: "AddTransposeConv", op.UNPACK: "AddUnpack",
        op.UNIDIRECTIONAL_SEQUENCE_LSTM: "AddUnidirectionalSequenceLSTM", op.ZEROS_LIKE: "AddZerosLike",
    }


def resolver_methods(tflite: bytes) -> tuple[str, ...]:
    """The Add methods the model needs, distinct, in first-use order; an op TFLM cannot register raises."""
    graph = read_graph(tflite)
    table = _table()
    methods = []
    for op in graph.operators:
        method = table.get(op.code)
        if method is None:
            raise UnsupportedOpError(f"{graph.where(op)}: TFLM's MicroMutableOpResolver has no Add method for it")
        if method not in methods:
            methods.append(method)
    return tuple(methods)


def resolver_values(tflite: bytes, ident: str) -> dict:
    """Plain values for templates/op_resolver.h.j2: identifier, resolver type name, op count, methods."""
    methods = resolver_methods(tflite)
    type_name = f"{camel(ident)}OpResolver"
    return dict(ident=ident, guard=f"{ident.upper()}_OP_RESOLVER_H_", type_name=type_name, op_count=len(methods),
                methods=list(methods))
