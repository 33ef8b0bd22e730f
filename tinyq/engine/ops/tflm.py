"""TFLite Micro's op registration: the MicroMutableOpResolver Add method of every builtin op TFLM runs (names as
in TFLM's micro_mutable_op_resolver.h), and the operand types a full-integer graph gives each op. The op table
(ops/__init__.py) joins it with the C engine's families."""

from __future__ import annotations

from ..schema import BuiltinOperator as B

TFLM_METHODS: dict[int, str] = {
    B.ABS: "AddAbs", B.ADD: "AddAdd", B.ADD_N: "AddAddN", B.ARG_MAX: "AddArgMax", B.ARG_MIN: "AddArgMin",
    B.AVERAGE_POOL_2D: "AddAveragePool2D", B.BATCH_MATMUL: "AddBatchMatMul",
    B.BATCH_TO_SPACE_ND: "AddBatchToSpaceNd", B.BROADCAST_ARGS: "AddBroadcastArgs",
    B.BROADCAST_TO: "AddBroadcastTo", B.CAST: "AddCast", B.CEIL: "AddCeil",
    B.CONCATENATION: "AddConcatenation", B.CONV_2D: "AddConv2D", B.COS: "AddCos", B.CUMSUM: "AddCumSum",
    B.DEPTH_TO_SPACE: "AddDepthToSpace", B.DEPTHWISE_CONV_2D: "AddDepthwiseConv2D",
    B.DEQUANTIZE: "AddDequantize", B.DIV: "AddDiv", B.ELU: "AddElu", B.EQUAL: "AddEqual", B.EXP: "AddExp",
    B.EXPAND_DIMS: "AddExpandDims", B.FILL: "AddFill", B.FLOOR: "AddFloor", B.FLOOR_DIV: "AddFloorDiv",
    B.FLOOR_MOD: "AddFloorMod", B.FULLY_CONNECTED: "AddFullyConnected", B.GATHER: "AddGather",
    B.GATHER_ND: "AddGatherNd", B.GREATER: "AddGreater", B.GREATER_EQUAL: "AddGreaterEqual",
    B.HARD_SWISH: "AddHardSwish", B.L2_NORMALIZATION: "AddL2Normalization", B.L2_POOL_2D: "AddL2Pool2D",
    B.LEAKY_RELU: "AddLeakyRelu", B.LESS: "AddLess", B.LESS_EQUAL: "AddLessEqual", B.LOG: "AddLog",
    B.LOGICAL_AND: "AddLogicalAnd", B.LOGICAL_NOT: "AddLogicalNot", B.LOGICAL_OR: "AddLogicalOr",
    B.LOGISTIC: "AddLogistic", B.LOG_SOFTMAX: "AddLogSoftmax", B.MAXIMUM: "AddMaximum",
    B.MAX_POOL_2D: "AddMaxPool2D", B.MEAN: "AddMean", B.MINIMUM: "AddMinimum", B.MIRROR_PAD: "AddMirrorPad",
    B.MUL: "AddMul", B.NEG: "AddNeg", B.NOT_EQUAL: "AddNotEqual", B.PACK: "AddPack", B.PAD: "AddPad",
    B.PADV2: "AddPadV2", B.PRELU: "AddPrelu", B.QUANTIZE: "AddQuantize", B.REDUCE_MAX: "AddReduceMax",
    B.REDUCE_MIN: "AddReduceMin", B.RELU: "AddRelu", B.RELU6: "AddRelu6", B.RESHAPE: "AddReshape",
    B.RESIZE_BILINEAR: "AddResizeBilinear", B.RESIZE_NEAREST_NEIGHBOR: "AddResizeNearestNeighbor",
    B.REVERSE_V2: "AddReverseV2", B.ROUND: "AddRound", B.RSQRT: "AddRsqrt", B.SELECT_V2: "AddSelectV2",
    B.SHAPE: "AddShape", B.SIN: "AddSin", B.SLICE: "AddSlice", B.SOFTMAX: "AddSoftmax",
    B.SPACE_TO_BATCH_ND: "AddSpaceToBatchNd", B.SPACE_TO_DEPTH: "AddSpaceToDepth", B.SPLIT: "AddSplit",
    B.SPLIT_V: "AddSplitV", B.SQRT: "AddSqrt", B.SQUARE: "AddSquare",
    B.SQUARED_DIFFERENCE: "AddSquaredDifference", B.SQUEEZE: "AddSqueeze", B.STRIDED_SLICE: "AddStridedSlice",
    B.SUB: "AddSub", B.SUM: "AddSum", B.SVDF: "AddSvdf", B.TANH: "AddTanh", B.TRANSPOSE: "AddTranspose",
    B.TRANSPOSE_CONV: "AddTransposeConv", B.UNPACK: "AddUnpack",
    B.UNIDIRECTIONAL_SEQUENCE_LSTM: "AddUnidirectionalSequenceLSTM", B.ZEROS_LIKE: "AddZerosLike",
}

# Ops whose input 1 is int8 weights and input 2 the bias; ops whose inputs past the first are int32 shape or
# index operands; TRANSPOSE_CONV's inputs (output shape, weights, input, bias); the ops at a float model's edges.
WEIGHTED = frozenset({B.CONV_2D, B.DEPTHWISE_CONV_2D, B.FULLY_CONNECTED})
SHAPE_OPERANDS = frozenset({B.RESHAPE, B.MEAN, B.PAD, B.TRANSPOSE, B.SUM, B.REDUCE_MAX, B.STRIDED_SLICE,
                            B.CONCATENATION, B.PADV2, B.EXPAND_DIMS, B.RESIZE_NEAREST_NEIGHBOR, B.RESIZE_BILINEAR,
                            B.TILE, B.SLICE, B.GATHER, B.SPLIT_V})
EDGE_OPS = frozenset({B.QUANTIZE, B.DEQUANTIZE})


def operand_dtypes(code: int, role: str, position: int, activations: str, float_io: bool) -> set[str]:
    """dtypes a full-integer graph may have at one operand of a builtin op: `activations` (int8, or int16 in
    16x8 mode) for activations, int8 weights, int32 biases (int64 too in 16x8 mode), int32 shape operands, and
    float32 at the edges when the model's I/O stays float."""
    wide_bias = {"int32"} if activations == "int8" else {"int32", "int64"}
    if code in EDGE_OPS and float_io:
        return {activations, "float32"}
    if role != "input":
        return {activations}
    if code in WEIGHTED and position in (1, 2):
        return {"int8"} if position == 1 else wide_bias
    if code == B.TRANSPOSE_CONV:
        return ({"int32"}, {"int8"}, {activations}, wide_bias)[min(position, 3)]
    if code == B.SPLIT:  # (axis, input)
        return {"int32"} if position == 0 else {activations}
    if code in SHAPE_OPERANDS and position >= 1:
        return {activations, "int32"}
    return {activations}
