"""Reading a .tflite flatbuffer: ops with versions, tensors with shapes, the options kernels use.

Pure flatbuffer parsing (TensorFlow's generated schema module), no interpreter.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
from typing import Dict, List, Optional, Tuple

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema_fb

from components.tflm import TflmError

OP_NAMES = {code: name for name, code in vars(schema_fb.BuiltinOperator).items() if not name.startswith("_")}
TENSOR_TYPES = {code: name for name, code in vars(schema_fb.TensorType).items() if not name.startswith("_")}
_TYPE_BYTES = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "STRING": 1, "BOOL": 1,
               "INT16": 2, "COMPLEX64": 8, "INT8": 1, "FLOAT64": 8, "COMPLEX128": 16, "UINT64": 8,
               "UINT32": 4, "UINT16": 2, "INT4": 1}
_FILE_IDENTIFIER = b"TFL3"


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One tensor of the main subgraph: its shape, element type, bytes and whether the model holds its data."""

    index: int
    name: str
    shape: Tuple[int, ...]
    dtype: str
    constant: bool
    variable: bool
    scales: int = 0

    @property
    def per_channel(self) -> bool:
        """Quantized with one scale per channel (more than one scale)."""
        return self.scales > 1

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def bytes(self) -> int:
        return self.elements * _TYPE_BYTES.get(self.dtype.upper(), 1)


@dataclasses.dataclass(frozen=True)
class Operator:
    """One operator of the main subgraph, in execution order, with the options its kernel reads.

    ``options`` holds what shapes alone do not say: ``stride`` and ``dilation`` as (h, w),
    ``padding`` (``SAME``/``VALID``) and, for pooling, ``filter`` as (h, w).
    """

    index: int
    name: str
    version: int
    inputs: Tuple[Optional[Tensor], ...]
    outputs: Tuple[Tensor, ...]
    options: Dict[str, object]


def _reads_flatbuffer(function):
    """Turns the errors flatbuffers raises on a truncated or corrupt buffer (it reads lazily,
    so they surface anywhere during parsing) into one TflmError."""

    @functools.wraps(function)
    def wrapper(model: bytes, *args, **kwargs):
        try:
            return function(model, *args, **kwargs)
        except TflmError:
            raise
        except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError) as err:
            raise TflmError(f"The TFLite flatbuffer is corrupt or truncated ({err}); convert the model again, "
                            "or copy the whole file.") from err

    return wrapper


def _root(model: bytes):
    if len(model) < 8 or model[4:8] != _FILE_IDENTIFIER:
        raise TflmError("The file is not a TFLite flatbuffer (its identifier is not 'TFL3'); pass the "
                        "model.tflite the quantizer wrote, not another file.")
    root = schema_fb.Model.GetRootAsModel(model, 0)
    if root.SubgraphsLength() < 1:
        raise TflmError("The TFLite model has no subgraph; it is empty or truncated. Convert it again.")
    return root


def _op_name(root, opcode_index: int) -> str:
    code = root.OperatorCodes(opcode_index)
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema_fb.BuiltinOperator.CUSTOM:
        return f"CUSTOM:{code.CustomCode().decode()}"
    return OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def _tensor(root, subgraph, index: int) -> Tensor:
    tensor = subgraph.Tensors(index)
    buffer = root.Buffers(tensor.Buffer())
    quantization = tensor.Quantization()
    return Tensor(index=index, name=tensor.Name().decode(errors="replace"),
                  shape=tuple(int(tensor.Shape(i)) for i in range(tensor.ShapeLength())),
                  dtype=TENSOR_TYPES.get(tensor.Type(), str(tensor.Type())).lower(),
                  constant=buffer is not None and buffer.DataLength() > 0, variable=bool(tensor.IsVariable()),
                  scales=quantization.ScaleLength() if quantization else 0)


def _padding(code: int) -> str:
    return "SAME" if code == schema_fb.Padding.SAME else "VALID"


