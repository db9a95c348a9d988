// A minimal stand-in for TFLite Micro's op resolver API, for compiling generated firmware
// sources in tests. Every builtin Add<Op>() method of tflite::MicroMutableOpResolver in
// tensorflow/tflite-micro (commit 90b983c2b3f1480642e040bbd2ddb37b998f3424,
// tensorflow/lite/micro/micro_mutable_op_resolver.h) is here with the name the real one has,
// and records the BuiltinOperator the real one registers; AddBuiltin fails, as the real one
// does, when more ops are added than the template's capacity or an op is added twice.
// Generated from that header; a test checks codegen's table against it.
#ifndef TINYML_TFX_TEST_STUB_MICRO_MUTABLE_OP_RESOLVER_H_
#define TINYML_TFX_TEST_STUB_MICRO_MUTABLE_OP_RESOLVER_H_

#include <cstring>

typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

#define TF_LITE_ENSURE_STATUS(a) \
  do {                            \
    const TfLiteStatus s = (a);   \
    if (s != kTfLiteOk) {         \
      return s;                   \
    }                             \
  } while (0)

namespace tflite {

template <unsigned int tOpCount>
class MicroMutableOpResolver {
 public:
  unsigned int registered = 0;
  const char* ops[tOpCount > 0 ? tOpCount : 1] = {};

