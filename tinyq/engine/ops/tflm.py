"""TFLite Micro's op registration: the MicroMutableOpResolver Add method of every builtin op TFLM runs (names as
in TFLM's micro_mutable_op_resolver.h). The op table (ops/__init__.py) joins it with the C engine's families."""

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