def _options(operator, name: str) -> Dict[str, object]:
    table = operator.BuiltinOptions()
    if table is None:
        return {}
    if name == "CONV_2D" or name == "DEPTHWISE_CONV_2D":
        options = schema_fb.Conv2DOptions() if name == "CONV_2D" else schema_fb.DepthwiseConv2DOptions()
        options.Init(table.Bytes, table.Pos)
        return {"stride": (options.StrideH(), options.StrideW()), "padding": _padding(options.Padding()),
                "dilation": (options.DilationHFactor(), options.DilationWFactor())}
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"):
        options = schema_fb.Pool2DOptions()
        options.Init(table.Bytes, table.Pos)
        return {"stride": (options.StrideH(), options.StrideW()), "padding": _padding(options.Padding()),
                "filter": (options.FilterHeight(), options.FilterWidth())}
    return {}


@_reads_flatbuffer
def operators(model: bytes) -> List[Operator]:
    """The main subgraph's operators in execution order.

    Raises:
        TflmError: when ``model`` is not a readable TFLite flatbuffer.
    """
    root = _root(model)
    subgraph = root.Subgraphs(0)
    result = []
    for index in range(subgraph.OperatorsLength()):
        operator = subgraph.Operators(index)
        name = _op_name(root, operator.OpcodeIndex())
        inputs = tuple(_tensor(root, subgraph, operator.Inputs(i)) if operator.Inputs(i) >= 0 else None
                       for i in range(operator.InputsLength()))
        outputs = tuple(_tensor(root, subgraph, operator.Outputs(i)) for i in range(operator.OutputsLength()))
        version = int(root.OperatorCodes(operator.OpcodeIndex()).Version())
        result.append(Operator(index, name, version, inputs, outputs, _options(operator, name)))
    return result


@_reads_flatbuffer
def tensors(model: bytes) -> List[Tensor]:
    """Every tensor of the main subgraph, by index."""
    root = _root(model)
    subgraph = root.Subgraphs(0)
    return [_tensor(root, subgraph, i) for i in range(subgraph.TensorsLength())]


@_reads_flatbuffer
def io_tensor_indices(model: bytes) -> Tuple[List[int], List[int]]:
    """The main subgraph's input and output tensor indices."""
    subgraph = _root(model).Subgraphs(0)
    return ([subgraph.Inputs(i) for i in range(subgraph.InputsLength())],
            [subgraph.Outputs(i) for i in range(subgraph.OutputsLength())])


def _io_info(subgraph, index: int) -> Dict[str, object]:
    tensor = subgraph.Tensors(index)
    q = tensor.Quantization()
    scales = [float(q.Scale(i)) for i in range(q.ScaleLength())] if q else []
    zero_points = [int(q.ZeroPoint(i)) for i in range(q.ZeroPointLength())] if q else []
    return {
        "name": tensor.Name().decode(errors="replace"),
        "shape": [int(tensor.Shape(i)) for i in range(tensor.ShapeLength())],
        "dtype": TENSOR_TYPES.get(tensor.Type(), str(tensor.Type())).lower(),
        "scale": scales[0] if len(scales) == 1 else scales,
        "zero_point": zero_points[0] if len(zero_points) == 1 else zero_points,
    }


@_reads_flatbuffer
def describe(model: bytes) -> Dict[str, object]:
    """What firmware needs to know of a flatbuffer: ops with versions, tensors, I/O quantization.

    Raises:
        TflmError: when ``model`` is not a readable TFLite flatbuffer.
    """
    root = _root(model)
    ops = {(_op_name(root, i), int(root.OperatorCodes(i).Version())) for i in range(root.OperatorCodesLength())}
    subgraph = root.Subgraphs(0)
    return {
        "model_bytes": len(model),
        "ops": [{"name": name, "version": version} for name, version in sorted(ops)],
        "operator_count": sum(root.Subgraphs(s).OperatorsLength() for s in range(root.SubgraphsLength())),
        "tensor_count": sum(root.Subgraphs(s).TensorsLength() for s in range(root.SubgraphsLength())),
        "inputs": [_io_info(subgraph, subgraph.Inputs(i)) for i in range(subgraph.InputsLength())],
        "outputs": [_io_info(subgraph, subgraph.Outputs(i)) for i in range(subgraph.OutputsLength())],
    }


def op_names(model: bytes) -> List[str]:
    """The model's op names, sorted (each once)."""
    return [o["name"] for o in describe(model)["ops"]]