  TfLiteStatus AddAbs() { return AddBuiltin("ABS"); }
  TfLiteStatus AddAdd() { return AddBuiltin("ADD"); }
  TfLiteStatus AddAddN() { return AddBuiltin("ADD_N"); }
  TfLiteStatus AddArgMax() { return AddBuiltin("ARG_MAX"); }
  TfLiteStatus AddArgMin() { return AddBuiltin("ARG_MIN"); }
  TfLiteStatus AddAssignVariable() { return AddBuiltin("ASSIGN_VARIABLE"); }
  TfLiteStatus AddAveragePool2D() { return AddBuiltin("AVERAGE_POOL_2D"); }
  TfLiteStatus AddBatchMatMul() { return AddBuiltin("BATCH_MATMUL"); }
  TfLiteStatus AddBatchToSpaceNd() { return AddBuiltin("BATCH_TO_SPACE_ND"); }
  TfLiteStatus AddBroadcastArgs() { return AddBuiltin("BROADCAST_ARGS"); }
  TfLiteStatus AddBroadcastTo() { return AddBuiltin("BROADCAST_TO"); }
  TfLiteStatus AddCallOnce() { return AddBuiltin("CALL_ONCE"); }
  TfLiteStatus AddCast() { return AddBuiltin("CAST"); }
  TfLiteStatus AddCeil() { return AddBuiltin("CEIL"); }
  TfLiteStatus AddConcatenation() { return AddBuiltin("CONCATENATION"); }
  TfLiteStatus AddConv2D() { return AddBuiltin("CONV_2D"); }
  TfLiteStatus AddCos() { return AddBuiltin("COS"); }
  TfLiteStatus AddCumSum() { return AddBuiltin("CUMSUM"); }
  TfLiteStatus AddDepthToSpace() { return AddBuiltin("DEPTH_TO_SPACE"); }
  TfLiteStatus AddDepthwiseConv2D() { return AddBuiltin("DEPTHWISE_CONV_2D"); }
  TfLiteStatus AddDequantize() { return AddBuiltin("DEQUANTIZE"); }
  TfLiteStatus AddDiv() { return AddBuiltin("DIV"); }
  TfLiteStatus AddDynamicUpdateSlice() { return AddBuiltin("DYNAMIC_UPDATE_SLICE"); }
  TfLiteStatus AddEmbeddingLookup() { return AddBuiltin("EMBEDDING_LOOKUP"); }
  TfLiteStatus AddElu() { return AddBuiltin("ELU"); }
  TfLiteStatus AddEqual() { return AddBuiltin("EQUAL"); }
  TfLiteStatus AddExp() { return AddBuiltin("EXP"); }
  TfLiteStatus AddExpandDims() { return AddBuiltin("EXPAND_DIMS"); }
  TfLiteStatus AddFill() { return AddBuiltin("FILL"); }
  TfLiteStatus AddFloor() { return AddBuiltin("FLOOR"); }
  TfLiteStatus AddFloorDiv() { return AddBuiltin("FLOOR_DIV"); }
  TfLiteStatus AddFloorMod() { return AddBuiltin("FLOOR_MOD"); }
  TfLiteStatus AddFullyConnected() { return AddBuiltin("FULLY_CONNECTED"); }
  TfLiteStatus AddGather() { return AddBuiltin("GATHER"); }
  TfLiteStatus AddGatherNd() { return AddBuiltin("GATHER_ND"); }
  TfLiteStatus AddGreater() { return AddBuiltin("GREATER"); }
  TfLiteStatus AddGreaterEqual() { return AddBuiltin("GREATER_EQUAL"); }
  TfLiteStatus AddHardSwish() { return AddBuiltin("HARD_SWISH"); }
  TfLiteStatus AddIf() { return AddBuiltin("IF"); }
  TfLiteStatus AddL2Normalization() { return AddBuiltin("L2_NORMALIZATION"); }
  TfLiteStatus AddL2Pool2D() { return AddBuiltin("L2_POOL_2D"); }
  TfLiteStatus AddLeakyRelu() { return AddBuiltin("LEAKY_RELU"); }
  TfLiteStatus AddLess() { return AddBuiltin("LESS"); }
  TfLiteStatus AddLessEqual() { return AddBuiltin("LESS_EQUAL"); }
  TfLiteStatus AddLog() { return AddBuiltin("LOG"); }
  TfLiteStatus AddLogicalAnd() { return AddBuiltin("LOGICAL_AND"); }
  TfLiteStatus AddLogicalNot() { return AddBuiltin("LOGICAL_NOT"); }
  TfLiteStatus AddLogicalOr() { return AddBuiltin("LOGICAL_OR"); }
  TfLiteStatus AddLogistic() { return AddBuiltin("LOGISTIC"); }
  TfLiteStatus AddLogSoftmax() { return AddBuiltin("LOG_SOFTMAX"); }
  TfLiteStatus AddMaximum() { return AddBuiltin("MAXIMUM"); }
  TfLiteStatus AddMaxPool2D() { return AddBuiltin("MAX_POOL_2D"); }
  TfLiteStatus AddMirrorPad() { return AddBuiltin("MIRROR_PAD"); }
  TfLiteStatus AddMean() { return AddBuiltin("MEAN"); }
  TfLiteStatus AddMinimum() { return AddBuiltin("MINIMUM"); }
  TfLiteStatus AddMul() { return AddBuiltin("MUL"); }
  TfLiteStatus AddNeg() { return AddBuiltin("NEG"); }
  TfLiteStatus AddNotEqual() { return AddBuiltin("NOT_EQUAL"); }
  TfLiteStatus AddPack() { return AddBuiltin("PACK"); }
  TfLiteStatus AddPad() { return AddBuiltin("PAD"); }
  TfLiteStatus AddPadV2() { return AddBuiltin("PADV2"); }
  TfLiteStatus AddPrelu() { return AddBuiltin("PRELU"); }
  TfLiteStatus AddQuantize() { return AddBuiltin("QUANTIZE"); }
  TfLiteStatus AddReadVariable() { return AddBuiltin("READ_VARIABLE"); }
  TfLiteStatus AddReduceAll() { return AddBuiltin("REDUCE_ALL"); }
  TfLiteStatus AddReduceMax() { return AddBuiltin("REDUCE_MAX"); }
  TfLiteStatus AddReduceMin() { return AddBuiltin("REDUCE_MIN"); }
  TfLiteStatus AddRelu() { return AddBuiltin("RELU"); }
  TfLiteStatus AddRelu6() { return AddBuiltin("RELU6"); }
  TfLiteStatus AddReshape() { return AddBuiltin("RESHAPE"); }
  TfLiteStatus AddResizeBilinear() { return AddBuiltin("RESIZE_BILINEAR"); }
  TfLiteStatus AddResizeNearestNeighbor() { return AddBuiltin("RESIZE_NEAREST_NEIGHBOR"); }
  TfLiteStatus AddReverseV2() { return AddBuiltin("REVERSE_V2"); }
  TfLiteStatus AddRound() { return AddBuiltin("ROUND"); }
  TfLiteStatus AddRsqrt() { return AddBuiltin("RSQRT"); }
  TfLiteStatus AddSelectV2() { return AddBuiltin("SELECT_V2"); }
  TfLiteStatus AddShape() { return AddBuiltin("SHAPE"); }
  TfLiteStatus AddSin() { return AddBuiltin("SIN"); }
  TfLiteStatus AddSlice() { return AddBuiltin("SLICE"); }
  TfLiteStatus AddSoftmax() { return AddBuiltin("SOFTMAX"); }
  TfLiteStatus AddSpaceToBatchNd() { return AddBuiltin("SPACE_TO_BATCH_ND"); }
  TfLiteStatus AddSpaceToDepth() { return AddBuiltin("SPACE_TO_DEPTH"); }
  TfLiteStatus AddSplit() { return AddBuiltin("SPLIT"); }
  TfLiteStatus AddSplitV() { return AddBuiltin("SPLIT_V"); }
  TfLiteStatus AddSqueeze() { return AddBuiltin("SQUEEZE"); }
  TfLiteStatus AddSqrt() { return AddBuiltin("SQRT"); }
  TfLiteStatus AddSquare() { return AddBuiltin("SQUARE"); }
  TfLiteStatus AddSquaredDifference() { return AddBuiltin("SQUARED_DIFFERENCE"); }
  TfLiteStatus AddStridedSlice() { return AddBuiltin("STRIDED_SLICE"); }
  TfLiteStatus AddSub() { return AddBuiltin("SUB"); }
  TfLiteStatus AddSum() { return AddBuiltin("SUM"); }
  TfLiteStatus AddSvdf() { return AddBuiltin("SVDF"); }
  TfLiteStatus AddTanh() { return AddBuiltin("TANH"); }
  TfLiteStatus AddTransposeConv() { return AddBuiltin("TRANSPOSE_CONV"); }
  TfLiteStatus AddTranspose() { return AddBuiltin("TRANSPOSE"); }
  TfLiteStatus AddUnpack() { return AddBuiltin("UNPACK"); }
  TfLiteStatus AddUnidirectionalSequenceLSTM() { return AddBuiltin("UNIDIRECTIONAL_SEQUENCE_LSTM"); }
  TfLiteStatus AddVarHandle() { return AddBuiltin("VAR_HANDLE"); }
  TfLiteStatus AddWhile() { return AddBuiltin("WHILE"); }
  TfLiteStatus AddZerosLike() { return AddBuiltin("ZEROS_LIKE"); }

 private:
  TfLiteStatus AddBuiltin(const char* op) {
    for (unsigned int i = 0; i < registered; ++i) {
      if (std::strcmp(ops[i], op) == 0) return kTfLiteError;
    }
    if (registered >= tOpCount) return kTfLiteError;
    ops[registered++] = op;
    return kTfLiteOk;
  }
};

}  // namespace tflite

#endif  // TINYML_TFX_TEST_STUB_MICRO_MUTABLE_OP_RESOLVER_H_
