"""The TFLite Micro kernels a firmware op resolver can register, and the check that a model needs no other.

Pure data and logic (no TensorFlow): the code generator writes an op resolver from it and
the size gate refuses a model with an op outside it.
"""

from __future__ import annotations

from typing import Dict, Iterable, List

from components.tflm import TflmError

# TFLite builtin operator -> tflite::MicroMutableOpResolver method that registers its
# TFLite Micro kernel (tensorflow/lite/micro/micro_mutable_op_resolver.h). An op that
# is not here has no TFLM kernel the resolver can add.
RESOLVER_METHODS: Dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo", "CAST": "AddCast",
    "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "ELU": "AddElu", "EQUAL": "AddEqual", "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill", "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish",
    "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog",
    "LOG_SOFTMAX": "AddLogSoftmax", "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic", "MAX_POOL_2D": "AddMaxPool2D",
    "MAXIMUM": "AddMaximum", "MEAN": "AddMean", "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg", "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2", "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize", "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear", "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "ROUND": "AddRound", "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape",
    "SIN": "AddSin", "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf",
    "TANH": "AddTanh", "TRANSPOSE": "AddTranspose", "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "UNPACK": "AddUnpack",
    "ZEROS_LIKE": "AddZerosLike",
}




class UnsupportedOpError(TflmError):
    """The model uses an op that TFLite Micro has no kernel for."""


def resolver_methods(ops: Iterable[str]) -> List[str]:
    """The MicroMutableOpResolver methods for ``ops`` (sorted by op, each once).

    Raises:
        UnsupportedOpError: naming every op that TFLite Micro cannot load.
    """
    unique = sorted(set(ops))
    missing = [op for op in unique if op not in RESOLVER_METHODS]
    if missing:
        raise UnsupportedOpError(
            f"The model uses op(s) {', '.join(missing)}, which TensorFlow Lite Micro has no kernel "
            "for, so the firmware could not load it. Change the model so the converter emits "
            "supported builtin ops (e.g. avoid dynamic shapes and custom layers).")
    return [RESOLVER_METHODS[op] for op in unique]


def check_supported(ops: Iterable[Dict[str, object]]) -> None:
    """Raises UnsupportedOpError naming, with its version, every op (``model.describe`` entries)
    that has no TFLite Micro kernel."""
    missing = [o for o in ops if o["name"] not in RESOLVER_METHODS]
    if missing:
        raise UnsupportedOpError(
            "The converted model uses op(s) TensorFlow Lite Micro cannot load: "
            + ", ".join(f"{o['name']} (version {o['version']})" for o in missing)
            + ". Change the model so the converter emits supported builtin ops.")
