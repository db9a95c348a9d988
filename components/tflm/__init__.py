"""What the quantizer and the size gate need from TensorFlow Lite Micro, in one place.

* ``model``: reading a .tflite flatbuffer (ops with versions, tensors, shapes, I/O quantization).
* ``ops``: the TFLM kernels a firmware op resolver can register.
* ``runtime``: TFLM's own Python interpreter (construct, invoke, predict) and its C-level log.
* ``arena``: the tensor arena a model needs, by bisection on TFLM and from its recording allocator.
* ``planner``: TFLM's greedy memory planner, replayed in Python to add buffers TFLM would plan.

Every failure a user can cause (a file that is not a TFLite model, an op TFLM has no kernel
for, a model TFLM cannot load) is a ``TflmError`` naming the cause and the fix.
"""


class TflmError(ValueError):
    """The model cannot be read, loaded or run by TensorFlow Lite Micro; the message says why."""
